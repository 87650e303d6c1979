"""Layers shared by every family: TF 'SAME' padding, slim's conv + batch norm + activation.

TensorFlow's 'SAME' padding pads a total of ``max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)``
pixels along a dimension of size ``n`` and puts the *smaller* half on top/left. PyTorch's
symmetric ``padding=`` cannot express the odd totals that appear with stride 2 on even inputs
(or even kernels), which is the single most common cause of broken TF ports. Everything here
pads exactly like TF and costs nothing when the padding happens to be symmetric:

* the total does not depend on ``n`` when ``s == 1``, so stride-1 layers decide once, at
  construction, and use the native ``padding=`` argument when the total is even;
* strided layers compute the padding from the input size at run time (cheap integer math)
  and call ``F.pad`` only when it is asymmetric.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AvgPool2dSame",
    "BatchNorm2d",
    "Conv1x1AsLinear",
    "Conv2dSame",
    "ConvBnAct",
    "GlobalAvgPool",
    "MaxPool2dSame",
    "SeparableConv2dSame",
    "SpatialSqueeze",
    "make_padding",
    "pad_same",
    "same_padding_amounts",
]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def same_padding_amounts(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of TF 'SAME' along one dimension of ``size`` pixels."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    value: float = 0.0,
) -> torch.Tensor:
    """Pad an NCHW tensor exactly as TF 'SAME' would before a VALID op (no-op when not needed)."""
    top, bottom = same_padding_amounts(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_padding_amounts(x.shape[-1], kernel[1], stride[1], dilation[1])
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def make_padding(
    padding: str | int | tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[tuple[int, int], bool]:
    """Static ``padding=`` for the torch op and whether TF 'SAME' must be computed per input.

    Returns ``((ph, pw), dynamic)``. 'VALID' is ``(0, 0)``; an int/tuple is explicit symmetric
    padding (slim's ``conv2d_same``); 'SAME' is static when every stride is 1 and every total
    ``(k - 1) * d`` is even, dynamic otherwise.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return (0, 0), False
        if mode != "SAME":
            raise ValueError(f"padding must be 'SAME', 'VALID' or an int, got {padding!r}")
        totals = [(k - 1) * d for k, d in zip(kernel, dilation)]
        if all(s == 1 for s in stride) and all(t % 2 == 0 for t in totals):
            return (totals[0] // 2, totals[1] // 2), False
        return (0, 0), True
    return _pair(padding), False


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF padding semantics: ``padding`` is 'SAME', 'VALID' or explicit ints."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = "SAME",
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        k, s, d = _pair(kernel_size), _pair(stride), _pair(dilation)
        static, self.dynamic_same = make_padding(padding, k, s, d)
        super().__init__(in_channels, out_channels, k, s, static, d, groups, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic_same:
            x = pad_same(x, self.kernel_size, self.stride, self.dilation)
        return super().forward(x)


def _slices_beat_pool_kernels(x: torch.Tensor) -> bool:
    """torch's CPU pooling kernels are slow on NCHW tensors (scalar loops; ``max_pool2d`` also
    computes indices): reducing shifted strided slices is 3-30x faster there. Channels-last and
    GPU tensors keep torch's own kernels, which are fast."""
    return x.device.type == "cpu" and not x.is_contiguous(memory_format=torch.channels_last)


def _reduce_windows(
    x: torch.Tensor,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    combine: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Combine every ``kernel`` window (at ``stride``) of an NCHW tensor that is already padded,
    separably: the window's rows first, then its columns (exact for max; a sum only changes its
    addition order)."""
    (kh, kw), (sh, sw) = kernel, stride
    out_h, out_w = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    rows = x[..., 0 : sh * (out_h - 1) + 1 : sh, :]
    for i in range(1, kh):
        rows = combine(rows, x[..., i : i + sh * (out_h - 1) + 1 : sh, :])
    out = rows[..., 0 : sw * (out_w - 1) + 1 : sw]
    for j in range(1, kw):
        out = combine(out, rows[..., j : j + sw * (out_w - 1) + 1 : sw])
    return out.clone() if kh == kw == 1 else out  # never a view of the input


def _window_counts(size: int, kernel: int, stride: int, before: int, out: int) -> list[int]:
    """Real (unpadded) pixels in each of the ``out`` windows along one dimension."""
    starts = [o * stride - before for o in range(out)]
    return [min(a + kernel, size) - max(a, 0) for a in starts]


class MaxPool2dSame(nn.Module):
    """slim ``max_pool2d``; 'SAME' pads with -inf so padding never wins the max."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str = "SAME",
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.same = padding.upper() == "SAME"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = pad_same(x, self.kernel_size, self.stride, value=float("-inf"))
        if _slices_beat_pool_kernels(x):
            return _reduce_windows(x, self.kernel_size, self.stride, torch.maximum)
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        mode = "SAME" if self.same else "VALID"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={mode}"


class AvgPool2dSame(nn.Module):
    """slim ``avg_pool2d``; 'SAME' averages only over real pixels (TF excludes the padding)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str = "SAME",
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.same = padding.upper() == "SAME"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        if _slices_beat_pool_kernels(x):
            return self._sum_and_divide(x)
        if not self.same:
            return F.avg_pool2d(x, k, s)
        top, bottom = same_padding_amounts(x.shape[-2], k[0], s[0])
        left, right = same_padding_amounts(x.shape[-1], k[1], s[1])
        if top == bottom and left == right:
            # Symmetric: torch's own exclusion of padding is exact and fast.
            return F.avg_pool2d(x, k, s, (top, left), count_include_pad=False)
        # Asymmetric: sum over zero padding, divide by the number of real pixels per window.
        summed = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), k, s, divisor_override=1)
        ones = x.new_ones((1, 1, x.shape[-2], x.shape[-1]))
        count = F.avg_pool2d(F.pad(ones, (left, right, top, bottom)), k, s, divisor_override=1)
        return summed / count

    def _sum_and_divide(self, x: torch.Tensor) -> torch.Tensor:
        """Window sums over zero padding from shifted slices, divided by the real pixel counts."""
        k, s = self.kernel_size, self.stride
        h, w = x.shape[-2:]
        if not self.same:
            return _reduce_windows(x, k, s, torch.add) / (k[0] * k[1])
        top, bottom = same_padding_amounts(h, k[0], s[0])
        left, right = same_padding_amounts(w, k[1], s[1])
        if top or bottom or left or right:
            x = F.pad(x, (left, right, top, bottom))
        summed = _reduce_windows(x, k, s, torch.add)
        rows = _window_counts(h, k[0], s[0], top, summed.shape[-2])
        cols = _window_counts(w, k[1], s[1], left, summed.shape[-1])
        count = torch.tensor(rows, dtype=x.dtype)[:, None] * torch.tensor(cols, dtype=x.dtype)
        return summed / count

    def extra_repr(self) -> str:
        mode = "SAME" if self.same else "VALID"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={mode}"


class BatchNorm2d(nn.BatchNorm2d):
    """slim ``batch_norm``: ``scale=False`` (Inception, no gamma) keeps only a ``bias`` (beta).

    TF stores no gamma for ``scale=False``, so there is no ``weight`` to fill either: the mapping
    stays one-to-one instead of inventing ones.
    """

    def __init__(self, num_features: int, eps: float = 1e-3, scale: bool = True) -> None:
        super().__init__(num_features, eps=eps, affine=scale)
        if not scale:
            self.bias = nn.Parameter(torch.zeros(num_features))


class Conv1x1AsLinear(nn.Linear):
    """A classifier that slim writes as a 1x1 conv on a 1x1 map (``logits/weights`` is
    ``[1, 1, in, out]``). It is a plain ``nn.Linear`` in torch; the mapping reshapes."""


class ConvBnAct(nn.Module):
    """slim ``conv2d`` with ``normalizer_fn=batch_norm`` and an activation, in one TF scope.

    TF names: ``<scope>/weights`` (and ``biases`` when ``bias=True``), ``<scope>/BatchNorm/...``.
    """

    # children → TF scope component ('' = the conv's variables live in this module's own scope)
    tf_scopes = {"conv": "", "bn": "BatchNorm"}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = "SAME",
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        bn: bool = True,
        bn_eps: float = 1e-3,
        bn_scale: bool = True,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.conv = Conv2dSame(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=bias
        )
        self.bn = BatchNorm2d(out_channels, eps=bn_eps, scale=bn_scale) if bn else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SeparableConv2dSame(nn.Module):
    """slim ``separable_conv2d``: depthwise (``depthwise_weights``) then 1x1
    (``pointwise_weights``), both in one TF scope, then an optional batch norm (``BatchNorm``)
    or bias, and an activation."""

    tf_scopes = {"depthwise": "", "pointwise": "", "bn": "BatchNorm"}

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        depth_multiplier: int = 1,
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = "SAME",
        dilation: int | tuple[int, int] = 1,
        bias: bool = False,
        bn: bool = True,
        bn_eps: float = 1e-3,
        bn_scale: bool = True,
        act: Callable[[], nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        mid = in_channels * depth_multiplier
        self.depthwise = Conv2dSame(
            in_channels, mid, kernel_size, stride, padding, dilation, groups=in_channels, bias=False
        )
        self.pointwise = Conv2dSame(mid, out_channels, 1, bias=bias)
        # slim names the 1x1 kernel 'pointwise_weights' (the walker reads tf_leaves)
        self.pointwise.tf_leaves = {"weight": "pointwise_weights"}
        self.bn = BatchNorm2d(out_channels, eps=bn_eps, scale=bn_scale) if bn else nn.Identity()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.pointwise(self.depthwise(x))))


class GlobalAvgPool(nn.Module):
    """slim's ``reduce_mean(net, [1, 2], keepdims=True)`` (end point ``global_pool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class SpatialSqueeze(nn.Module):
    """slim's ``spatial_squeeze``: (N, C, 1, 1) → (N, C); a larger map stays a map (fully
    convolutional use, where TF's squeeze would fail)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) if x.shape[-2:] == (1, 1) else x
