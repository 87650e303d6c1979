"""The building blocks of NASNet-A and PNASNet-5 cells (see :mod:`architectures._nasnet_utils`
for how a cell uses them): the operations written as slim's strings (separable stacks, pools,
projections, identity), the paths that bring the previous-but-one state to a cell's size, and
``drop_path``."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    AvgPool2dSame,
    BatchNorm2d,
    Conv2dSame,
    MaxPool2dSame,
    SeparableConv2dSame,
    conv_then_bn,
)

__all__ = [
    "BN_EPS",
    "FactorizedReduction",
    "PrevProjection",
    "ReluFactorizedReduction",
    "bn",
    "calc_reduction_layers",
    "conv1x1",
    "drop_path",
    "make_operation",
]

BN_EPS = 1e-3  # nasnet_*_arg_scope: batch_norm_epsilon=1e-3, scale=True


def bn(channels: int) -> BatchNorm2d:
    return BatchNorm2d(channels, eps=BN_EPS, scale=True)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> Conv2dSame:
    # slim conv2d under the nasnet arg scope: no bias, no activation, 'SAME' (a no-op for 1x1)
    return Conv2dSame(in_channels, out_channels, 1, stride=stride, bias=False)


def calc_reduction_layers(num_cells: int, num_reduction_layers: int) -> list[int]:
    """Indices of the cells that reduce (slim's ``calc_reduction_layers``): evenly spread."""
    n = num_reduction_layers + 1
    return [int(i / n * num_cells) for i in range(1, n)]


def drop_path(x: torch.Tensor, keep_prob: float) -> torch.Tensor:
    """Zero whole examples with probability ``1 - keep_prob`` and rescale the rest (slim's
    ``drop_path``: ``x / keep_prob * floor(keep_prob + U[0, 1))`` per example)."""
    noise = torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device)
    return x / keep_prob * torch.floor(keep_prob + noise)


# --------------------------------------------------------------------------- cell operations


class SeparableStack(nn.Module):
    """``separable_<k>x<k>_<n>``: ``n`` times relu → separable conv → batch norm (scopes
    ``separable_<k>x<k>_<i>`` and the sibling ``bn_sep_<k>x<k>_<i>``); only the first strides."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, num_layers: int, stride: int
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        for i in range(1, num_layers + 1):
            conv = SeparableConv2dSame(
                in_channels if i == 1 else out_channels,
                out_channels,
                kernel,
                stride=stride if i == 1 else 1,
                bn=False,
                act=None,
            )
            self.add_module(f"separable_{kernel}x{kernel}_{i}", conv)
            self.add_module(f"bn_sep_{kernel}x{kernel}_{i}", bn(out_channels))
        # for zoo.load(fuse_bn=True): each batch norm follows its separable conv's pointwise
        self.fuse_pairs = [
            (f"separable_{kernel}x{kernel}_{i}.pointwise", f"bn_sep_{kernel}x{kernel}_{i}")
            for i in range(1, num_layers + 1)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layers = iter(self.children())
        for conv, bn in zip(layers, layers):
            x = conv_then_bn(conv, bn, torch.relu(x))
        return x


class Pooling(nn.Module):
    """``max_pool_3x3`` / ``avg_pool_3x3`` ('SAME', TF's average excludes the padding), then
    ``1x1`` + ``bn_1`` (no activation in between) when the channel count must change."""

    tf_scopes = {"conv_1x1": "1x1"}
    fuse_pairs = (("conv_1x1", "bn_1"),)  # see architectures._fuse

    def __init__(self, kind: str, kernel: int, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        pool = MaxPool2dSame if kind == "max" else AvgPool2dSame
        self.pool = pool(kernel, stride, "SAME")
        self.conv_1x1 = self.bn_1 = None
        if in_channels != out_channels:
            self.conv_1x1 = conv1x1(in_channels, out_channels)
            self.bn_1 = bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        if self.conv_1x1 is not None:
            x = conv_then_bn(self.conv_1x1, self.bn_1, x)
        return x


class Projection(nn.Module):
    """``none`` where a stride or a channel change is needed: relu → strided ``1x1`` → ``bn_1``."""

    tf_scopes = {"conv_1x1": "1x1"}
    fuse_pairs = (("conv_1x1", "bn_1"),)

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv_1x1 = conv1x1(in_channels, out_channels, stride)
        self.bn_1 = bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_then_bn(self.conv_1x1, self.bn_1, torch.relu(x))


_SEPARABLE = re.compile(r"separable_(\d+)x\1(?:_(\d+))?$")
_POOL = re.compile(r"(max|avg)_pool_(\d+)x\2$")


def make_operation(operation: str, in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """The module of one slim operation string (``_apply_conv_operation``)."""
    if match := _SEPARABLE.match(operation):
        kernel, layers = int(match[1]), int(match[2] or 1)
        return SeparableStack(in_channels, out_channels, kernel, layers, stride)
    if match := _POOL.match(operation):
        return Pooling(match[1], int(match[2]), in_channels, out_channels, stride)
    if operation == "none":
        if stride > 1 or in_channels != out_channels:
            return Projection(in_channels, out_channels, stride)
        return nn.Identity()
    raise ValueError(f"unknown NASNet operation {operation!r}")


# --------------------------------------------------------------------------- prev-layer paths


class FactorizedReduction(nn.Module):
    """slim's ``factorized_reduction`` with stride 2: halve the map without dropping pixels.

    Path 1 takes the even pixels (a 1x1 stride-2 VALID average pool), path 2 the odd ones (TF
    pads one zero row/column at the bottom/right, crops the first and takes every second pixel),
    each through its own 1x1 conv (``path1_conv``, ``path2_conv``; path 2 gets the extra filter of
    an odd count); the halves are concatenated and batch-normed (``final_path_bn``). The
    variables live straight in the calling scope, hence ``tf_scopes`` of the owner maps this
    module to ``""``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.path1_conv = conv1x1(in_channels, out_channels // 2)
        self.path2_conv = conv1x1(in_channels, out_channels - out_channels // 2)
        self.final_path_bn = bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path1 = x[:, :, ::2, ::2]
        path2 = x[:, :, 1::2, 1::2]
        # An odd size leaves path 2 one pixel short: that pixel is TF's zero padding.
        short_h, short_w = path1.shape[-2] - path2.shape[-2], path1.shape[-1] - path2.shape[-1]
        if short_h or short_w:
            path2 = F.pad(path2, (0, short_w, 0, short_h))
        paths = torch.cat([self.path1_conv(path1), self.path2_conv(path2)], dim=1)
        return self.final_path_bn(paths)


class ReluFactorizedReduction(FactorizedReduction):
    """``_reduce_prev_layer`` for a ``prev`` twice the size of ``x``: relu, then the reduction."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.relu(x))


class PrevProjection(nn.Module):
    """``_reduce_prev_layer`` for a ``prev`` with another channel count: relu → ``prev_1x1`` →
    ``prev_bn`` (in the cell's scope)."""

    fuse_pairs = (("prev_1x1", "prev_bn"),)

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.prev_1x1 = conv1x1(in_channels, out_channels)
        self.prev_bn = bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_then_bn(self.prev_1x1, self.prev_bn, torch.relu(x))
