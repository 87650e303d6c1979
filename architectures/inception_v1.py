"""Inception v1 (GoogLeNet, with batch norm), ported from TF-slim.

Paper: Szegedy et al., "Going Deeper with Convolutions", CVPR 2015,
https://arxiv.org/abs/1409.4842 (slim adds batch norm after every conv).
Slim source: tensorflow/models ``research/slim/nets/inception_v1.py`` (``inception_v1``,
``inception_v1_base``) with ``inception_utils.inception_arg_scope``.
Checkpoint: ``inception_v1_2016_08_28`` (TF V1 single file): 1001 classes (index 0 =
background), 224x224, "inception" preprocessing (RGB scaled to [-1, 1]).

Slim quirks reproduced here:

* every conv and max pool is 'SAME' with TF's padding, which is asymmetric for the stride-2
  layers (``Conv2d_1a_7x7``, ``MaxPool_2a_3x3``, ...) on even map sizes, and for the even
  ``MaxPool_5a_2x2`` kernel on odd sizes;
* batch norm after every conv except the logits: epsilon 1e-3, no gamma (``scale=False``), no
  conv biases; the logits layer is a 1x1 conv with biases (``Logits/Conv2d_0c_1x1``);
* ``Mixed_5b/Branch_2``'s 3x3 conv is named ``Conv2d_0a_3x3`` (every other block says
  ``Conv2d_0b_3x3``): the checkpoint has that name, so the module has it too;
* ``global_pool=False`` (slim's default) is ``AvgPool_0a_7x7``: a 7x7 VALID average pool with
  stride 1 that is *not* shrunk for small inputs (unlike Inception v2/v3), so only inputs of
  193 to 224 pixels (a 7x7 ``Mixed_5c`` map) reach a 1x1 map; other sizes need
  ``global_pool=True`` (a mean over the whole map, end point ``global_pool``);
* dropout before the logits (slim's ``dropout_keep_prob=0.8``), active in training only.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._base import ChainNet
from ._inception_utils import conv
from ._registry import register_model
from .layers import (
    Concat,
    ConvLogitsHead,
    FixedWindowAvgPool,
    GlobalAvgPool,
    MaxPool2dSame,
)

__all__ = ["InceptionV1", "inception_v1"]

# --------------------------------------------------------------------------- building blocks


def inception_module(
    in_channels: int,
    branch_0: int,
    branch_1: tuple[int, int],
    branch_2: tuple[int, int],
    branch_3: int,
    branch_2_3x3: str = "Conv2d_0b_3x3",
) -> Concat:
    """A ``Mixed_3b`` … ``Mixed_5c`` block: 1x1 | 1x1 → 3x3 | 1x1 → 3x3 | 3x3 max pool → 1x1.

    ``branch_1``/``branch_2`` are (1x1 width, 3x3 width); ``branch_2_3x3`` is the TF scope of
    Branch_2's 3x3 conv (``Conv2d_0a_3x3`` in ``Mixed_5b``, see the module docstring).
    """
    return Concat(
        Branch_0=nn.Sequential(OrderedDict(Conv2d_0a_1x1=conv(in_channels, branch_0, 1))),
        Branch_1=nn.Sequential(
            OrderedDict(
                Conv2d_0a_1x1=conv(in_channels, branch_1[0], 1),
                Conv2d_0b_3x3=conv(branch_1[0], branch_1[1], 3),
            )
        ),
        Branch_2=nn.Sequential(
            OrderedDict(
                [
                    ("Conv2d_0a_1x1", conv(in_channels, branch_2[0], 1)),
                    (branch_2_3x3, conv(branch_2[0], branch_2[1], 3)),
                ]
            )
        ),
        Branch_3=nn.Sequential(
            OrderedDict(
                MaxPool_0a_3x3=MaxPool2dSame(3, 1),
                Conv2d_0b_1x1=conv(in_channels, branch_3, 1),
            )
        ),
    )


# slim's inception_v1_base after the stem: inception modules as (Branch_0, Branch_1, Branch_2,
# Branch_3) widths, and the 'SAME' max pools between them as (kernel, stride)
MIXED = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "MaxPool_4a_3x3": (3, 2),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "MaxPool_5a_2x2": (2, 2),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}


def _width(widths: tuple) -> int:
    """Output channels of an inception module: the sum of its branches' last widths."""
    b0, b1, b2, b3 = widths
    return b0 + b1[1] + b2[1] + b3


# --------------------------------------------------------------------------- the model


class InceptionV1(ChainNet):
    """Inception v1 as in slim: a conv/max-pool stem, nine inception modules, pooled logits.

    Args:
        num_classes: classes of ``Logits/Conv2d_0c_1x1`` (the checkpoint has 1001); 0 drops the
            classifier and ``forward`` returns the pooled 1024 features.
        global_pool: average the whole ``Mixed_5c`` map (any input size) instead of slim's
            default fixed 7x7 window (inputs of 193 to 224 pixels only).
        drop_rate: dropout before the logits in training (slim: keep_prob 0.8).
    """

    num_features = 1024

    def __init__(
        self, *, num_classes: int = 1001, global_pool: bool = False, drop_rate: float = 0.2
    ) -> None:
        super().__init__()
        self.tf_scope = "InceptionV1"
        self.classifier_name = "Logits.Conv2d_0c_1x1"
        self.num_classes = num_classes
        self.global_pool = global_pool

        base: OrderedDict[str, nn.Module] = OrderedDict(
            Conv2d_1a_7x7=conv(3, 64, 7, stride=2),
            MaxPool_2a_3x3=MaxPool2dSame(3, 2),
            Conv2d_2b_1x1=conv(64, 64, 1),
            Conv2d_2c_3x3=conv(64, 192, 3),
            MaxPool_3a_3x3=MaxPool2dSame(3, 2),
        )
        in_ch = 192
        for name, spec in MIXED.items():
            if name.startswith("MaxPool"):
                base[name] = MaxPool2dSame(*spec)
                continue
            quirk = {"branch_2_3x3": "Conv2d_0a_3x3"} if name == "Mixed_5b" else {}
            base[name] = inception_module(in_ch, *spec, **quirk)
            in_ch = _width(spec)
        self.add_base(base)  # slim's inception_v1_base: every layer is an end point

        # slim's 'Logits' scope; the pool's name is its end point
        fixed = ("AvgPool_0a_7x7", FixedWindowAvgPool(7, 1, shrink=False))
        pool = ("global_pool", GlobalAvgPool()) if global_pool else fixed
        self.Logits = ConvLogitsHead(
            self.num_features, num_classes, drop_rate, pool, "Dropout_0b", "Conv2d_0c_1x1"
        )


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes, ConvBnAct maps its batch norm to 'BatchNorm'
# and the logits are a Conv1x1AsLinear, so the generic walker in _tf.py maps everything:
# ``Mixed_4b.Branch_1.Conv2d_0b_3x3.bn.running_mean`` →
# ``InceptionV1/Mixed_4b/Branch_1/Conv2d_0b_3x3/BatchNorm/moving_mean``.

# --------------------------------------------------------------------------- constructors


@register_model
def inception_v1(**kwargs) -> InceptionV1:
    """Inception v1, 1001 classes, 224x224."""
    return InceptionV1(**kwargs)
