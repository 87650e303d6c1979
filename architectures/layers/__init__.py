"""Layers shared by every family, one module per responsibility; import them from here.

* :mod:`.padding`: TF 'SAME' padding arithmetic and ``Conv2dSame`` (every conv of every family);
* :mod:`.pooling`: 'SAME' max/average pooling, the whole-map mean, the fixed pre-logits window;
* :mod:`.blocks`: slim's conv + batch norm + activation (``ConvBnAct``), separable convs, its
  ``BatchNorm2d``, the branch concatenation of Inception blocks;
* :mod:`.heads`: the classifier end (1x1-conv logits as ``Linear``, spatial squeezes, the
  Inception ``Logits`` head).
"""

from .blocks import (
    BatchNorm2d,
    Concat,
    ConvBnAct,
    SeparableConv2dSame,
    batch_norm_after_conv,
    conv_then_bn,
)
from .heads import Conv1x1AsLinear, ConvLogitsHead, SpatialSqueeze, Squeeze1x1
from .padding import Conv2dSame, make_padding, pad_same, same_padding_amounts
from .pooling import AvgPool2dSame, FixedWindowAvgPool, GlobalAvgPool, MaxPool2dSame

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
