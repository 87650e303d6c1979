"""slim's building blocks: ``conv2d`` + ``batch_norm`` + activation in one TF scope
(``ConvBnAct``, with its in-place inference path), ``separable_conv2d``, slim's ``BatchNorm2d``
(``scale=False`` without gamma), and the branch concatenation of Inception blocks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._packed import (
    PackedCacheOwner,
    PackedWeights,
    bn_foldable,
    conv_bn_weights,
    packed_activation,
)
from .padding import Conv2dSame

__all__ = [
    "BatchNorm2d",
    "Concat",
    "ConvBnAct",
    "SeparableConv2dSame",
    "batch_norm_after_conv",
    "conv_then_bn",
]


class BatchNorm2d(PackedCacheOwner, nn.BatchNorm2d):
    """slim ``batch_norm``: ``scale=False`` (Inception, no gamma) keeps only a ``bias`` (beta).

    TF stores no gamma for ``scale=False``, so there is no ``weight`` to fill either: the mapping
    stays one-to-one instead of inventing ones.
    """

    def __init__(self, num_features: int, eps: float = 1e-3, scale: bool = True) -> None:
        super().__init__(num_features, eps=eps, affine=scale)
        if not scale:
            self.bias = nn.Parameter(torch.zeros(num_features))


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
        # the children from _modules: self.conv would first fail the ordinary attribute lookup
        # (see architectures._packed.own_tensor)
        conv, bn, act = self._modules["conv"], self._modules["bn"], self._modules["act"]
        post_op = packed_activation(act)
        if post_op is not None and bn_foldable(bn) and conv.runs_packed(x):
            # conv + batch norm + bias + activation in one oneDNN call
            return conv.forward_packed(x, post_op, self.packed_weights)
        y = batch_norm_after_conv(bn, conv(x))
        inplace_act = _INPLACE_ACTS.get(type(act))
        if inplace_act is None or _autograd_needs(y):
            return act(y)
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
        return conv_bn_weights(self, self._modules["conv"], self._modules["bn"], x)


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
        modules = self._modules  # not self.depthwise etc. (see ConvBnAct.forward)
        pointwise, bn, act = modules["pointwise"], modules["bn"], modules["act"]
        y = modules["depthwise"](x)
        post_op = packed_activation(act)
        if post_op is not None and bn_foldable(bn) and pointwise.runs_packed(y):
            return pointwise.forward_packed(y, post_op, self.packed_weights)
        return act(bn(pointwise(y)))

    def packed_weights(self, x: torch.Tensor) -> PackedWeights:
        """The pointwise weight with the batch norm folded in, packed for ``x`` (cached)."""
        return conv_bn_weights(self, self._modules["pointwise"], self._modules["bn"], x)


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
