"""Layers shared by every family: TF 'SAME' padding, slim's conv + batch norm + activation.

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
from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._packed import (
    PackedCacheOwner,
    PackedWeights,
    bn_foldable,
    can_accumulate_into,
    conv_bn_weights,
    packed_activation,
    packed_conv,
    packed_conv_add_,
    packed_weights,
    packing_applies,
)

__all__ = [
    "AvgPool2dSame",
    "BatchNorm2d",
    "Concat",
    "Conv1x1AsLinear",
    "Conv2dSame",
    "ConvBnAct",
    "ConvLogitsHead",
    "FixedWindowAvgPool",
    "GlobalAvgPool",
    "MaxPool2dSame",
    "SeparableConv2dSame",
    "SpatialSqueeze",
    "Squeeze1x1",
    "batch_norm_after_conv",
    "conv_then_bn",
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
            # windows start one pixel earlier under the larger symmetric padding; the zero tap
            # at the top/left of the kernel covers that pixel (after - before is 0 or 1)
            weight = F.pad(weight, (right - left, 0, bottom - top, 0))
            top, left = bottom, right
        return F.conv2d(x, weight, self.bias, self.stride, (top, left), self.dilation, self.groups)

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
        if self.pad_kernel:  # asymmetric: the zero-tap kernel beats padding a copy of x
            top, bottom, left, right = self._same_padding(x)
            return top == bottom and left == right
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
        padding = self.padding
        if self.dynamic_same:
            top, bottom, left, right = self._same_padding(x)
            if bottom != top or right != left:
                x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
            else:
                padding = (top, left)
        return packed_conv(self, x, padding, post_op, (weights or self.packed_weights)(x))

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
            tuple(x.shape[-2:]) == self.kernel_size
            and self.padding == (0, 0)
            and self.dilation == (1, 1)
            and self.groups == 1
            and x.dim() == 4
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

    Two fast paths give the same values: NCHW tensors on CPU are pooled from shifted slices
    (torch's kernels are slow there), and elsewhere torch's ``ceil_mode`` windows are used without
    a padded copy where they coincide with TF's (e.g. 3x3/2 on any size)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        if _slices_beat_pool_kernels(x):
            if self.same:
                x = pad_same(x, k, s, value=float("-inf"))
            return _reduce_windows(x, k, s, torch.maximum)
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


class BatchNorm2d(PackedCacheOwner, nn.BatchNorm2d):
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


# In-place forms of the activations slim uses (ConvBnAct's inference path)
_INPLACE_ACTS: dict[type, Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: torch.relu_,
    nn.ReLU6: lambda t: t.clamp_(0.0, 6.0),
    nn.Identity: lambda t: t,
}


class ConvBnAct(PackedCacheOwner, nn.Module):
    """slim ``conv2d`` with ``normalizer_fn=batch_norm`` and an activation, in one TF scope.

    TF names: ``<scope>/weights`` (and ``biases`` when ``bias=True``), ``<scope>/BatchNorm/...``.

    In inference (batch norm in eval mode, no autograd) the conv output, which nothing else
    holds, is normalised (as ``x * scale + shift`` from the moving statistics) and activated in
    place: the network then allocates one tensor per conv instead of three, which is what
    memory-bound CPU inference is sensitive to.
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
        post_op = packed_activation(self.act)
        if post_op is not None and bn_foldable(self.bn) and self.conv.runs_packed(x):
            # conv + batch norm + bias + activation in one oneDNN call
            return self.conv.forward_packed(x, post_op, self.packed_weights)
        y = batch_norm_after_conv(self.bn, self.conv(x))
        inplace_act = _INPLACE_ACTS.get(type(self.act))
        if inplace_act is None or _autograd_needs(y):
            return self.act(y)
        return inplace_act(y)  # y is this block's own fresh tensor

    def forward_add_(
        self, x: torch.Tensor, into: torch.Tensor, relu: bool = False
    ) -> torch.Tensor | None:
        """:meth:`Conv2dSame.forward_add_` for a block without activation, its batch norm
        folded into the packed weight; None where it does not apply."""
        if _hooked(self) or not (isinstance(self.act, nn.Identity) and bn_foldable(self.bn)):
            return None  # a hook on this block must see its own call
        return self.conv.forward_add_(x, into, relu, self.packed_weights)

    def packed_weights(self, x: torch.Tensor) -> PackedWeights:
        """The conv's weight with the batch norm folded in, packed for ``x`` (cached)."""
        return conv_bn_weights(self, self.conv, self.bn, x)


def _autograd_needs(y: torch.Tensor) -> bool:
    """Whether autograd may need ``y`` unmodified (then no in-place shortcut applies)."""
    return torch.is_grad_enabled() and y.requires_grad


