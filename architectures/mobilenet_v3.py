"""MobileNet v3, ported from TF-slim.

Paper: Howard et al., "Searching for MobileNetV3", ICCV 2019, https://arxiv.org/abs/1905.02244.
Slim source: tensorflow/models ``research/slim/nets/mobilenet/mobilenet_v3.py`` (``V3_LARGE``,
``V3_SMALL``, ``V3_LARGE_MINIMALISTIC``, ``V3_SMALL_MINIMALISTIC``, ``mobilenet``, ``large``,
``small``, ``large_minimalistic``, ``small_minimalistic``, ``hard_swish``, ``reduce_to_1x1``) with
``mobilenet.py`` and ``conv_blocks.py`` (``expanded_conv``, ``squeeze_excite``), 2019-11.
Checkpoints (``storage.googleapis.com/mobilenet_v3/checkpoints/v3-<variant>_224_<m>_float.tgz``):
large and small at depth multiplier 1.0 and 0.75 (``mobilenet_v3_large_075`` /
``mobilenet_v3_small_075``: built with ``finegrain_classification_mode=True``), large and small
minimalistic at 1.0; 1001 classes (index 0 = background), 224x224, "inception" preprocessing
(x/255, central crop 0.875, resize, (x - 0.5) * 2). Their ``ema/`` checkpoints hold the
moving-average weights under the plain variable names.

Slim quirks reproduced here:

* the blocks are MobileNet v2's ``expanded_conv`` (:class:`~architectures.mobilenet_v2.
  ExpandedConv`): 1x1 ``expand`` to ``_make_divisible(in * factor, 8)`` (left out when that does
  not widen the input), 3x3 or 5x5 ``depthwise``, optional ``squeeze_excite``, linear 1x1
  ``project``, and the input added when the stride is 1 and the depth unchanged. Batch norm
  epsilon 0.001 with gamma everywhere; every conv 'SAME' (one extra pixel at the bottom/right
  on even sizes at stride 2).
* hard-swish is slim's ``x * relu6(x + 3) * (1 / 6)`` in this order and in float32 (not torch's
  ``hardswish``, which divides by 6); ReLU where the spec does not ask for it. The minimalistic
  nets use ReLU everywhere, no squeeze-excite and 3x3 depthwise kernels only.
* squeeze-excite: the mean of the whole map → 1x1 ``Conv`` with biases and ReLU to
  ``_make_divisible(C / 4, 8)`` channels → 1x1 ``Conv_1`` with biases back to C, gated by the
  hard sigmoid ``relu6(x + 3) * 0.16667`` (slim's literal, not 1/6), times the depthwise output.
* the head: ``Conv_1`` (1x1, batch norm) → ``reduce_to_1x1`` → ``Conv_2`` (1x1 with biases,
  *no* batch norm) → ``Logits``: ``global_pool``, dropout, ``Conv2d_1c_1x1``. ``reduce_to_1x1``
  averages the whole final map when it is square, otherwise a fixed 7x7 'VALID' window at stride
  1 (so a 9x8 map leaves 3x2 for ``Conv_2``, then ``global_pool`` averages that).
* depth multiplier: every ``num_outputs`` becomes ``_make_divisible(d * m, 8, min_depth=8)``;
  ``finegrain_classification_mode`` leaves ``Conv_2`` (1280 / 1024) unscaled.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SlimNet
from ._packed import fast_inference_enabled, register_post_op
from ._registry import register_model
from .layers import ConvBnAct
from .mobilenet_v2 import ExpandedConv, Logits, classifier, make_divisible

__all__ = [
    "MobileNetV3",
    "mobilenet_v3_large",
    "mobilenet_v3_large_075",
    "mobilenet_v3_large_minimalistic",
    "mobilenet_v3_small",
    "mobilenet_v3_small_075",
    "mobilenet_v3_small_minimalistic",
]


class Bneck(NamedTuple):
    """One ``mbv3_op`` of slim's spec: an ``expanded_conv`` block."""

    kernel: int  # depthwise kernel size
    expansion: float  # expansion factor of the input depth
    depth: int  # num_outputs (before the depth multiplier)
    stride: int
    squeeze_excite: bool  # slim's mbv3_op_se
    hard_swish: bool  # act=hard_swish (else ReLU)


