"""``zoo.optimize_for_inference`` / ``zoo.load(..., optimize_for_inference=True)``: batch norms
folded, every conv on a prepacked oneDNN weight with its activation fused (CPU), same logits.

Also ``zoo.tune_cpu_allocator``, the process-wide allocator switch the CPU benchmarks use.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import (
    ONE_PER_FAMILY,
    expected,
    reference_input,
    reference_weights,
    runs,
    tolerance,
)
from torch import nn
from torch.profiler import profile

import architectures
import zoo
from architectures.layers import Conv2dSame, ConvBnAct

NETWORKS = list(ONE_PER_FAMILY)  # every kind of conv the fast path meets


def _ops(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    with torch.inference_mode(), profile() as prof:
        y = model(x)
    return y, [event.name for event in prof.events()]


@pytest.mark.parametrize("name", NETWORKS)
def test_optimized_model_gives_the_reference_logits_on_packed_convs(name):
    for run in runs(name):  # both stored input sizes
        weights = reference_weights(name, run.gain)
        model = zoo.load(name, checkpoint=weights, optimize_for_inference=True, **run.kwargs).eval()
        x = reference_input(name, run.input_hw)
        got, ops = _ops(model, x)
        want = expected(name)["logits" + run.suffix]
        error = np.max(np.abs(got.numpy() - want))
        assert error <= tolerance(want), f"{name} at {run.input_hw}: max |Δ| {error}"
        # every conv ran as one oneDNN primitive on its packed weight, the strided depthwise
        # ones with TF's asymmetric padding too (their packed kernel has the zero tap)
        convs = {n: m for n, m in model.named_modules() if isinstance(m, Conv2dSame)}
        unpacked = {n for n, m in convs.items() if m._packed_cache is None}
        assert not {n for n in unpacked if not _may_skip_packing(n)}, unpacked
        assert "mkldnn::_convolution_pointwise" in ops
        assert ops.count("aten::convolution") == 0
        assert not any(isinstance(m, nn.BatchNorm2d) for m in _conv_bn_blocks(model))


def _may_skip_packing(conv_name: str) -> bool:
    """Convs that a forward pass leaves unpacked: the auxiliary heads (not run in eval) and
    the convs over a whole map (VGG's fc6-fc8, MobileNet's logits, MobileNet v3's
    squeeze-excite and its Conv_2 after the pool), which run as one matrix product instead."""
    whole_map = ("Logits", "squeeze_excite", "Conv_2")
    return (
        "aux" in conv_name.lower()
        or conv_name.startswith("fc")
        or any(part in conv_name for part in whole_map)
    )


def _conv_bn_blocks(model: nn.Module) -> list[nn.Module]:
    return [m.bn for m in model.modules() if isinstance(m, ConvBnAct)]


def _block() -> ConvBnAct:
    torch.manual_seed(0)
    block = ConvBnAct(8, 16, 3, stride=2, padding="SAME")
    with torch.no_grad():
        block.bn.running_mean.uniform_(-1, 1)
        block.bn.running_var.uniform_(0.5, 2)
        block.bn.weight.uniform_(0.5, 2)
    return block.eval()


def _plain_reference(block: ConvBnAct, x: torch.Tensor) -> torch.Tensor:
    """What the optimized block must compute, from its own (folded) parameters."""
    conv = block.conv
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))  # TF 'SAME', 3x3/2 on an even size
    return torch.relu(torch.nn.functional.conv2d(padded, conv.weight, conv.bias, 2))


def test_packed_weight_is_remade_when_the_weight_changes():
    block = zoo.optimize_for_inference(_block())
    x = torch.randn(2, 8, 10, 10)
    with torch.inference_mode():
        first = block(x)
    assert torch.allclose(first, _plain_reference(block, x), atol=1e-5)
    # an in-place update through the parameter (as load_state_dict makes)
    state = {k: v * 2 if k == "conv.weight" else v for k, v in block.state_dict().items()}
    block.load_state_dict(state)
    with torch.inference_mode():
        second = block(x)
    assert not torch.allclose(second, first)
    assert torch.allclose(second, _plain_reference(block, x), atol=1e-5)
    # a new parameter object
    block.conv.weight = nn.Parameter(torch.randn_like(block.conv.weight), requires_grad=False)
    with torch.inference_mode():
        assert torch.allclose(block(x), _plain_reference(block, x), atol=1e-5)


def test_a_model_made_under_inference_mode_packs_and_sees_load_state_dict():
    # Tensors created under torch.inference_mode have no version counter.
    x = torch.randn(2, 8, 10, 10)
    with torch.inference_mode():
        block = zoo.optimize_for_inference(_block())
        assert block.conv.weight.is_inference()
        first = block(x)
        assert block.conv._packed_cache is not None  # it ran packed
        assert torch.allclose(first, _plain_reference(block, x), atol=1e-5)
        state = {k: v * 2 if k == "conv.weight" else v for k, v in block.state_dict().items()}
        block.load_state_dict(state)
        second = block(x)
        assert not torch.allclose(second, first)
        assert torch.allclose(second, _plain_reference(block, x), atol=1e-5)
        model = zoo.load("inception_v1", optimize_for_inference=True).eval()
        image = torch.randn(1, 3, 224, 224)
        assert torch.allclose(model(image), _plain_model("inception_v1", model)(image), atol=1e-4)


def _plain_model(name: str, optimized: nn.Module) -> nn.Module:
    """A plain (unfused, unpacked) copy of ``name`` with the weights ``optimized`` came from."""
    with torch.inference_mode(False):
        plain = zoo.load(name, fuse_bn=True).eval()
        plain.load_state_dict({k: v.clone() for k, v in optimized.state_dict().items()})
    return plain


def test_training_autograd_and_hooks_take_the_plain_path():
    block = zoo.optimize_for_inference(_block())
    x = torch.randn(2, 8, 10, 10)
    want = _plain_reference(block, x)
    # autograd: parameters made trainable again, gradients flow through the plain conv
    block.requires_grad_(True)
    y = block(x)
    y.sum().backward()
    assert block.conv.weight.grad is not None and torch.allclose(y, want, atol=1e-5)
    # a hook on the conv sees its call (the fast path would bypass it)
    block.requires_grad_(False)
    seen = []
    block.conv.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.inference_mode():
        _, ops = _ops(block, x)
    assert seen == [torch.Size([2, 16, 5, 5])] and "aten::convolution" in ops


def _fused_residual_units(model: nn.Module) -> list[str]:
    """Units whose sum the optimized ResNet does inside conv3: those with a projection
    shortcut (a new tensor) and, but for a block's first, those whose shortcut is the input."""
    fused = []
    for block_name in model.block_names:
        for i, (name, unit) in enumerate(getattr(model, block_name).named_children()):
            bottleneck = unit[0]
            if bottleneck.shortcut is not None or (i > 0 and bottleneck.stride == 1):
                fused.append(f"{block_name}.{name}")
    return fused


