"""The inference shortcuts of the shared layers give what their plain forms give: 'SAME' max
pooling through torch's ceil-mode windows, and ConvBnAct's in-place batch norm + activation."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from architectures.layers import ConvBnAct, MaxPool2dSame, pad_same


def test_same_max_pool_equals_minus_inf_padding_for_every_size():
    torch.manual_seed(0)
    for k, s, h, w in itertools.product((1, 2, 3, 4, 5), (1, 2, 3), range(1, 12), (1, 6, 7)):
        x = torch.randn(2, 3, h, w)
        want = F.max_pool2d(pad_same(x, (k, k), (s, s), value=float("-inf")), k, s)
        got = MaxPool2dSame(k, s)(x)
        assert got.shape == want.shape and torch.equal(got, want), (k, s, h, w)


def _conv_bn_act(act, bn_scale=True) -> ConvBnAct:
    torch.manual_seed(0)
    block = ConvBnAct(4, 6, 3, stride=2, bn_eps=1e-5, bn_scale=bn_scale, act=act)
    with torch.no_grad():
        if bn_scale:
            block.bn.weight.uniform_(0.5, 1.5)
        block.bn.bias.normal_()
        block.bn.running_mean.normal_()
        block.bn.running_var.uniform_(0.5, 1.5)
    return block.eval()


@pytest.mark.parametrize(
    "act", [nn.ReLU, nn.ReLU6, None, nn.Tanh], ids=["relu", "relu6", "none", "tanh"]
)
@pytest.mark.parametrize("bn_scale", [True, False])
def test_conv_bn_act_inference_equals_the_modules(act, bn_scale):
    block = _conv_bn_act(act, bn_scale)
    x = torch.randn(2, 4, 9, 10) * 3
    want = block.act(
        F.batch_norm(
            block.conv(x),
            block.bn.running_mean,
            block.bn.running_var,
            block.bn.weight,
            block.bn.bias,
            False,
            0.0,
            block.bn.eps,
        )
    )
    with torch.inference_mode():
        got = block(x)
    assert torch.allclose(got, want.detach(), rtol=1e-5, atol=1e-5)


def test_conv_bn_act_keeps_autograd_and_training_on_the_modules():
    block = _conv_bn_act(nn.ReLU)
    calls = []
    block.bn.register_forward_hook(lambda *_: calls.append("bn"))
    x = torch.randn(2, 4, 9, 10, requires_grad=True)
    block(x).sum().backward()  # eval mode but differentiable: the module path
    assert calls == ["bn"] and x.grad.abs().sum() > 0
    block.train()
    with torch.no_grad():
        block(x)  # training statistics: the module path
    assert calls == ["bn", "bn"]
    block.eval()
    with torch.no_grad():
        block(x)
    assert calls == ["bn", "bn"]  # inference: in place, the batch norm module is not called


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_covering_its_input_is_the_conv(channels_last, bias):
    """A VALID conv whose kernel is the whole map (VGG's fc6) runs as a matrix product."""
    from architectures.layers import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(5, 7, (3, 4), padding="VALID", bias=bias)
    x = torch.randn(2, 5, 3, 4)
    if channels_last:
        conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    assert conv._covers_input(x)
    with torch.no_grad():
        want = F.conv2d(x, conv.weight, conv.bias)
        got = conv(x)
        assert got.shape == want.shape == (2, 7, 1, 1)
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
        bigger = torch.randn(2, 5, 4, 6)
        assert not conv._covers_input(bigger)
        assert torch.equal(conv(bigger), F.conv2d(bigger, conv.weight, conv.bias))