# slim's V3_LARGE between the stem ``Conv`` (3x3/2, 16, hard-swish) and ``Conv_1`` (1x1, 960)
V3_LARGE = (
    Bneck(3, 1, 16, 1, False, False),
    Bneck(3, 4, 24, 2, False, False),
    Bneck(3, 3, 24, 1, False, False),
    Bneck(5, 3, 40, 2, True, False),
    Bneck(5, 3, 40, 1, True, False),
    Bneck(5, 3, 40, 1, True, False),
    Bneck(3, 6, 80, 2, False, True),
    Bneck(3, 2.5, 80, 1, False, True),
    Bneck(3, 184 / 80.0, 80, 1, False, True),
    Bneck(3, 184 / 80.0, 80, 1, False, True),
    Bneck(3, 6, 112, 1, True, True),
    Bneck(3, 6, 112, 1, True, True),
    Bneck(5, 6, 160, 2, True, True),
    Bneck(5, 6, 160, 1, True, True),
    Bneck(5, 6, 160, 1, True, True),
)
# slim's V3_SMALL between the stem ``Conv`` (3x3/2, 16, hard-swish) and ``Conv_1`` (1x1, 576)
V3_SMALL = (
    Bneck(3, 1, 16, 2, True, False),
    Bneck(3, 72.0 / 16, 24, 2, False, False),
    Bneck(3, 88.0 / 24, 24, 1, False, False),
    Bneck(5, 4, 40, 2, True, True),
    Bneck(5, 6, 40, 1, True, True),
    Bneck(5, 6, 40, 1, True, True),
    Bneck(5, 3, 48, 1, True, True),
    Bneck(5, 3, 48, 1, True, True),
    Bneck(5, 6, 96, 2, True, True),
    Bneck(5, 6, 96, 1, True, True),
    Bneck(5, 6, 96, 1, True, True),
)
# (Conv_1, Conv_2) depths after the blocks
HEADS = {"large": (960, 1280), "small": (576, 1024)}
SPECS = {"large": V3_LARGE, "small": V3_SMALL}
STEM_DEPTH = 16


def minimalistic_spec(spec: tuple[Bneck, ...]) -> tuple[Bneck, ...]:
    """slim's V3_*_MINIMALISTIC: the same depths, expansions and strides, but 3x3 depthwise
    kernels, no squeeze-excite and no hard-swish."""
    return tuple(b._replace(kernel=3, squeeze_excite=False, hard_swish=False) for b in spec)


# --------------------------------------------------------------------------- building blocks


class HardSwish(nn.Module):
    """slim's ``hard_swish``: ``x * relu6(x + 3) * (1 / 6)``, multiplied in that order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) * (1.0 / 6.0)


register_post_op(HardSwish, ("hardswish", []))  # fused into the packed convs at inference


class HardSigmoid(nn.Module):
    """The squeeze-excite gate of slim's V3: ``relu6(x + 3) * 0.16667`` (its literal)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) * 0.16667

    @staticmethod
    def apply_(x: torch.Tensor) -> torch.Tensor:
        """The same in place, on a tensor nothing else holds (no autograd)."""
        return x.add_(3.0).clamp_(0.0, 6.0).mul_(0.16667)