def batch_norm_after_conv(bn: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """``bn(y)`` for the fresh output ``y`` of a conv; at inference (eval mode, nothing for
    autograd to keep) an affine batch norm with moving statistics is written into ``y`` instead
    of a new tensor.

    On CPU, allocating a new activation per layer costs more than the arithmetic (page faults
    on every large tensor), so this in-place form makes a conv + batch norm + ReLU block about
    as cheap as TensorFlow's fused one. It is the same affine map, rounded differently (1 ulp).
    The batch norm module itself is not called on this path (no forward hooks on it).
    """
    if isinstance(bn, nn.Identity):
        return y
    if (
        bn.training
        or _autograd_needs(y)
        or not isinstance(bn, nn.BatchNorm2d)
        or bn.running_var is None
    ):
        return bn(y)
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale.mul_(bn.weight)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(scale)
    shift = torch.addcmul(beta, bn.running_mean, scale, value=-1)  # beta - mean * scale
    return torch.addcmul(shift.view(1, -1, 1, 1), y, scale.view(1, -1, 1, 1), out=y)


def conv_then_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` for a conv (or a separable conv without its own batch norm and
    activation) and a sibling batch norm, as the NASNet cells place them. In inference the
    batch norm is folded into the conv's packed weight (cached on the batch norm) and the pair
    is one oneDNN call; see :mod:`architectures._packed`."""
    if isinstance(conv, SeparableConv2dSame) and not _hooked(conv):
        if isinstance(conv.bn, nn.Identity) and isinstance(conv.act, nn.Identity):
            x, conv = conv.depthwise(x), conv.pointwise
    if (
        isinstance(conv, Conv2dSame)
        and isinstance(bn, PackedCacheOwner)
        and bn_foldable(bn)
        and conv.runs_packed(x)
    ):
        return conv.forward_packed(x, ("none", []), lambda t: conv_bn_weights(bn, conv, bn, t))
    return bn(conv(x))


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


class SeparableConv2dSame(PackedCacheOwner, nn.Module):
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
        y = self.depthwise(x)
        post_op = packed_activation(self.act)
        if post_op is not None and bn_foldable(self.bn) and self.pointwise.runs_packed(y):
            return self.pointwise.forward_packed(y, post_op, self.packed_weights)
        return self.act(self.bn(self.pointwise(y)))

    def packed_weights(self, x: torch.Tensor) -> PackedWeights:
        """The pointwise weight with the batch norm folded in, packed for ``x`` (cached)."""
        return conv_bn_weights(self, self.pointwise, self.bn, x)


class GlobalAvgPool(nn.Module):
    """slim's ``reduce_mean(net, [1, 2], keepdims=True)`` (end point ``global_pool``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class SpatialSqueeze(nn.Module):
    """slim's ``spatial_squeeze``: (N, C, 1, 1) → (N, C); a larger map stays a map (fully
    convolutional use, where TF's squeeze would fail)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) if x.shape[-2:] == (1, 1) else x


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


class Squeeze1x1(nn.Module):
    """slim's ``spatial_squeeze`` in front of a classifier: (N, C, 1, 1) → (N, C).

    Unlike :class:`SpatialSqueeze` a larger map is an error (slim's squeeze fails there too), so a
    fixed pooling window that does not cover the map is reported instead of mis-shaped logits.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"the classifier needs a 1x1 map after pooling, got {tuple(x.shape[-2:])}: the "
                "fixed pooling window does not cover this input size; build the model with "
                "global_pool=True to average any map size"
            )
        return x.flatten(1)


class Concat(nn.Module):
    """Branches applied to the same input, outputs concatenated along channels: the body of an
    Inception ``Mixed_*`` block (slim's ``tf.concat([branch_0, branch_1, ...], 3)``).

    The branches are the children, in order, named by their TF scopes (``Branch_0``, ...).
    """

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], dim=1)


class ConvLogitsHead(nn.Sequential):
    """slim's ``Logits`` scope of Inception v1–v3: average pool to 1x1, dropout (training only),
    squeeze, and a 1x1-conv classifier with biases (a :class:`Conv1x1AsLinear`).

    The children are named like slim's scopes and end points: ``pool = (name, module)``
    (``("global_pool", GlobalAvgPool())`` or a fixed window such as ``"AvgPool_1a"``), then
    ``dropout``, ``SpatialSqueeze`` and ``logits`` (e.g. ``"Conv2d_1c_1x1"``). With
    ``num_classes=0`` the classifier is an ``nn.Identity`` and the head returns the features.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        drop_rate: float,
        pool: tuple[str, nn.Module],
        dropout: str,
        logits: str,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.pool_name, self.logits_name = pool[0], logits
        self.add_module(pool[0], pool[1])
        self.add_module(dropout, nn.Dropout(drop_rate))
        self.add_module("SpatialSqueeze", Squeeze1x1())
        self.add_module(logits, self._classifier(num_classes))

    def _classifier(self, num_classes: int) -> nn.Module:
        return Conv1x1AsLinear(self.in_features, num_classes) if num_classes else nn.Identity()

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: pooled features (N, in_features)."""
        *layers, _classifier = self
        for layer in layers:
            x = layer(x)
        return x

    def reset(self, num_classes: int) -> None:
        """A new, randomly initialised classifier for ``num_classes`` (0: none)."""
        setattr(self, self.logits_name, self._classifier(num_classes))

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        """slim's end points of the head: the pool (by its name) and, with a classifier,
        ``Logits``."""
        points = OrderedDict([(self.pool_name, self[0])])
        if not isinstance(self[-1], nn.Identity):
            points["Logits"] = self[-1]
        return points
