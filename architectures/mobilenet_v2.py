"""MobileNet v2, ported from TF-slim.

Paper: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
https://arxiv.org/abs/1801.04381.
Slim source: tensorflow/models ``research/slim/nets/mobilenet/mobilenet_v2.py`` (``V2_DEF``,
``mobilenet``, ``mobilenet_v2_140``) with ``mobilenet.py`` (``mobilenet_base``, ``mobilenet``,
``global_pool``, ``training_scope``) and ``conv_blocks.py`` (``expanded_conv``), 2019-04.
Checkpoints (TF V2 bundles, ``storage.googleapis.com/mobilenet_v2/checkpoints/``):
``mobilenet_v2_1.0_224`` and ``mobilenet_v2_1.4_224``, and ``mobilenet_v2_<m>_<size>`` for the
multipliers 0.35/0.5/0.75/1.3 (networks ``mobilenet_v2_035``/``_050``/``_075``/``_130``, slim's
nets_factory names) at 96 … 224: 1001 classes (index 0 = background),
224x224, "inception" preprocessing (x/255, central crop 0.875, resize, (x - 0.5) * 2); top-1/top-5
71.8/91.0 and 75.0/92.5 in slim's README, reached with the ``ExponentialMovingAverage`` shadows the
checkpoints hold next to every variable (the loader takes them by default, ``use_ema=True``).

Slim quirks reproduced here:

* every conv is followed by batch norm (epsilon 0.001, with gamma) and ReLU6, except ``project``
  (the linear bottleneck: batch norm, no activation) and the logits (bias, nothing else).
* ``expanded_conv`` = ``expand`` (1x1) → ``depthwise`` (3x3) → ``project`` (1x1), plus the input
  when the stride is 1 and the depth is unchanged. The first block has expansion factor 1, so it
  has no ``expand`` conv (slim expands only when the inner size exceeds the input depth).
* channels: each layer's ``num_outputs`` becomes ``_make_divisible(d * depth_multiplier, 8,
  min_depth=8)`` (round to the nearest multiple of 8, never more than 10 % down); inner sizes are
  ``_make_divisible(in * 6, 8)`` of the already rounded input. The final ``Conv_1`` (1280) is
  multiplied too (1792 at 1.4), unless ``finegrain_classification_mode`` keeps it at 1280 for
  multipliers below 1.
* all convs are TF 'SAME': on even inputs the stride-2 layers pad one pixel at the bottom/right
  only (``Conv2dSame`` reproduces it).
* the head always averages the whole final map (``Logits/global_pool``, no ``global_pool`` switch),
  then dropout (keep 0.8 in slim's ``training_scope``) and a 1x1 conv with bias.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from ._base import SlimNet
from ._registry import register_model
from .layers import Conv1x1AsLinear, ConvBnAct, GlobalAvgPool

__all__ = [
    "MobileNetV2",
    "make_divisible",
    "mobilenet_v2",
    "mobilenet_v2_035",
    "mobilenet_v2_050",
    "mobilenet_v2_075",
    "mobilenet_v2_130",
    "mobilenet_v2_140",
]

# slim's V2_DEF spec between the stem ``Conv`` (3x3, stride 2, 32) and ``Conv_1`` (1x1, 1280):
# (expansion factor, num_outputs, stride) of expanded_conv, expanded_conv_1 .. expanded_conv_16.
INVERTED_RESIDUALS = (
    (1, 16, 1),
    (6, 24, 2),
    (6, 24, 1),
    (6, 32, 2),
    (6, 32, 1),
    (6, 32, 1),
    (6, 64, 2),
    (6, 64, 1),
    (6, 64, 1),
    (6, 64, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 160, 2),
    (6, 160, 1),
    (6, 160, 1),
    (6, 320, 1),
)
STEM_DEPTH = 32
HEAD_DEPTH = 1280

# slim conv2d / separable_conv2d under V2_DEF: batch norm (eps 1e-3, gamma) and ReLU6
RELU6 = partial(nn.ReLU6, inplace=True)
ConvBnRelu6 = partial(ConvBnAct, bn_eps=1e-3, bn_scale=True, act=RELU6)


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """slim's ``_make_divisible``: ``value`` rounded to the nearest multiple of ``divisor`` (at
    least ``min_value``, default ``divisor``), one ``divisor`` more if that lost over 10 %."""
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


# --------------------------------------------------------------------------- building blocks


class ExpandedConv(nn.Module):
    """slim ``expanded_conv`` (scope ``expanded_conv[_<i>]``): the inverted residual block.

    End points (slim's ``layer_<n>/...``): ``expansion_output`` (after ``expand``),
    ``depthwise_output`` (after ``depthwise``), ``output`` (after the residual add).

    MobileNet v3 (:mod:`architectures.mobilenet_v3`) uses the same block with a 5x5 depthwise
    kernel in places, its own activation (``act``, a module factory) and a ``squeeze_excite``
    (a factory taking the inner depth) between ``depthwise`` and ``project``, slim's
    ``expansion_transform``; v2 has 3x3, ReLU6 and none.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        inner: int,
        stride: int,
        *,
        kernel_size: int = 3,
        act: Callable[[], nn.Module] = RELU6,
        squeeze_excite: Callable[[int], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        conv_bn_act = partial(ConvBnAct, bn_eps=1e-3, bn_scale=True, act=act)
        # slim adds the expansion only when it widens the input (not in the first block)
        self.has_expansion = inner > in_channels
        if not self.has_expansion:
            inner = in_channels
        self.expand = conv_bn_act(in_channels, inner, 1) if self.has_expansion else nn.Identity()
        self.depthwise = conv_bn_act(inner, inner, kernel_size, stride=stride, groups=inner)
        self.squeeze_excite = squeeze_excite(inner) if squeeze_excite else nn.Identity()
        self.project = ConvBnAct(inner, out_channels, 1, bn_eps=1e-3, act=None)  # linear
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.squeeze_excite(self.depthwise(self.expand(x))))
        return out + x if self.residual else out


class Logits(nn.Module):
    """slim's ``mobilenet`` head (scope ``Logits``): ``global_pool`` over the whole map,
    ``Dropout``, ``Conv2d_1c_1x1`` (1x1 conv with bias on a 1x1 map, i.e. a linear layer)."""

    def __init__(self, in_channels: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.global_pool = GlobalAvgPool()
        self.Dropout = nn.Dropout(drop_rate)
        self.Conv2d_1c_1x1 = classifier(in_channels, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        if pre_logits:
            return x
        return self.Conv2d_1c_1x1(self.Dropout(x))


def classifier(in_channels: int, num_classes: int) -> nn.Module:
    """``Logits/Conv2d_1c_1x1``: stored as a [1, 1, in, classes] conv, run as a Linear."""
    return Conv1x1AsLinear(in_channels, num_classes) if num_classes else nn.Identity()


# --------------------------------------------------------------------------- the model


class MobileNetV2(SlimNet):
    """MobileNet v2 as in slim: stem conv, 17 inverted residual blocks, 1x1 conv, pool, logits.

    Args:
        num_classes: classes of the logits (the released checkpoints have 1001); 0 = no
            classifier, ``forward`` returns the pooled features.
        depth_multiplier: channel multiplier (1.0 and 1.4 for the checkpoints here).
        min_depth: fewest channels a multiplied layer gets.
        divisible_by: multiplied channel counts are rounded to multiples of this.
        finegrain_classification_mode: keep ``Conv_1`` at 1280 channels for multipliers below 1
            (slim's option; the 0.5/0.35 checkpoints were built with it).
        drop_rate: dropout before the logits in training (slim: keep_prob 0.8).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1001,
        depth_multiplier: float = 1.0,
        min_depth: int = 8,
        divisible_by: int = 8,
        finegrain_classification_mode: bool = False,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}")
        self.tf_scope = "MobilenetV2"
        self.classifier_name = "Logits.Conv2d_1c_1x1"
        self.num_classes = num_classes

        def depth(d: float) -> int:  # slim's mobilenet.depth_multiplier on num_outputs
            return make_divisible(d * depth_multiplier, divisible_by, min_depth)

        in_ch = depth(STEM_DEPTH)
        self.Conv = ConvBnRelu6(3, in_ch, 3, stride=2)
        self.block_names = []
        for i, (factor, out, stride) in enumerate(INVERTED_RESIDUALS):
            out = depth(out)
            # the first block: expand_input(1, divisible_by=1); the others expand_input(6) (by 8)
            inner = make_divisible(in_ch * factor, 1 if factor == 1 else 8)
            name = "expanded_conv" if i == 0 else f"expanded_conv_{i}"
            setattr(self, name, ExpandedConv(in_ch, out, inner, stride))
            self.block_names.append(name)
            in_ch = out
        head = HEAD_DEPTH
        if finegrain_classification_mode and depth_multiplier < 1:
            head = HEAD_DEPTH / depth_multiplier  # multiplied back to 1280 below
        self.num_features = depth(head)
        self.Conv_1 = ConvBnRelu6(in_ch, self.num_features, 1)
        self.Logits = Logits(self.num_features, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``Conv_1`` map (N, 1280 * multiplier, H/32, W/32)."""
        x = self.Conv(self.to_channels_last(x))  # 2-3x faster depthwise convs on CPU than NCHW
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.Conv_1(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``Conv_1`` map → logits (N, classes); ``pre_logits=True``: the pooled features."""
        return self.Logits(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.Logits.Conv2d_1c_1x1 = classifier(self.num_features, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        """slim's ``mobilenet_base`` names: ``layer_<n>`` is the n-th op of the spec (the stem is
        ``layer_1``, ``Conv_1`` is ``layer_19``); the blocks add their ``*_output`` tensors."""
        blocks = [getattr(self, name) for name in self.block_names]
        points: OrderedDict[str, nn.Module] = OrderedDict(layer_1=self.Conv)
        for n, block in enumerate(blocks, start=2):
            points[f"layer_{n}"] = block
        points[f"layer_{len(blocks) + 2}"] = self.Conv_1
        for n, block in enumerate(blocks, start=2):
            if block.has_expansion:
                points[f"layer_{n}/expansion_output"] = block.expand
            points[f"layer_{n}/depthwise_output"] = block.depthwise
            points[f"layer_{n}/output"] = block
        points["global_pool"] = self.Logits.global_pool
        points["Logits"] = self.Logits.Conv2d_1c_1x1
        return points


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes, ConvBnAct puts its batch norm under
# ``BatchNorm``, the walker names a conv with groups == in_channels ``depthwise_weights`` and
# reshapes the Conv1x1AsLinear logits from [1, 1, in, classes]:
# ``expanded_conv_3.depthwise.conv.weight`` → ``MobilenetV2/expanded_conv_3/depthwise/
# depthwise_weights``. The released checkpoints also hold ``<variable>/ExponentialMovingAverage``
# for every variable (batch norm statistics included); ``load_tf_weights`` prefers those.

# --------------------------------------------------------------------------- constructors


@register_model
def mobilenet_v2(**kwargs) -> MobileNetV2:
    """MobileNet v2 1.0 (slim ``mobilenet_v2.mobilenet``), 1001 classes, 224x224."""
    return MobileNetV2(**kwargs)


@register_model
def mobilenet_v2_140(**kwargs) -> MobileNetV2:
    """MobileNet v2 1.4 (slim ``mobilenet_v2_140``), 1001 classes, 224x224."""
    return MobileNetV2(depth_multiplier=1.4, **kwargs)


# slim's nets_factory names of the other multipliers. Below 1.0 the released checkpoints were
# built with finegrain_classification_mode=True (slim's mobilenet_v2_050 / _035 set it): Conv_1
# keeps its 1280 channels. Above 1.0 (1.3, 1.4) Conv_1 is multiplied like every other layer.


@register_model
def mobilenet_v2_130(**kwargs) -> MobileNetV2:
    """MobileNet v2 1.3 (slim ``mobilenet_v2_130``), 1001 classes."""
    return MobileNetV2(depth_multiplier=1.3, **kwargs)


@register_model
def mobilenet_v2_075(**kwargs) -> MobileNetV2:
    """MobileNet v2 0.75 (slim ``mobilenet_v2_075``), 1001 classes; ``Conv_1`` keeps 1280."""
    return MobileNetV2(depth_multiplier=0.75, **_finegrain(kwargs))


@register_model
def mobilenet_v2_050(**kwargs) -> MobileNetV2:
    """MobileNet v2 0.5 (slim ``mobilenet_v2_050``), 1001 classes; ``Conv_1`` keeps 1280."""
    return MobileNetV2(depth_multiplier=0.5, **_finegrain(kwargs))


@register_model
def mobilenet_v2_035(**kwargs) -> MobileNetV2:
    """MobileNet v2 0.35 (slim ``mobilenet_v2_035``), 1001 classes; ``Conv_1`` keeps 1280."""
    return MobileNetV2(depth_multiplier=0.35, **_finegrain(kwargs))


def _finegrain(kwargs: dict) -> dict:
    """slim's partials set ``finegrain_classification_mode=True``; a caller may turn it off."""
    return {"finegrain_classification_mode": True, **kwargs}
