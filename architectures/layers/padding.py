"""TF 'SAME' padding: its arithmetic, and ``Conv2dSame``, the conv every family is built from.

TensorFlow's 'SAME' padding pads a total of ``max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)``
pixels along a dimension of size ``n`` and puts the *smaller* half on top/left. PyTorch's
symmetric ``padding=`` cannot express the odd totals that appear with stride 2 on even inputs
(or even kernels), which is the single most common cause of broken TF ports. Everything here
pads exactly like TF and costs nothing when the padding happens to be symmetric:

* the total does not depend on ``n`` when ``s == 1``, so stride-1 layers decide once, at
  construction, and use the native ``padding=`` argument when the total is even;
* strided layers compute the padding from the input size at run time (cheap integer math)
  and call ``F.pad`` only when it is asymmetric;
* a strided *depthwise* conv (one output channel per input channel) does not copy its input
  even then: TF's one extra pixel at the bottom/right equals torch's symmetric padding by the
  larger amount with a zero tap added at the top/left of the kernel (a tiny padded copy of the
  weight instead of one of the input, which for a depthwise conv costs about as much as the
  conv itself: the padded copy takes 1.5-1.9x the time). With a channel multiplier above 1
  (Inception v2's stem) oneDNN has no depthwise kernel and pays for every tap: there the
  padded copy is the faster one (0.32-0.36x the zero-tap time on NCHW input, 0.85-0.88x on
  channels-last; 1 thread, batch 1 and 16).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .._packed import (
    PackedCacheOwner,
    PackedWeights,
    can_accumulate_into,
    packed_conv,
    packed_conv_add_,
    packed_weights,
    packing_applies,
)

__all__ = ["Conv2dSame", "make_padding", "pad_same", "same_padding_amounts"]


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


class Conv2dSame(PackedCacheOwner, nn.Conv2d):
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
        # depthwise convs take TF's asymmetric padding into the kernel (see the module docstring)
        self.pad_kernel = groups == in_channels == out_channels > 1 and d == (1, 1)

    # set by architectures.optimize_for_inference (packed even with autograd on); the packed
    # weight is a cache, not state (see architectures._packed)
    pack_for_inference = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.runs_packed(x):
            return self.forward_packed(x)
        if not self.dynamic_same:
            if self._covers_input(x):
                return self._as_matrix_product(x)
            return super().forward(x)
        top, bottom, left, right = self._same_padding(x)
        weight = self.weight
        if bottom != top or right != left:
            if not self.pad_kernel:
                return super().forward(F.pad(x, (left, right, top, bottom)))
            weight = self.with_zero_tap(weight, x)
            top, left = bottom, right
        return F.conv2d(x, weight, self.bias, self.stride, (top, left), self.dilation, self.groups)

    def with_zero_tap(self, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``weight`` (this conv's, or one folded from it) as the conv takes it on ``x``: with
        a zero tap at the top/left where TF's padding of ``x`` is asymmetric and this
        depthwise conv pads its kernel instead of the input (see the module docstring).

        The windows start one pixel earlier under the larger symmetric padding; the zero tap
        covers that pixel (after - before is 0 or 1)."""
        if not (self.dynamic_same and self.pad_kernel):
            return weight
        top, bottom, left, right = self._same_padding(x)
        if bottom == top and right == left:
            return weight
        return F.pad(weight, (right - left, 0, bottom - top, 0))

    def _same_padding(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        k, s, d = self.kernel_size, self.stride, self.dilation
        top, bottom = same_padding_amounts(x.shape[-2], k[0], s[0], d[0])
        left, right = same_padding_amounts(x.shape[-1], k[1], s[1], d[1])
        return top, bottom, left, right

    def runs_packed(self, x: torch.Tensor) -> bool:
        """Whether ``x`` takes the prepacked oneDNN path (see :mod:`architectures._packed`)."""
        if not packing_applies(self, x):
            return False
        if not self.dynamic_same:
            return not self._covers_input(x)  # the GEMM path is better
        return True

    def packed_weights(self, x: torch.Tensor) -> PackedWeights:
        """This conv's own weight packed for ``x`` and its bias (cached)."""
        w, b = self.weight, self.bias
        return packed_weights(self, self, (w, b), lambda: (w, b), x)

    def forward_packed(
        self,
        x: torch.Tensor,
        post_op: tuple[str, list[float]] = ("none", []),
        weights: Callable[[torch.Tensor], PackedWeights] | None = None,
    ) -> torch.Tensor:
        """The conv and a fused activation on the packed weight (when :meth:`runs_packed`);
        ``weights`` gives another weight for the same geometry (a batch norm folded in)."""
        packed = (weights or self.packed_weights)(x)  # made for x's shape, padding included
        pad_input, padding = self.packed_padding(x)
        if pad_input is not None:
            x = F.pad(x, pad_input)
        return packed_conv(self, x, padding, post_op, packed)

    def packed_padding(
        self, x: torch.Tensor
    ) -> tuple[tuple[int, int, int, int] | None, tuple[int, int]]:
        """How the packed conv pads ``x``: ``(F.pad amounts or None, the conv's symmetric
        padding)``. Where 'SAME' is asymmetric the input is padded, but a depthwise conv pads
        its kernel instead (the packed weight has the zero tap, see
        :func:`architectures._packed.packed_weights`): 0.6-0.85x the time of the plain zero-tap
        conv with its batch norm and activation, where a padded copy of ``x`` took 0.9-1.2x at
        batch 1 and up to 6x at batch 16 (MobileNet v2's strided layers, 1 thread)."""
        if not self.dynamic_same:
            return None, self.padding
        top, bottom, left, right = self._same_padding(x)
        if bottom == top and right == left:
            return None, (top, left)
        if self.pad_kernel:
            return None, (bottom, right)
        return (left, right, top, bottom), (0, 0)

    def forward_add_(
        self,
        x: torch.Tensor,
        into: torch.Tensor,
        relu: bool = False,
        weights: Callable[[torch.Tensor], PackedWeights] | None = None,
    ) -> torch.Tensor | None:
        """``into += self(x)`` (then ReLU if ``relu``) as one call on the packed weight; returns
        ``into``, or None when that path does not apply (nothing is written then).

        For residual units, whose caller knows that nothing else holds ``into``: see
        :func:`architectures._packed.packed_conv_add_`.
        """
        if self.dynamic_same or not self.runs_packed(x) or not can_accumulate_into(self, x, into):
            return None
        weights = (weights or self.packed_weights)(x)
        return packed_conv_add_(self, x, self.padding, into, relu, weights)

    def _covers_input(self, x: torch.Tensor) -> bool:
        """A VALID conv whose kernel is exactly the input map (VGG's fc6 at 224x224, heads that
        convolve a whole map): its single output pixel is a matrix product."""
        return (
            self.padding == (0, 0)  # first: it rules out most convs
            and self.groups == 1
            and self.dilation == (1, 1)
            and x.dim() == 4
            and x.shape[-2:] == self.kernel_size
        )

    def _as_matrix_product(self, x: torch.Tensor) -> torch.Tensor:
        # One GEMM that reads the kernel once; the conv path would also re-lay the whole kernel
        # out for oneDNN at every call (411 MB for VGG's fc6). Both sides are flattened in the
        # kernel's memory order, so neither is copied.
        w = self.weight
        if w.is_contiguous(memory_format=torch.channels_last):
            w, x = w.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)
        y = F.linear(x.reshape(x.shape[0], -1), w.reshape(w.shape[0], -1), self.bias)
        return y[:, :, None, None]
