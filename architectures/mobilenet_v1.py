"""MobileNet v1, ported from TF-slim.

Paper: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications", 2017, https://arxiv.org/abs/1704.04861.
Slim source: tensorflow/models ``research/slim/nets/mobilenet_v1.py`` (``mobilenet_v1``,
``mobilenet_v1_base``, ``mobilenet_v1_arg_scope``), 2017-11.
Checkpoints: ``mobilenet_v1_1.0_224`` (``mobilenet_v1_2018_02_22/mobilenet_v1_1.0_224.tgz``, TF V2
bundle): 1001 classes (index 0 = background), 224x224, "inception" preprocessing (x/255, central
crop 0.875, resize, (x - 0.5) * 2); top-1/top-5 70.9/89.9 in slim's README. The same release
holds ``mobilenet_v1_<m>_<size>`` for the multipliers 0.25/0.5/0.75 (networks
``mobilenet_v1_025``/``_050``/``_075``, slim's nets_factory names) at 128/160/192/224.

Slim quirks reproduced here:

* every conv, the depthwise ones included, is followed by batch norm (epsilon 0.001, with gamma)
  and ReLU6 (``mobilenet_v1_arg_scope``); no conv has a bias except the logits.
* a depthwise layer is slim's ``separable_conv2d`` with ``num_outputs=None``: only a depthwise
  kernel (``Conv2d_<i>_depthwise/depthwise_weights``), with its own batch norm and ReLU6.
* all convs are TF 'SAME': on even inputs the stride-2 layers pad one pixel at the bottom/right
  only (``Conv2dSame`` reproduces it; slim's ``use_explicit_padding`` is off).
* channels are ``max(int(depth * depth_multiplier), min_depth)`` (plain truncation, unlike v2;
  ``min_depth`` 8): every depth is a multiple of 32, so 0.25 … 0.75 give exact products.
* ``global_pool=False`` (slim's default) is a 'VALID' average pool of kernel ``min(7, map size)``
  and stride 2 (slim's ``avg_pool2d`` default): the whole 7x7 map at 224x224, but a map of
  scores on much larger inputs. ``global_pool=True`` averages the whole map.
* dropout before the logits keeps 0.999 of the activations in training (slim's default).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import nn

from ._base import SlimNet
from ._registry import register_model
from .layers import Conv2dSame, ConvBnAct, FixedWindowAvgPool, GlobalAvgPool, SpatialSqueeze

__all__ = [
    "MobileNetV1",
    "mobilenet_v1",
    "mobilenet_v1_025",
    "mobilenet_v1_050",
    "mobilenet_v1_075",
]

# slim's _CONV_DEFS after Conv2d_0 (3x3, stride 2, 32): (stride, depth) of each depthwise-
# separable layer Conv2d_1 .. Conv2d_13 (3x3 depthwise, then 1x1 pointwise).
SEPARABLE_LAYERS = (
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
)

# slim conv2d / separable_conv2d under mobilenet_v1_arg_scope: batch norm (eps 1e-3, gamma), ReLU6
ConvBnRelu6 = partial(ConvBnAct, bn_eps=1e-3, bn_scale=True, act=partial(nn.ReLU6, inplace=True))

# --------------------------------------------------------------------------- building blocks


class Logits(nn.Module):
    """slim's classifier head (scope ``Logits``): pool, ``Dropout_1b``, ``Conv2d_1c_1x1`` (a 1x1
    conv with bias, no batch norm, no activation), then ``SpatialSqueeze``."""

    def __init__(
        self, in_channels: int, num_classes: int, global_pool: bool, drop_rate: float
    ) -> None:
        super().__init__()
        # slim's AvgPool_1a: avg_pool2d(net, _reduced_kernel_size_for_small_input(net, [7, 7]))
        fixed = FixedWindowAvgPool(7, 2, shrink=True)
        self.pool = GlobalAvgPool() if global_pool else fixed
        self.Dropout_1b = nn.Dropout(drop_rate)
        self.Conv2d_1c_1x1 = classifier(in_channels, num_classes)
        self.squeeze = SpatialSqueeze()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        if pre_logits:
            return self.squeeze(x)
        return self.squeeze(self.Conv2d_1c_1x1(self.Dropout_1b(x)))


def classifier(in_channels: int, num_classes: int) -> nn.Module:
    """``Logits/Conv2d_1c_1x1``; a conv (not a Linear) so a larger pooled map gives a score map."""
    return Conv2dSame(in_channels, num_classes, 1) if num_classes else nn.Identity()


# --------------------------------------------------------------------------- the model


class MobileNetV1(SlimNet):
    """MobileNet v1 as in slim: a 3x3 conv, 13 depthwise-separable layers, pool, 1x1-conv logits.

    Args:
        num_classes: classes of the logits (the released checkpoint has 1001); 0 = no classifier,
            ``forward`` returns the pooled features.
        depth_multiplier: channel multiplier of every layer (1.0 for the checkpoint).
        min_depth: fewest channels any layer gets when ``depth_multiplier < 1``.
        global_pool: average the whole final map instead of slim's fixed 7x7 ``AvgPool_1a``.
        drop_rate: dropout before the logits in training (slim: keep_prob 0.999).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1001,
        depth_multiplier: float = 1.0,
        min_depth: int = 8,
        global_pool: bool = False,
        drop_rate: float = 0.001,
    ) -> None:
        super().__init__()
        if depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}")
        self.tf_scope = "MobilenetV1"
        self.classifier_name = "Logits.Conv2d_1c_1x1"
        self.num_classes = num_classes
        self.global_pool = global_pool

        def depth(d: int) -> int:
            return max(int(d * depth_multiplier), min_depth)

        in_ch = depth(32)
        self.Conv2d_0 = ConvBnRelu6(3, in_ch, 3, stride=2)
        self.layer_names = ["Conv2d_0"]
        for i, (stride, out) in enumerate(SEPARABLE_LAYERS, start=1):
            out = depth(out)
            # scope Conv2d_<i>_depthwise: depthwise_weights + BatchNorm; Conv2d_<i>_pointwise
            dw = ConvBnRelu6(in_ch, in_ch, 3, stride=stride, groups=in_ch)
            setattr(self, f"Conv2d_{i}_depthwise", dw)
            setattr(self, f"Conv2d_{i}_pointwise", ConvBnRelu6(in_ch, out, 1))
            self.layer_names += [f"Conv2d_{i}_depthwise", f"Conv2d_{i}_pointwise"]
            in_ch = out
        self.num_features = in_ch
        self.Logits = Logits(in_ch, num_classes, global_pool, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``Conv2d_13_pointwise`` map (N, 1024, H/32, W/32)."""
        x = self.to_channels_last(x)  # 2-3x faster depthwise convs on CPU than NCHW
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Final map → logits (N, classes); ``pre_logits=True`` stops after the pooling."""
        return self.Logits(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.Logits.Conv2d_1c_1x1 = classifier(self.num_features, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points: OrderedDict[str, nn.Module] = OrderedDict(
            (name, getattr(self, name)) for name in self.layer_names
        )
        points["global_pool" if self.global_pool else "AvgPool_1a"] = self.Logits.pool
        points["Logits"] = self.Logits.squeeze  # slim records the logits after the squeeze
        return points


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes, ConvBnAct puts its batch norm under
# ``BatchNorm``, and the walker names a conv with groups == in_channels ``depthwise_weights``
# ([kh, kw, in, 1] → [in, 1, kh, kw]):
# ``Conv2d_3_depthwise.conv.weight`` → ``MobilenetV1/Conv2d_3_depthwise/depthwise_weights``,
# ``Logits.Conv2d_1c_1x1.bias`` → ``MobilenetV1/Logits/Conv2d_1c_1x1/biases``.

# --------------------------------------------------------------------------- constructors


@register_model
def mobilenet_v1(**kwargs) -> MobileNetV1:
    """MobileNet v1 1.0 (depth multiplier 1.0), 1001 classes, 224x224."""
    return MobileNetV1(**kwargs)


# slim's nets_factory names of the lower multipliers (``mobilenet_v1_075 = wrapped_partial(
# mobilenet_v1, depth_multiplier=0.75)``); the 2018_02_22 releases ``mobilenet_v1_<m>_<size>``
# are these networks at 128, 160, 192 or 224.


@register_model
def mobilenet_v1_075(**kwargs) -> MobileNetV1:
    """MobileNet v1 0.75 (slim ``mobilenet_v1_075``), 1001 classes."""
    return MobileNetV1(depth_multiplier=0.75, **kwargs)


@register_model
def mobilenet_v1_050(**kwargs) -> MobileNetV1:
    """MobileNet v1 0.5 (slim ``mobilenet_v1_050``), 1001 classes."""
    return MobileNetV1(depth_multiplier=0.5, **kwargs)


@register_model
def mobilenet_v1_025(**kwargs) -> MobileNetV1:
    """MobileNet v1 0.25 (slim ``mobilenet_v1_025``), 1001 classes."""
    return MobileNetV1(depth_multiplier=0.25, **kwargs)
