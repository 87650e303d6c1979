"""The fast paths of the shared layers give exactly what their plain forms give: 'SAME' max
pooling through torch's own padding or dense maxima, and the in-place inference batch norm of
ConvBnAct."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from architectures.layers import ConvBnAct, MaxPool2dSame, pad_same


def test_same_max_pool_equals_explicit_minus_inf_padding():
    torch.manual_seed(0)
    checked = 0
    sizes = itertools.product(range(1, 6), range(1, 4), range(1, 14), (1, 6, 7, 12))
    for (k, s, h, w), channels_last in itertools.product(sizes, (False, True)):
        x = torch.randn(1, 2, h, w)
        if channels_last:  # stride 1: the dense row/column maxima on the NHWC view
            x = x.contiguous(memory_format=torch.channels_last)
        want = F.max_pool2d(pad_same(x, (k, k), (s, s), value=float("-inf")), k, s)
        got = MaxPool2dSame(k, s)(x)
        assert got.shape == want.shape and torch.equal(got, want), (k, s, h, w, channels_last)
        checked += 1
    assert checked == 2 * 5 * 3 * 13 * 4


def test_valid_max_pool_equals_torch_for_every_size():
    torch.manual_seed(0)
    checked = 0
    for k, s, h, w in itertools.product(range(1, 6), range(1, 4), range(1, 14), (5, 6, 7, 12)):
        if h < k:
            continue
        x = torch.randn(1, 2, h, w).contiguous(memory_format=torch.channels_last)
        want = F.max_pool2d(x.contiguous(), k, s)
        got = MaxPool2dSame(k, s, padding="VALID")(x)
        assert got.shape == want.shape and torch.equal(got, want), (k, s, h, w)
        checked += 1
    assert checked == 3 * 4 * sum(14 - k for k in range(1, 6))


def test_stride_one_max_pool_leaves_its_input_alone_and_keeps_autograd():
    x = torch.randn(2, 8, 9, 10).contiguous(memory_format=torch.channels_last)
    before = x.clone()
    pool = MaxPool2dSame(3, 1)
    with torch.no_grad():
        y = pool(x)
    assert torch.equal(x, before)  # the maxima are written into a new tensor, never x
    assert y.is_contiguous(memory_format=torch.channels_last)
    # with autograd the in-place maxima are not used: torch's kernel, with its gradient
    x.requires_grad_(True)
    pool(x).sum().backward()
    plain = before.clone().requires_grad_(True)
    F.max_pool2d(F.pad(plain, (1, 1, 1, 1), value=float("-inf")), 3, 1).sum().backward()
    assert x.grad.abs().sum() > 0 and torch.equal(x.grad, plain.grad)


def _conv_bn() -> ConvBnAct:
    torch.manual_seed(0)
    block = ConvBnAct(4, 6, 3, stride=2, bn_scale=False, act=lambda: torch.nn.ReLU(inplace=True))
    with torch.no_grad():
        block.bn.bias.normal_()
        block.bn.running_mean.normal_()
        block.bn.running_var.uniform_(0.5, 1.5)
    return block.eval()


def test_inference_batch_norm_in_place_equals_the_module():
    block = _conv_bn()
    x = torch.randn(2, 4, 9, 10)
    with torch.no_grad():
        want = torch.relu(block.bn(block.conv(x)))
        got = block(x)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-6)
    with torch.inference_mode():
        assert torch.allclose(block(x), want, rtol=1e-6, atol=1e-6)


def test_batch_norm_module_runs_when_autograd_or_training_needs_it():
    block = _conv_bn()
    x = torch.randn(2, 4, 9, 10, requires_grad=True)
    calls = []
    block.bn.register_forward_hook(lambda *_: calls.append(1))
    block(x).sum().backward()  # eval mode with autograd: the module path, differentiable
    assert calls == [1] and x.grad is not None and x.grad.abs().sum() > 0
    block.train()
    block(x)
    assert calls == [1, 1]
    block.eval()
    with torch.no_grad():
        block(x)
    assert calls == [1, 1]  # inference: the in-place form, the module is not called