@pytest.mark.parametrize("name", ["resnet_v1_50", "resnet_v2_50"])
def test_resnet_units_sum_into_the_shortcut_inside_the_last_conv(name):
    """The residual add (and V1's ReLU) runs as conv3's oneDNN sum post-op, written into the
    shortcut; a unit's input is overwritten only inside a block, never the caller's."""
    torch.manual_seed(0)
    model = zoo.load(name, fuse_bn=True).eval()  # weights as after folding; random but fixed
    optimized = zoo.optimize_for_inference(copy.deepcopy(model))
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        want = model(x)
        got, ops = _ops(optimized, x)
    assert torch.allclose(got, want, atol=1e-4 * max(1.0, want.abs().max().item()))
    fused = _fused_residual_units(optimized)
    assert 0 < len(fused) < sum(len(getattr(model, b)) for b in model.block_names)
    assert ops.count("mkldnn::_convolution_pointwise_") == len(fused)  # the in-place form
    assert ops.count("aten::add_") == 16 - len(fused)  # only the strided identity units
    # the input of a block, or of a unit called on its own, is left as it was
    with torch.inference_mode():
        features = optimized.pool1(optimized.conv1(x))
        kept = features.clone()
        out = optimized.block1(features)
        assert torch.equal(features, kept)
        out = optimized.block2.unit_1(out)
        unit_input = out.clone()
        optimized.block2.unit_2(unit_input)
        assert torch.equal(unit_input, out)


