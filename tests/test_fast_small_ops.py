"""The fast path's smaller pieces (fewer ops per pass): strided depthwise convs with TF's
asymmetric padding run packed with a zero tap in the packed kernel, MobileNet v3's
squeeze-excite gate runs as two matrix products, and ResNet V2's pre-activation batch norm +
ReLU as one multiply-add from a cached scale and shift. Each gives the plain path's values,
follows weight changes, and leaves training and autograd alone."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.profiler import profile

import architectures
from architectures._resnet_utils import BatchNormRelu
from architectures.layers import ConvBnAct
from architectures.mobilenet_v3 import SqueezeExcite


def _top_level_ops(fn) -> list[str]:
    with profile() as prof:
        fn()
    return [e.name for e in prof.events() if e.cpu_parent is None]


def _plain(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    architectures.set_fast_inference(False)
    try:
        with torch.no_grad():
            return module(x)
    finally:
        architectures.set_fast_inference(True)


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
    return module


# --------------------------------------------------------------------- zero tap, packed


def _strided_depthwise(channels: int, kernel: int) -> ConvBnAct:
    torch.manual_seed(kernel)
    block = ConvBnAct(channels, channels, kernel, stride=2, groups=channels, act=nn.ReLU6)
    return _randomize(block, kernel).eval()


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("size", [(8, 8), (9, 9), (8, 9), (16, 7)])
def test_strided_depthwise_runs_packed_with_the_zero_tap(kernel, size):
    block = _strided_depthwise(24, kernel)
    for batch in (1, 3):
        x = torch.randn(batch, 24, *size).contiguous(memory_format=torch.channels_last)
        want = _plain(block, x)
        with torch.inference_mode():
            got = block(x)  # the first call packs the weight
            ops = _top_level_ops(lambda: block(x))  # noqa: B023
        assert ops == ["mkldnn::_convolution_pointwise"], ops  # no pad, conv, batch norm
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (size, batch)


def test_the_zero_tap_kernel_is_packed_again_for_another_parity():
    block = _strided_depthwise(16, 3)
    with torch.inference_mode():
        for size in (8, 9, 8):  # asymmetric (zero tap), symmetric, asymmetric again
            x = torch.randn(1, 16, size, size)
            got = block(x)
            packed = block._packed_cache.value[0]
            assert packed.shape[-1] == (4 if size % 2 == 0 else 3)
            assert torch.allclose(got, _plain(block, x), rtol=1e-5, atol=1e-5)


def test_training_the_strided_depthwise_is_unchanged():
    block = _strided_depthwise(8, 3).train()
    twin = copy.deepcopy(block)
    x = torch.randn(2, 8, 8, 8)
    block(x).square().sum().backward()
    architectures.set_fast_inference(False)
    try:
        twin(x).square().sum().backward()
    finally:
        architectures.set_fast_inference(True)
    assert block._packed_cache is None
    for a, b in zip(block.parameters(), twin.parameters()):
        assert torch.equal(a.grad, b.grad)


# --------------------------------------------------------------------- squeeze-excite gate


def _squeeze_excite() -> SqueezeExcite:
    return _randomize(SqueezeExcite(40), 1).eval()


def test_the_gate_gives_the_plain_values_bit_for_bit_in_fewer_ops():
    se = _squeeze_excite()
    x = torch.randn(2, 40, 7, 7).contiguous(memory_format=torch.channels_last) - 1.0
    want = _plain(se, x)
    with torch.inference_mode():
        got = se(x)
        fast_ops = _top_level_ops(lambda: se(x))
    architectures.set_fast_inference(False)
    try:
        with torch.inference_mode():
            plain_ops = _top_level_ops(lambda: se(x))
    finally:
        architectures.set_fast_inference(True)
    assert torch.equal(got, want)
    assert len(fast_ops) < len(plain_ops), (fast_ops, plain_ops)
    assert fast_ops.count("aten::linear") == 2


def test_the_gate_follows_weight_changes_and_lets_hooks_see_their_modules():
    se = _squeeze_excite()
    x = torch.randn(1, 40, 5, 5)
    with torch.no_grad():
        before = se(x)
        se.Conv_1.conv.weight.mul_(-1.0)
        after = se(x)
    assert not torch.equal(before, after) and torch.equal(after, _plain(se, x))
    seen = []
    se.Conv_1.act.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        assert torch.equal(se(x), after)
    assert len(seen) == 1  # the hooked module ran: the gate took the plain path


def test_the_gate_leaves_autograd_and_training_alone():
    se = _squeeze_excite()
    x = torch.randn(1, 40, 5, 5, requires_grad=True)
    (grad,) = torch.autograd.grad(se(x).sum(), x)  # eval mode, autograd on
    architectures.set_fast_inference(False)
    try:
        (plain_grad,) = torch.autograd.grad(se(x).sum(), x)
    finally:
        architectures.set_fast_inference(True)
    assert torch.equal(grad, plain_grad)
    assert not se.train()._gate_applies(x.detach())


# --------------------------------------------------------------------- ResNet V2 pre-activation


def _preact() -> BatchNormRelu:
    bn = _randomize(BatchNormRelu(32), 2).eval()
    with torch.no_grad():
        bn.bias.sub_(1.0)  # some outputs below zero
    return bn


def _batch_norm_relu(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    out = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return out.relu()


def test_preact_is_one_multiply_add_from_a_cached_scale_and_shift():
    bn = _preact()
    x = torch.randn(2, 32, 6, 6).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = bn(x)
        cached = bn._packed_cache.value
        ops = _top_level_ops(lambda: bn(x))
        assert bn._packed_cache.value is cached  # made once
    assert ops == ["aten::addcmul", "aten::relu_"], ops
    assert torch.allclose(got, _batch_norm_relu(bn, x), rtol=1e-5, atol=1e-6)
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_preact_follows_statistics_and_load_state_dict():
    bn = _preact()
    x = torch.randn(1, 32, 4, 4)
    with torch.no_grad():
        before = bn(x)
        bn.running_var.mul_(4.0)
        after = bn(x)
        assert not torch.allclose(before, after)
        assert torch.allclose(after, _batch_norm_relu(bn, x), rtol=1e-5, atol=1e-6)
        other = _randomize(BatchNormRelu(32), 7).eval()
        bn.load_state_dict(other.state_dict())
        assert torch.allclose(bn(x), _batch_norm_relu(other, x), rtol=1e-5, atol=1e-6)


def test_preact_training_and_autograd_are_unchanged():
    bn = _preact()
    x = torch.randn(2, 32, 4, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(bn(x).sum(), x)  # eval mode, autograd on: the plain op
    (want,) = torch.autograd.grad(_batch_norm_relu(bn, x).sum(), x)
    assert torch.equal(grad, want) and bn._packed_cache is None
    bn.train()
    twin = copy.deepcopy(bn)
    with torch.no_grad():  # training mode updates the statistics whatever autograd does
        bn(x)
        F.batch_norm(x, twin.running_mean, twin.running_var, training=True, momentum=0.1)
    assert torch.equal(bn.running_mean, twin.running_mean)
    assert bn._packed_cache is None
