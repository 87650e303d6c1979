"""Fast by default: a plain model in eval mode without autograd runs the packed oneDNN convs of
``optimize_for_inference`` (batch norm folded into a cached packed weight) with no flag, follows
every change of its weights, and changes nothing where autograd or training is involved."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from conftest import ONE_PER_FAMILY, reference_input, reference_weights, runs, tolerance
from torch import nn

import architectures
import zoo
from architectures._packed import PackedCacheOwner

NETWORKS = list(ONE_PER_FAMILY)


@pytest.fixture
def plain_path():
    """Run a block of code with the fast path off (restored afterwards)."""

    class _Off:
        def __enter__(self):
            architectures.set_fast_inference(False)

        def __exit__(self, *exc):
            architectures.set_fast_inference(True)

    return _Off


def _cached(model: nn.Module) -> int:
    return sum(
        isinstance(m, PackedCacheOwner) and m._packed_cache is not None for m in model.modules()
    )


def _folded(model: nn.Module) -> int:
    """Blocks whose batch norm ran folded into the packed weight (their cache holds 6 sources)."""
    return sum(
        isinstance(m, PackedCacheOwner)
        and m._packed_cache is not None
        and len(m._packed_cache[0]) == 6
        for m in model.modules()
    )


@pytest.mark.parametrize("name", NETWORKS)
def test_plain_eval_model_runs_packed_with_the_optimized_models_logits(name, plain_path):
    run = runs(name)[0]
    weights = reference_weights(name, run.gain)
    model = zoo.load(name, checkpoint=weights, **run.kwargs).eval()
    optimized = zoo.load(name, checkpoint=weights, optimize_for_inference=True, **run.kwargs)
    x = reference_input(name, run.input_hw)[:1]
    with plain_path(), torch.inference_mode():
        slow = model(x)
    assert _cached(model) == 0
    with torch.inference_mode():
        fast, best = model(x), optimized(x)
    assert _cached(model) > 0 and _folded(model) + (name == "vgg_16") > 0
    tol = tolerance(slow.numpy())
    assert float((fast - slow).abs().max()) <= tol
    assert float((fast - best).abs().max()) <= tol
    with torch.no_grad():  # no_grad takes the same path as inference_mode
        assert torch.equal(model(x), fast)


def _resnet() -> tuple[nn.Module, torch.Tensor]:
    model = zoo.load("resnet_v1_50", checkpoint=reference_weights("resnet_v1_50")).eval()
    return model, reference_input("resnet_v1_50", (64, 64))[:1]


def _slow(model: nn.Module, x: torch.Tensor, plain_path) -> torch.Tensor:
    with plain_path(), torch.no_grad():
        return model(x)


def _fast(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        y = model(x)
    assert _cached(model) > 0
    return y


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) <= tolerance(b.numpy())


def test_in_place_changes_and_load_state_dict_are_seen(plain_path):
    model, x = _resnet()
    before = _fast(model, x)
    with torch.no_grad():  # a conv weight and a batch norm statistic, in place
        model.block1.unit_1.bottleneck_v1.conv1.conv.weight.mul_(1.5)
        model.block2.unit_1.bottleneck_v1.conv2.bn.running_var.mul_(3.0)
    after = _fast(model, x)
    assert not _close(after, before)
    assert _close(after, _slow(model, x, plain_path))

    other = zoo.load("resnet_v1_50", checkpoint=reference_weights("resnet_v1_50", 0.8)).eval()
    model.load_state_dict(other.state_dict())
    assert _close(_fast(model, x), _slow(other, x, plain_path))


def test_a_training_step_is_seen_and_training_is_unchanged(plain_path):
    model, x = _resnet()
    _fast(model, x)
    model.train()
    assert _cached(model) == 0  # train() frees the packed copies
    twin = copy.deepcopy(model)
    target = torch.tensor([3])

    def step(net: nn.Module) -> list[torch.Tensor]:
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3)
        loss = nn.functional.cross_entropy(net(x), target)
        loss.backward()
        optimizer.step()
        return [p.grad.clone() for p in net.parameters()]

    grads = step(model)
    with plain_path():
        twin_grads = step(twin)
    assert all(torch.equal(a, b) for a, b in zip(grads, twin_grads))  # bit-identical training
    model.eval()
    twin.eval()
    assert _close(_fast(model, x), _slow(twin, x, plain_path))


def test_autograd_in_eval_mode_takes_the_plain_path_bit_for_bit(plain_path):
    model, x = _resnet()
    x = x.clone().requires_grad_(True)
    y = model(x)
    assert _cached(model) == 0
    (g,) = torch.autograd.grad(y.sum(), x)
    with plain_path():
        y2 = model(x)
        (g2,) = torch.autograd.grad(y2.sum(), x)
    assert torch.equal(y, y2) and torch.equal(g, g2)


def test_dtype_change_and_switch_off_take_the_plain_path(plain_path):
    model, x = _resnet()
    fast = _fast(model, x)
    model.double()
    with torch.no_grad():
        y = model(x.double())
    assert float((y.float() - fast).abs().max()) <= tolerance(fast.numpy())
    model.float()
    model.train().eval()  # drop the caches to see what the next call makes
    architectures.set_fast_inference(False)
    try:
        with torch.no_grad():
            model(x)
        assert _cached(model) == 0
    finally:
        architectures.set_fast_inference(True)


def test_hooks_see_their_modules_and_copies_leave_the_cache_behind(plain_path):
    model, x = _resnet()
    seen = []
    conv = model.block1.unit_1.bottleneck_v1.conv2.conv
    handle = conv.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    fast = _fast(model, x)
    handle.remove()
    slow = _slow(model, x, plain_path)
    assert len(seen) == 1 and _close(fast, slow)
    assert _cached(model) > 0
    state = model.state_dict()
    assert not any("packed" in k for k in state)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert _cached(clone) == 0
        assert _close(_fast(clone, x), slow)


def test_compile_and_export_trace_the_plain_path():
    model, x = _resnet()
    fast = _fast(model, x)
    with torch.no_grad():
        exported = torch.export.export(model, (x,))
    assert not any(
        "mkldnn" in str(node.target) for node in exported.graph.nodes if node.op == "call_function"
    )
    with torch.no_grad():
        assert _close(exported.module()(x), fast)


def test_features_only_and_end_points_work_on_the_fast_path(plain_path):
    model, x = _resnet()
    with torch.inference_mode():
        points = model.end_points(x)
    with plain_path(), torch.inference_mode():
        slow_points = model.end_points(x)
    assert points.keys() == slow_points.keys()
    for name, value in points.items():
        assert np.allclose(value.numpy(), slow_points[name].numpy(), atol=1e-4), name