def test_a_hook_in_a_resnet_block_keeps_every_unit_output_intact():
    """With a hook that keeps unit outputs (no copy), no later unit may write into them."""
    model = zoo.load("resnet_v1_50", optimize_for_inference=True).eval()
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for unit in model.block3:
        unit.register_forward_hook(lambda m, args, out: kept.append((out, out.clone())))
    with torch.inference_mode():
        _, ops = _ops(model, torch.randn(1, 3, 224, 224))
    assert len(kept) == len(model.block3)
    assert all(torch.equal(out, copy) for out, copy in kept)
    # block3's identity units then add separately (unit_1 still sums into its projection)
    fused = _fused_residual_units(model)
    unfused_by_hooks = [u for u in fused if u.startswith("block3.") and u != "block3.unit_1"]
    assert unfused_by_hooks and ops.count("aten::add_") == 16 - len(fused) + len(unfused_by_hooks)

    # a global hook (torch.nn.modules.module.register_module_forward_hook) counts as well
    kept.clear()
    model = zoo.load("resnet_v1_50", optimize_for_inference=True).eval()

    def keep_unit_outputs(module, args, out):
        if isinstance(module, type(model.block1.unit_1[0])):
            kept.append((out, out.clone()))

    handle = torch.nn.modules.module.register_module_forward_hook(keep_unit_outputs)
    try:
        with torch.inference_mode():
            model(torch.randn(1, 3, 224, 224))
    finally:
        handle.remove()
    assert len(kept) == 16 and all(torch.equal(out, copy) for out, copy in kept)


def test_wrong_channel_count_gets_the_plain_convs_error():
    block = zoo.optimize_for_inference(_block())  # expects 8 channels
    with torch.inference_mode(), pytest.raises(RuntimeError, match="8 channels"):
        block(torch.randn(1, 4, 10, 10))


def test_packed_cache_is_not_state_and_copies_work():
    model = zoo.load("mobilenet_v1", optimize_for_inference=True).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.inference_mode():
        want = model(x)  # fills the caches
    assert (
        model.state_dict().keys()
        == zoo.load("mobilenet_v1", fuse_bn=True).eval().state_dict().keys()
    )
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert all(m._packed_cache is None for m in clone.modules() if isinstance(m, Conv2dSame))
        with torch.inference_mode():
            assert torch.equal(clone(x), want)


def test_optimize_for_inference_freezes_and_folds():
    model = architectures.optimize_for_inference(zoo.load("inception_v1").eval())
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, Conv2dSame)]
    assert convs and all(m.pack_for_inference for m in convs)


_FAULTS = """
import resource, sys, torch, zoo
tuned = zoo.tune_cpu_allocator() if sys.argv[1] == "tune" else None
import zoo.models  # a process that runs networks (`import zoo` alone imports them lazily)

def faults_of_one_batch():  # a 64 MB activation allocated, written and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 * 2**20, dtype=torch.uint8)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

# the first batches may still grow the heap (a small allocation can split the freed block, so the
# next batch does not fit in what is left): judge the batches after those
print(tuned, *[faults_of_one_batch() for _ in range(10)][-4:])
"""


def test_tuned_allocator_reuses_freed_memory_without_page_faults():
    if not sys.platform.startswith("linux"):  # no glibc switches: nothing changes
        assert zoo.tune_cpu_allocator() is False
        return

    def faults_of_last_batches(mode: str) -> tuple[str, list[int]]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], [int(n) for n in out[1:]]

    untuned, tuned = faults_of_last_batches("plain"), faults_of_last_batches("tune")
    assert untuned[0] == "None" and tuned[0] == "True"
    assert min(untuned[1]) > 4000, untuned  # 64 MB of 4 KiB pages faulted in on every batch
    assert max(tuned[1]) < 100, tuned  # the freed block is reused as it is
