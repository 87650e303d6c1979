"""slim's pooling with TF semantics: 'SAME' max and average pooling (``max_pool2d`` /
``avg_pool2d``), the whole-map mean (``global_pool``) and the fixed window before the logits."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .padding import _pair, pad_same, same_padding_amounts

__all__ = ["AvgPool2dSame", "FixedWindowAvgPool", "GlobalAvgPool", "MaxPool2dSame"]


def _native_max_pool_padding(size: int, kernel: int, stride: int) -> int | None:
    """Symmetric padding with which ``max_pool2d(..., ceil_mode=True)`` places its windows
    exactly where TF 'SAME' does along a dimension of ``size``, or None where it cannot.

    Both start window ``i`` at ``i * stride - before``; torch's ceil mode lets the last window
    run past the end (where TF pads ``after >= before``), so only the window count and torch's
    limit ``padding <= kernel // 2`` need checking. For max pooling the padding value does not
    matter as long as it never wins, so no padded copy is needed.
    """
    before, _ = same_padding_amounts(size, kernel, stride)
    if before > kernel // 2 or size + 2 * before < kernel:
        return None
    count = math.ceil((size + 2 * before - kernel) / stride) + 1
    if (count - 1) * stride >= size + before:  # torch drops a window starting in the padding
        count -= 1
    return before if count == math.ceil(size / stride) else None


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


def _max_along(x: torch.Tensor, dim: int, kernel: int, before: int, out: int) -> torch.Tensor:
    """Stride-1 max over ``kernel`` neighbours along ``dim`` as TF 'SAME' places them
    (``before`` of them ahead of each position, padding never winning), into a new tensor.

    Output ``i`` takes input ``i - before + t`` for each tap ``t`` that falls inside. The tap
    ``t = before`` always does, so it starts the result; every other tap is folded in, in place,
    over the outputs it reaches: no padded copy, and on the innermost-contiguous (NHWC) layout
    each step is a plain elementwise maximum of two dense blocks.
    """
    size = x.shape[dim]
    result = x.narrow(dim, 0, out).clone(memory_format=torch.contiguous_format)
    for tap in range(kernel):
        shift = tap - before
        lo, hi = max(0, -shift), min(out, size - shift)  # outputs whose input is inside
        if tap != before and hi > lo:
            reached = result.narrow(dim, lo, hi - lo)
            torch.maximum(reached, x.narrow(dim, lo + shift, hi - lo), out=reached)
    return result


def _stride1_max_pool_nhwc(x: torch.Tensor, kernel: tuple[int, int], same: bool) -> torch.Tensor:
    """Stride-1 max pooling of a channels-last tensor, rows then columns, on its NHWC view.

    torch's channels-last ``max_pool2d`` kernel visits every window tap by tap: 1.0-2.4x the
    time of these four dense maxima for Inception's 3x3 branch pools (1 thread, batch 1 and
    16). The result is channels-last, as torch's would be.
    """
    nhwc = x.permute(0, 2, 3, 1)
    for dim, k in ((1, kernel[0]), (2, kernel[1])):
        size = nhwc.shape[dim]
        before = same_padding_amounts(size, k, 1)[0] if same else 0
        nhwc = _max_along(nhwc, dim, k, before, size if same else size - k + 1)
    return nhwc.permute(0, 3, 1, 2)


def _dense_maxima_apply(x: torch.Tensor, kernel: tuple[int, int]) -> bool:
    """Whether :func:`_stride1_max_pool_nhwc` may pool ``x``: a channels-last CPU batch at
    least a window large, no autograd (its maxima are written in place), and eager mode
    (``torch.compile`` and ``torch.export`` trace torch's own op, which inductor lowers well)."""
    return (
        not torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and x.shape[-2] >= kernel[0]
        and x.shape[-1] >= kernel[1]
        and not (torch.is_grad_enabled() and x.requires_grad)
    )


class _Pool2dSame(nn.Module):
    """What slim's ``max_pool2d`` and ``avg_pool2d`` share: kernel, stride, 'SAME' or 'VALID'."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str = "SAME",
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.same = padding.upper() == "SAME"

    def extra_repr(self) -> str:
        mode = "SAME" if self.same else "VALID"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={mode}"


class MaxPool2dSame(_Pool2dSame):
    """slim ``max_pool2d``; 'SAME' pads with -inf so padding never wins the max.

    Three fast paths give the same values: NCHW tensors on CPU are pooled from shifted slices
    (torch's kernels are slow there), stride-1 pools of channels-last CPU tensors from dense
    row and column maxima, and elsewhere torch's ``ceil_mode`` windows are used without a
    padded copy where they coincide with TF's (e.g. 3x3/2 on any size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        if _slices_beat_pool_kernels(x):
            if self.same:
                x = pad_same(x, k, s, value=float("-inf"))
            return _reduce_windows(x, k, s, torch.maximum)
        if s == (1, 1) and _dense_maxima_apply(x, k):
            return _stride1_max_pool_nhwc(x, k, self.same)
        if self.same:
            ph = _native_max_pool_padding(x.shape[-2], k[0], s[0])
            pw = _native_max_pool_padding(x.shape[-1], k[1], s[1])
            if ph is not None and pw is not None:
                return F.max_pool2d(x, k, s, (ph, pw), ceil_mode=True)
            x = pad_same(x, k, s, value=float("-inf"))
        return F.max_pool2d(x, k, s)


class AvgPool2dSame(_Pool2dSame):
    """slim ``avg_pool2d``; 'SAME' averages only over real pixels (TF excludes the padding)."""

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


class GlobalAvgPool(nn.Module):
    """slim's ``reduce_mean(net, [1, 2], keepdims=True)`` (end point ``global_pool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class FixedWindowAvgPool(nn.Module):
    """slim's fixed-window average pool before the logits: ``avg_pool2d(net, kernel, stride,
    'VALID')``, meant to pool the map of the default input size to 1x1.

    With ``shrink=True`` (Inception v2/v3, MobileNet v1) the window is clipped to a smaller map,
    as slim's ``_reduced_kernel_size_for_small_input`` does; without (Inception v1) a map smaller
    than the window is an error, as it is in slim.
    """

    def __init__(
        self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int], shrink: bool
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.shrink = _pair(kernel_size), _pair(stride), shrink

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        kernel = self.kernel_size
        if self.shrink:
            kernel = (min(size[0], kernel[0]), min(size[1], kernel[1]))
        elif size[0] < kernel[0] or size[1] < kernel[1]:
            raise ValueError(
                f"the fixed {kernel[0]}x{kernel[1]} pooling window does not fit the {size} map "
                "of this input size; build the model with global_pool=True to average any "
                "map size"
            )
        return F.avg_pool2d(x, kernel, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, shrink={self.shrink}"
