"""ResNet V1 50/101/152/200 (bottleneck units, batch norm after each conv), ported from TF-slim.

Paper: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
https://arxiv.org/abs/1512.03385 (ResNet-200: "Identity Mappings in Deep Residual Networks",
https://arxiv.org/abs/1603.05027).
Slim source: tensorflow/models ``research/slim/nets/resnet_v1.py`` (``bottleneck``,
``resnet_v1``, ``resnet_v1_50`` ...) with ``resnet_utils.py`` (see :mod:`._resnet_utils`).
Checkpoints: ``resnet_v1_{50,101,152}_2016_08_28`` (TF V1 single file, converted from the MSRA
Caffe models): 1000 classes (no background class), 224x224, "vgg" preprocessing (RGB 0..255
minus the ImageNet mean, no scaling). No checkpoint was released for resnet_v1_200.

Slim quirks reproduced here:

* a block's stride sits on the 3x3 ``conv2`` of its **last** unit (blocks 1-3), not the first;
  a strided identity shortcut is a 1x1 max pool (every other pixel), a depth-changing one a
  1x1 conv + batch norm without ReLU;
* ``conv1`` is slim's ``conv2d_same``: 7x7/2 with explicit symmetric padding 3, then batch norm
  and ReLU; ``pool1`` is a 3x3/2 **'SAME'** max pool (asymmetric padding on even inputs);
* batch norm everywhere (epsilon 1e-5, with gamma); ``conv3`` has no ReLU, the unit adds the
  shortcut and then applies ReLU;
* ``output_stride`` 8/16 replaces strides by atrous rates
  (:func:`._resnet_utils.stack_blocks_dense`); ``global_pool=False`` keeps the map, and the
  1x1 conv ``logits`` then gives a score map;
* the checkpoints also hold ``<scope>/mean_rgb`` and ``global_step``; the loader ignores both.

``forward_features`` returns the ``block4`` map (slim's end point ``<scope>/block4``). The
network runs in channels-last memory layout for speed (``SlimResNet.use_channels_last``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model
from ._resnet_utils import (
    BN_EPS,
    NUM_UNITS,
    SlimResNet,
    UnitSpec,
    conv2d_same_padding,
    unit_shortcut,
)
from .layers import ConvBnAct

__all__ = [
    "ResNetV1",
    "resnet_v1_50",
    "resnet_v1_101",
    "resnet_v1_152",
    "resnet_v1_200",
]

# --------------------------------------------------------------------------- building blocks


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    stride: int = 1,
    rate: int = 1,
    relu: bool = True,
) -> ConvBnAct:
    """slim ``conv2d`` (or ``conv2d_same``) under ``resnet_arg_scope``: no bias, batch norm."""
    return ConvBnAct(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=conv2d_same_padding(kernel_size, rate),
        dilation=rate,
        bn_eps=BN_EPS,
        act=nn.ReLU if relu else None,
    )


class Bottleneck(nn.Module):
    """slim ``bottleneck`` (scope ``blockN/unit_i/bottleneck_v1``): 1x1 → 3x3 (stride, rate) →
    1x1, each with batch norm, added to the shortcut, then ReLU."""

    def __init__(self, in_channels: int, unit: UnitSpec) -> None:
        super().__init__()
        self.stride = unit.stride
        if unit.depth == in_channels:
            self.shortcut = None  # subsample(inputs, stride)
        else:
            self.shortcut = conv_bn(in_channels, unit.depth, 1, unit.stride, relu=False)
        self.conv1 = conv_bn(in_channels, unit.depth_bottleneck, 1)
        self.conv2 = conv_bn(
            unit.depth_bottleneck, unit.depth_bottleneck, 3, unit.stride, unit.rate
        )
        self.conv3 = conv_bn(unit.depth_bottleneck, unit.depth, 1, relu=False)

    def forward(self, x: torch.Tensor, overwrite_input: bool = False) -> torch.Tensor:
        """``overwrite_input``: the caller no longer needs ``x``, so the output may take its
        memory (see :class:`~architectures._resnet_utils.ResNetBlock`)."""
        shortcut, owned = unit_shortcut(self, x, x, overwrite_input)
        residual = self.conv2(self.conv1(x))
        if owned:  # packed convs: conv3 + shortcut + ReLU in one call, into the shortcut
            out = self.conv3.forward_add_(residual, shortcut, relu=True)
            if out is not None:
                return out
        return self.conv3(residual).add_(shortcut).relu_()  # in place: conv3's output is new


# --------------------------------------------------------------------------- the model


class ResNetV1(SlimResNet):
    """ResNet V1 as in slim's ``resnet_v1()``: root block, four blocks of bottleneck units, head
    (arguments: see :class:`~architectures._resnet_utils.SlimResNet`; 1000 classes released).

    ``forward_features`` returns the ``block4`` map.
    """

    unit_name = "bottleneck_v1"
    unit = Bottleneck
    released_num_classes = 1000
    default_tf_scope = "resnet_v1_50"

    def root_conv(self) -> nn.Module:
        return conv_bn(3, 64, 7, stride=2)  # conv2d_same + batch norm + ReLU


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes and every conv is a ConvBnAct, so the generic
# walker in _tf.py maps all of them, e.g. ``block1.unit_1.bottleneck_v1.shortcut.bn.weight`` →
# ``resnet_v1_50/block1/unit_1/bottleneck_v1/shortcut/BatchNorm/gamma``; ``logits`` is a
# Conv1x1AsLinear (TF [1, 1, 2048, classes] → torch [classes, 2048]).

# --------------------------------------------------------------------------- constructors


@register_model
def resnet_v1_50(**kwargs) -> ResNetV1:
    """ResNet-50 V1, 1000 classes."""
    return ResNetV1(num_units=NUM_UNITS[50], tf_scope="resnet_v1_50", **kwargs)


@register_model
def resnet_v1_101(**kwargs) -> ResNetV1:
    """ResNet-101 V1, 1000 classes."""
    return ResNetV1(num_units=NUM_UNITS[101], tf_scope="resnet_v1_101", **kwargs)


@register_model
def resnet_v1_152(**kwargs) -> ResNetV1:
    """ResNet-152 V1, 1000 classes."""
    return ResNetV1(num_units=NUM_UNITS[152], tf_scope="resnet_v1_152", **kwargs)


@register_model
def resnet_v1_200(**kwargs) -> ResNetV1:
    """ResNet-200 V1, 1000 classes (slim defines it; no checkpoint was released)."""
    return ResNetV1(num_units=NUM_UNITS[200], tf_scope="resnet_v1_200", **kwargs)