class SqueezeExcite(nn.Module):
    """slim ``squeeze_excite`` (scope ``squeeze_excite``; squeeze factor 4, divisible by 8): the
    map's mean → ``Conv`` (biases, ReLU) → ``Conv_1`` (biases, hard sigmoid) → times the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = make_divisible(channels / 4, 8)
        self.Conv = ConvBnAct(channels, squeeze, 1, bias=True, bn=False, act=nn.ReLU)
        self.Conv_1 = ConvBnAct(squeeze, channels, 1, bias=True, bn=False, act=HardSigmoid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._gate_applies(x):
            return x * self._gate(x)
        # slim: tf.nn.avg_pool over the whole (static) map, VALID
        return x * self.Conv_1(self.Conv(x.mean((2, 3), keepdim=True)))

    def _gate_applies(self, x: torch.Tensor) -> bool:
        """Whether the gate may run as :meth:`_gate` (the fast path by default, see
        :mod:`architectures._packed`): eval mode, nothing for autograd, eager mode, the
        children as built and without hooks (a hook sees its module's own call)."""
        if self.training or not fast_inference_enabled() or torch.compiler.is_compiling():
            return False
        down, up = self._modules["Conv"], self._modules["Conv_1"]
        blocks = (down, up, *down._modules.values(), *up._modules.values())
        return (
            type(down.act) is nn.ReLU
            and type(up.act) is HardSigmoid
            and isinstance(down.bn, nn.Identity)
            and isinstance(up.bn, nn.Identity)
            and not any(m._forward_hooks or m._forward_pre_hooks for m in blocks)
            and not (
                torch.is_grad_enabled()
                and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
            )
        )

    def _gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate (N, C, 1, 1) as two matrix products and in-place activations: the same
        arithmetic as the two 1x1 convs on the 1x1 map, the same values, in 11 ops instead of
        20 (MobileNet v3 runs one per squeeze-excite block; at batch 1 each op's fixed cost
        outweighs its arithmetic)."""
        down, up = self._modules["Conv"].conv, self._modules["Conv_1"].conv
        squeezed = F.linear(x.mean((2, 3)), down.weight.flatten(1), down.bias).relu_()
        gate = F.linear(squeezed, up.weight.flatten(1), up.bias)
        return HardSigmoid.apply_(gate).view(*gate.shape, 1, 1)


class ReduceTo1x1(nn.Module):
    """slim's ``reduce_to_1x1`` (end point ``layer_18`` large / ``layer_14`` small): a 'VALID'
    average pool at stride 1 over the whole map when it is square, else over 7x7 windows."""

    default_size = 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        kernel = h if h == w else self.default_size
        if min(h, w) < kernel:
            raise ValueError(
                f"MobileNet v3 pools a non-square final map with slim's fixed {kernel}x{kernel} "
                f"window, which does not fit the {h}x{w} map of this input (slim fails to build "
                f"there too): use an input whose final map (ceil(size / 32) per side) is square "
                f"or at least {kernel} on both sides"
            )
        return F.avg_pool2d(x, kernel, 1)


# --------------------------------------------------------------------------- the model


class MobileNetV3(SlimNet):
    """MobileNet v3 as in slim: stem conv, inverted residual blocks (some with squeeze-excite),
    1x1 ``Conv_1``, pool, 1x1 ``Conv_2`` (no batch norm), logits.

    Args:
        variant: ``"large"`` or ``"small"`` (slim's V3_LARGE / V3_SMALL).
        minimalistic: slim's V3_*_MINIMALISTIC (ReLU, 3x3 depthwise, no squeeze-excite).
        num_classes: classes of the logits (the released checkpoints have 1001); 0 = no
            classifier, ``forward`` returns the pooled ``Conv_2`` features.
        depth_multiplier: channel multiplier (1.0 and 0.75 for the checkpoints).
        finegrain_classification_mode: keep ``Conv_2`` at 1280 / 1024 channels whatever the
            multiplier (the 0.75 checkpoints were built with it).
        drop_rate: dropout before the logits in training (slim: keep_prob 0.8).
    """

    def __init__(
        self,
        *,
        variant: str = "large",
        minimalistic: bool = False,
        num_classes: int = 1001,
        depth_multiplier: float = 1.0,
        finegrain_classification_mode: bool = False,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if variant not in SPECS:
            raise ValueError(f"variant must be one of {sorted(SPECS)}, got {variant!r}")
        if depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}")
        self.tf_scope = "MobilenetV3"
        self.classifier_name = "Logits.Conv2d_1c_1x1"
        self.num_classes = num_classes
        spec = minimalistic_spec(SPECS[variant]) if minimalistic else SPECS[variant]
        head_act = nn.ReLU if minimalistic else HardSwish

        def depth(d: float) -> int:  # slim's mobilenet.depth_multiplier on num_outputs
            return make_divisible(d * depth_multiplier, 8, 8)

        def conv_bn(act: type[nn.Module]) -> partial[ConvBnAct]:
            return partial(ConvBnAct, bn_eps=1e-3, bn_scale=True, act=act)

        in_ch = depth(STEM_DEPTH)
        self.Conv = conv_bn(head_act)(3, in_ch, 3, stride=2)
        self.block_names = []
        for i, b in enumerate(spec):
            out = depth(b.depth)
            name = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
            block = ExpandedConv(
                in_ch,
                out,
                make_divisible(in_ch * b.expansion, 8),  # slim's expand_input_by_factor
                b.stride,
                kernel_size=b.kernel,
                act=HardSwish if b.hard_swish else nn.ReLU,
                squeeze_excite=SqueezeExcite if b.squeeze_excite else None,
            )
            setattr(self, name, block)
            self.block_names.append(name)
            in_ch = out
        conv_1, conv_2 = HEADS[variant]
        self.Conv_1 = conv_bn(head_act)(in_ch, depth(conv_1), 1)
        self.reduce_to_1x1 = ReduceTo1x1()
        # finegrain_classification_mode: slim's multiplier_func of this last op is the identity
        self.num_features = conv_2 if finegrain_classification_mode else depth(conv_2)
        self.Conv_2 = ConvBnAct(
            depth(conv_1), self.num_features, 1, bias=True, bn=False, act=head_act
        )
        self.Logits = Logits(self.num_features, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``Conv_1`` map (N, 960 or 576 * multiplier, H/32, W/32)."""
        x = self.Conv(self.to_channels_last(x))  # 2-3x faster depthwise convs on CPU than NCHW
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.Conv_1(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``Conv_1`` map → logits (N, classes); ``pre_logits=True``: the pooled ``Conv_2``
        features (N, 1280 or 1024)."""
        return self.Logits(self.Conv_2(self.reduce_to_1x1(x)), pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.Logits.Conv2d_1c_1x1 = classifier(self.num_features, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        """slim's ``mobilenet_base`` names: ``layer_<n>`` is the n-th op of the spec (the stem is
        ``layer_1``, then the blocks, ``Conv_1``, ``reduce_to_1x1`` and ``Conv_2``); the blocks
        add their ``*_output`` tensors."""
        blocks = [getattr(self, name) for name in self.block_names]
        points: OrderedDict[str, nn.Module] = OrderedDict(layer_1=self.Conv)
        for n, block in enumerate(blocks, start=2):
            points[f"layer_{n}"] = block
        n = len(blocks) + 2
        points[f"layer_{n}"] = self.Conv_1
        points[f"layer_{n + 1}"] = self.reduce_to_1x1
        points[f"layer_{n + 2}"] = self.Conv_2
        for n, block in enumerate(blocks, start=2):
            if block.has_expansion:
                points[f"layer_{n}/expansion_output"] = block.expand
            points[f"layer_{n}/depthwise_output"] = block.depthwise
            points[f"layer_{n}/output"] = block
        points["global_pool"] = self.Logits.global_pool
        points["Logits"] = self.Logits.Conv2d_1c_1x1
        return points


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes (``expanded_conv_3.squeeze_excite.Conv_1.conv.
# bias`` → ``MobilenetV3/expanded_conv_3/squeeze_excite/Conv_1/biases``), ConvBnAct puts its batch
# norm under ``BatchNorm`` (``Conv_2`` and the squeeze-excite convs have none, but biases), the
# walker names a conv with groups == in_channels ``depthwise_weights`` and reshapes the
# Conv1x1AsLinear logits from [1, 1, in, classes].

# --------------------------------------------------------------------------- constructors


@register_model
def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    """MobileNet v3 large 1.0 (slim ``mobilenet_v3.large``), 1001 classes, 224x224."""
    return MobileNetV3(variant="large", minimalistic=False, **kwargs)


@register_model
def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    """MobileNet v3 small 1.0 (slim ``mobilenet_v3.small``), 1001 classes, 224x224."""
    return MobileNetV3(variant="small", minimalistic=False, **kwargs)


@register_model
def mobilenet_v3_large_minimalistic(**kwargs) -> MobileNetV3:
    """MobileNet v3 large minimalistic 1.0 (slim ``mobilenet_v3.large_minimalistic``), 1001
    classes, 224x224."""
    return MobileNetV3(variant="large", minimalistic=True, **kwargs)


@register_model
def mobilenet_v3_small_minimalistic(**kwargs) -> MobileNetV3:
    """MobileNet v3 small minimalistic 1.0 (slim ``mobilenet_v3.small_minimalistic``), 1001
    classes, 224x224."""
    return MobileNetV3(variant="small", minimalistic=True, **kwargs)


@register_model
def mobilenet_v3_large_075(**kwargs) -> MobileNetV3:
    """MobileNet v3 large 0.75 (slim ``mobilenet_v3.large`` with depth_multiplier=0.75 and
    finegrain_classification_mode=True: ``Conv_2`` keeps 1280), 1001 classes, 224x224."""
    kwargs = {"finegrain_classification_mode": True, **kwargs}
    return MobileNetV3(variant="large", minimalistic=False, depth_multiplier=0.75, **kwargs)


@register_model
def mobilenet_v3_small_075(**kwargs) -> MobileNetV3:
    """MobileNet v3 small 0.75 (slim ``mobilenet_v3.small`` with depth_multiplier=0.75 and
    finegrain_classification_mode=True: ``Conv_2`` keeps 1024), 1001 classes, 224x224."""
    kwargs = {"finegrain_classification_mode": True, **kwargs}
    return MobileNetV3(variant="small", minimalistic=False, depth_multiplier=0.75, **kwargs)
