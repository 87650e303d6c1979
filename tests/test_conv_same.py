"""``Conv2dSame`` pads exactly like TF 'SAME' on every path: static, native symmetric, the zero-tap
kernel of strided depthwise convs (channel multiplier 1), and the padded input copy of the
others."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from architectures.layers import Conv2dSame, same_padding_amounts

SIZES = [(7, 8), (8, 8), (9, 10), (10, 7)]
# multiplier: None for a dense conv, else a depthwise conv with that channel multiplier
CASES = [
    (hw, stride, kernel, dilation, multiplier)
    for hw, stride, kernel, dilation, multiplier in itertools.product(
        SIZES, (1, 2, 3), (2, 3, 5), (1, 2), (None, 1, 2)
    )
]
CHANNELS = 4


def build(kernel: int, stride: int, dilation: int, multiplier: int | None, seed: int) -> Conv2dSame:
    torch.manual_seed(seed)
    out = CHANNELS * (multiplier or 3)
    groups = CHANNELS if multiplier else 1
    return Conv2dSame(CHANNELS, out, kernel, stride, "SAME", dilation, groups).eval()


def padded_copy_reference(conv: Conv2dSame, x: torch.Tensor) -> torch.Tensor:
    """TF 'SAME' spelled out: pad the input by TF's amounts, then a VALID conv."""
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    top, bottom = same_padding_amounts(x.shape[-2], kh, sh, dh)
    left, right = same_padding_amounts(x.shape[-1], kw, sw, dw)
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


def path_taken(conv: Conv2dSame, hw: tuple[int, int]) -> str:
    if not conv.dynamic_same:
        return "static"
    pads = [
        same_padding_amounts(n, k, s, d)
        for n, k, s, d in zip(hw, conv.kernel_size, conv.stride, conv.dilation)
    ]
    if all(before == after for before, after in pads):
        return "symmetric"
    return "zero tap" if conv.pad_kernel else "padded copy"


def test_every_path_equals_padding_the_input():
    paths = set()
    for i, (hw, stride, kernel, dilation, multiplier) in enumerate(CASES):
        conv = build(kernel, stride, dilation, multiplier, seed=i)
        x = torch.randn(2, CHANNELS, *hw)
        with torch.no_grad():
            got, want = conv(x), padded_copy_reference(conv, x)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5), (hw, stride, kernel, dilation, multiplier)
        paths.add(path_taken(conv, hw))
    assert paths == {"static", "symmetric", "zero tap", "padded copy"}


@pytest.mark.parametrize(
    "multiplier, dilation, path",
    [(1, 1, "zero tap"), (2, 1, "padded copy"), (1, 2, "padded copy"), (None, 1, "padded copy")],
)
def test_only_plain_depthwise_convs_take_the_zero_tap(multiplier, dilation, path):
    """The zero tap pays off where oneDNN has a depthwise kernel (one output channel per input
    channel); with a channel multiplier (Inception v2's stem) every tap costs, so the input is
    padded instead."""
    conv = build(3, 2, dilation, multiplier, seed=0)
    assert path_taken(conv, (8, 8)) == path


def test_gradients_reach_the_depthwise_kernel_through_the_zero_tap():
    conv = build(3, 2, 1, multiplier=1, seed=0).train()
    assert conv.pad_kernel
    x = torch.randn(1, CHANNELS, 8, 8)
    conv(x).square().sum().backward()
    grad = conv.weight.grad.clone()
    conv.weight.grad = None
    padded_copy_reference(conv, x).square().sum().backward()
    assert torch.allclose(grad, conv.weight.grad, atol=1e-5)


@pytest.mark.tf
def test_matches_tensorflow(tensorflow):
    """The same convs in TensorFlow (``conv2d`` / ``depthwise_conv2d``, padding 'SAME'); TF allows
    a dilation only with stride 1."""
    tf, _ = tensorflow
    cases = [c for c in CASES if c[1] == 1 or c[3] == 1]
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    ops, feeds, ours = [], {}, []
    with graph.as_default():
        for i, (hw, stride, kernel, dilation, multiplier) in enumerate(cases):
            conv = build(kernel, stride, dilation, multiplier, seed=i)
            x = rng.standard_normal((2, *hw, CHANNELS)).astype(np.float32)  # NHWC
            with torch.no_grad():
                ours.append(conv(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
            w = conv.weight.detach().numpy()
            placeholder = tf.compat.v1.placeholder(tf.float32, x.shape)
            feeds[placeholder] = x
            if multiplier:  # torch [in * mult, 1, kh, kw] -> TF [kh, kw, in, mult]
                tf_w = w.reshape(CHANNELS, -1, kernel, kernel).transpose(2, 3, 0, 1)
                y = tf.nn.depthwise_conv2d(
                    placeholder, tf_w, [1, stride, stride, 1], "SAME", dilations=[dilation] * 2
                )
            else:
                y = tf.nn.conv2d(
                    placeholder, w.transpose(2, 3, 1, 0), stride, "SAME", dilations=dilation
                )
            ops.append(y + conv.bias.detach().numpy())
        with tf.compat.v1.Session(graph=graph) as sess:
            theirs = sess.run(ops, feeds)
    for case, got, want in zip(cases, ours, theirs):
        assert got.shape == want.shape, case
        assert np.allclose(got.numpy(), want, atol=1e-5), case
