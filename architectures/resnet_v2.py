"""ResNet V2 50/101/152/200 (pre-activation bottleneck units), ported from TF-slim.

Paper: He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016,
https://arxiv.org/abs/1603.05027.
Slim source: tensorflow/models ``research/slim/nets/resnet_v2.py`` (``bottleneck``,
``resnet_v2``, ``resnet_v2_50`` ...) with ``resnet_utils.py`` (see :mod:`._resnet_utils`).
Checkpoints: ``resnet_v2_{50,101,152}_2017_04_14`` (TF V1 single file): 1001 classes (index 0 =
background), **299x299 with "inception" preprocessing** (x / 255, central crop 0.875, resize,
(x - 0.5) * 2), although slim's preprocessing factory maps them to vgg 224. No checkpoint was
released for resnet_v2_200.

Slim quirks reproduced here:

* a block's stride sits on the 3x3 ``conv2`` of its **last** unit (blocks 1-3);
* each unit starts with ``preact`` (batch norm + ReLU, its variables directly under
  ``.../preact/``, no ``BatchNorm`` sub-scope). A depth-changing shortcut is a 1x1 conv **with
  bias** (no batch norm) on the *pre-activated* input; an identity shortcut takes the raw unit
  input (subsampled by a 1x1 max pool when strided);
* ``conv1`` and ``conv2`` of a unit: batch norm + ReLU; ``conv3``: bias, no batch norm, no ReLU;
  the unit output is the plain sum (no ReLU);
* the root ``conv1`` (7x7/2, explicit symmetric padding 3) has a bias and neither batch norm nor
  ReLU (the first unit's ``preact`` does that); ``pool1`` is a 3x3/2 **'SAME'** max pool;
* ``postnorm`` (batch norm + ReLU, own scope) after ``block4``;
* batch norm epsilon 1e-5 with gamma; ``output_stride`` 8/16 uses atrous convolution
  (:func:`._resnet_utils.stack_blocks_dense`).

``forward_features`` returns the map *after* ``postnorm`` (as timm does for pre-activation nets:
the ``block4`` sum is not normalised, and every use of it in slim goes through ``postnorm``); slim's
end point ``<scope>/block4`` is the map before it. The network runs in channels-last memory layout
for speed (``SlimResNet.use_channels_last``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._registry import register_model
from ._resnet_utils import (
    BN_EPS,
    NUM_UNITS,
    BatchNormRelu,
    SlimResNet,
    UnitSpec,
    conv2d_same_padding,
    unit_shortcut,
)
from .layers import Conv2dSame, ConvBnAct

__all__ = [
    "ResNetV2",
    "resnet_v2_50",
    "resnet_v2_101",
    "resnet_v2_152",
    "resnet_v2_200",
]

# --------------------------------------------------------------------------- building blocks


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, rate: int = 1
) -> ConvBnAct:
    """slim ``conv2d`` (or ``conv2d_same``) under ``resnet_arg_scope``: no bias, BN + ReLU."""
    return ConvBnAct(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=conv2d_same_padding(kernel_size, rate),
        dilation=rate,
        bn_eps=BN_EPS,
    )


def conv_bias(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> Conv2dSame:
    """slim ``conv2d`` with ``normalizer_fn=None, activation_fn=None``: a conv with a bias."""
    padding = conv2d_same_padding(kernel_size)
    return Conv2dSame(in_channels, out_channels, kernel_size, stride, padding, bias=True)


class Bottleneck(nn.Module):
    """slim ``bottleneck`` (scope ``blockN/unit_i/bottleneck_v2``): ``preact`` BN + ReLU, then
    1x1 → 3x3 (stride, rate) → 1x1 (bias), added to the shortcut."""

    def __init__(self, in_channels: int, unit: UnitSpec) -> None:
        super().__init__()
        self.stride = unit.stride
        self.preact = BatchNormRelu(in_channels)
        if unit.depth == in_channels:
            self.shortcut = None  # subsample(inputs, stride): the input, not preact
        else:
            self.shortcut = conv_bias(in_channels, unit.depth, 1, unit.stride)
        self.conv1 = conv_bn_relu(in_channels, unit.depth_bottleneck, 1)
        self.conv2 = conv_bn_relu(
            unit.depth_bottleneck, unit.depth_bottleneck, 3, unit.stride, unit.rate
        )
        self.conv3 = conv_bias(unit.depth_bottleneck, unit.depth, 1)

    def forward(self, x: torch.Tensor, overwrite_input: bool = False) -> torch.Tensor:
        """``overwrite_input``: the caller no longer needs ``x``, so the output may take its
        memory (see :class:`~architectures._resnet_utils.ResNetBlock`)."""
        preact = self.preact(x)  # a new tensor: x stays as it was
        shortcut, owned = unit_shortcut(self, x, preact, overwrite_input)
        residual = self.conv2(self.conv1(preact))
        if owned:  # packed convs: conv3 + bias + shortcut in one call, into the shortcut
            out = self.conv3.forward_add_(residual, shortcut)
            if out is not None:
                return out
        return self.conv3(residual).add_(shortcut)  # in place: conv3's output is a new tensor


# --------------------------------------------------------------------------- the model


class ResNetV2(SlimResNet):
    """ResNet V2 as in slim's ``resnet_v2()``: root conv, four blocks of pre-activation units,
    ``postnorm``, head (arguments: see :class:`~architectures._resnet_utils.SlimResNet`; 1001
    classes released).

    ``forward_features`` returns the map after ``postnorm``.
    """

    unit_name = "bottleneck_v2"
    unit = Bottleneck
    released_num_classes = 1001
    default_tf_scope = "resnet_v2_50"

    def root_conv(self) -> nn.Module:
        return conv_bias(3, 64, 7, stride=2)  # no batch norm, no ReLU: the first preact does it

    def add_top(self, num_features: int) -> None:
        self.postnorm = BatchNormRelu(num_features)

    def top(self, x: torch.Tensor) -> torch.Tensor:
        return self.postnorm(x)


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes. ``preact`` and ``postnorm`` are batch norm
# modules themselves, so their tensors land directly under the scope
# (``block1.unit_1.bottleneck_v2.preact.weight`` → ``.../bottleneck_v2/preact/gamma``); the
# convs with a bias are plain convs (``conv3.bias`` → ``.../conv3/biases``), the others
# ConvBnAct (``conv1.bn.weight`` → ``.../conv1/BatchNorm/gamma``); ``logits`` is a
# Conv1x1AsLinear (TF [1, 1, 2048, classes] → torch [classes, 2048]).

# --------------------------------------------------------------------------- constructors


@register_model
def resnet_v2_50(**kwargs) -> ResNetV2:
    """ResNet-50 V2, 1001 classes."""
    return ResNetV2(num_units=NUM_UNITS[50], tf_scope="resnet_v2_50", **kwargs)


@register_model
def resnet_v2_101(**kwargs) -> ResNetV2:
    """ResNet-101 V2, 1001 classes."""
    return ResNetV2(num_units=NUM_UNITS[101], tf_scope="resnet_v2_101", **kwargs)


@register_model
def resnet_v2_152(**kwargs) -> ResNetV2:
    """ResNet-152 V2, 1001 classes."""
    return ResNetV2(num_units=NUM_UNITS[152], tf_scope="resnet_v2_152", **kwargs)


@register_model
def resnet_v2_200(**kwargs) -> ResNetV2:
    """ResNet-200 V2, 1001 classes (slim defines it; no checkpoint was released)."""
    return ResNetV2(num_units=NUM_UNITS[200], tf_scope="resnet_v2_200", **kwargs)
