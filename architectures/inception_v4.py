"""Inception v4, ported from TF-slim.

Paper: Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning", AAAI 2017, https://arxiv.org/abs/1602.07261.
Slim source: tensorflow/models ``research/slim/nets/inception_v4.py`` (``inception_v4``,
``inception_v4_base``, ``block_inception_{a,b,c}``, ``block_reduction_{a,b}``) with the arg scope
of ``inception_utils.py``.
Checkpoint: ``inception_v4_2016_09_09`` (TF V1): 1001 classes (index 0 = background), 299x299,
"inception" preprocessing (RGB scaled to [-1, 1]).

Slim quirks reproduced here:

* every conv is slim ``conv2d`` + ``batch_norm`` (epsilon 1e-3, no gamma: ``scale=False``) + ReLU,
  without a bias;
* the stem and the reduction blocks use 'VALID' convs and max pools (odd maps lose their last
  row/column, e.g. 301 → 150 → 148 → 73), everything else is 'SAME'; the 3x3 average pools of
  the Inception-A/B/C blocks are 'SAME' and average over real pixels only, as TF does;
* the final pool averages the whole map (slim's ``AvgPool_1a`` uses the static map size as its
  kernel), so any input of at least 75x75 gives logits;
* the auxiliary head (``AuxLogits``, on ``Mixed_6h``) is in the checkpoint. Its ``Conv2d_2a``
  is a 'VALID' conv whose kernel slim sets to the map size it meets: 5x5 at 299x299. The
  checkpoint's 5x5 kernel therefore only fits inputs whose ``Mixed_6h`` map is 17..19 pixels,
  i.e. 299..346; elsewhere the auxiliary logits cannot be computed (a clear error in training,
  ``AuxLogits`` absent from :meth:`InceptionV4.end_points`), the main logits are unaffected;
* dropout (keep_prob 0.8) before the fully connected ``Logits`` layer, in training only.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._inception_utils import (
    AuxLogits,
    FanOutBranch,
    FCLogitsHead,
    InceptionNet,
    PoolBranch,
    conv,
    fc_classifier,
    reduction_a,
    seq,
)
from ._registry import register_model
from .layers import Concat, MaxPool2dSame

__all__ = ["InceptionV4", "inception_v4"]

# --------------------------------------------------------------------------- building blocks


def stem_mixed_3a() -> Concat:
    """``Mixed_3a``: 3x3/2 max pool ‖ 3x3/2 conv, both 'VALID' (147 → 73)."""
    return Concat(
        Branch_0=seq(("MaxPool_0a_3x3", MaxPool2dSame(3, 2, "VALID"))),
        Branch_1=seq(("Conv2d_0a_3x3", conv(64, 96, 3, 2, "VALID"))),
    )


def stem_mixed_4a() -> Concat:
    """``Mixed_4a``: two towers ending in a 'VALID' 3x3 conv (73 → 71)."""
    return Concat(
        Branch_0=seq(
            ("Conv2d_0a_1x1", conv(160, 64, 1)),
            ("Conv2d_1a_3x3", conv(64, 96, 3, padding="VALID")),
        ),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(160, 64, 1)),
            ("Conv2d_0b_1x7", conv(64, 64, (1, 7))),
            ("Conv2d_0c_7x1", conv(64, 64, (7, 1))),
            ("Conv2d_1a_3x3", conv(64, 96, 3, padding="VALID")),
        ),
    )


def stem_mixed_5a() -> Concat:
    """``Mixed_5a``: 3x3/2 conv ‖ 3x3/2 max pool, both 'VALID' (71 → 35)."""
    return Concat(
        Branch_0=seq(("Conv2d_1a_3x3", conv(192, 192, 3, 2, "VALID"))),
        Branch_1=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
    )


def block_inception_a() -> Concat:
    """slim ``block_inception_a`` (``Mixed_5b`` .. ``Mixed_5e``): 384 → 384 channels."""
    return Concat(
        Branch_0=seq(("Conv2d_0a_1x1", conv(384, 96, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(384, 64, 1)),
            ("Conv2d_0b_3x3", conv(64, 96, 3)),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(384, 64, 1)),
            ("Conv2d_0b_3x3", conv(64, 96, 3)),
            ("Conv2d_0c_3x3", conv(96, 96, 3)),
        ),
        Branch_3=PoolBranch(384, 96),
    )


def block_inception_b() -> Concat:
    """slim ``block_inception_b`` (``Mixed_6b`` .. ``Mixed_6h``): 1024 → 1024 channels."""
    return Concat(
        Branch_0=seq(("Conv2d_0a_1x1", conv(1024, 384, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(1024, 192, 1)),
            ("Conv2d_0b_1x7", conv(192, 224, (1, 7))),
            ("Conv2d_0c_7x1", conv(224, 256, (7, 1))),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(1024, 192, 1)),
            ("Conv2d_0b_7x1", conv(192, 192, (7, 1))),
            ("Conv2d_0c_1x7", conv(192, 224, (1, 7))),
            ("Conv2d_0d_7x1", conv(224, 224, (7, 1))),
            ("Conv2d_0e_1x7", conv(224, 256, (1, 7))),
        ),
        Branch_3=PoolBranch(1024, 128),
    )


def block_reduction_b() -> Concat:
    """slim ``block_reduction_b`` (``Mixed_7a``): 17 → 8, 1024 → 1536 channels."""
    return Concat(
        Branch_0=seq(
            ("Conv2d_0a_1x1", conv(1024, 192, 1)),
            ("Conv2d_1a_3x3", conv(192, 192, 3, 2, "VALID")),
        ),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(1024, 256, 1)),
            ("Conv2d_0b_1x7", conv(256, 256, (1, 7))),
            ("Conv2d_0c_7x1", conv(256, 320, (7, 1))),
            ("Conv2d_1a_3x3", conv(320, 320, 3, 2, "VALID")),
        ),
        Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
    )


def block_inception_c() -> Concat:
    """slim ``block_inception_c`` (``Mixed_7b`` .. ``Mixed_7d``): 1536 → 1536 channels."""
    return Concat(
        Branch_0=seq(("Conv2d_0a_1x1", conv(1536, 256, 1))),
        Branch_1=FanOutBranch(
            OrderedDict(
                Conv2d_0a_1x1=conv(1536, 384, 1),
                Conv2d_0b_1x3=conv(384, 256, (1, 3)),
                Conv2d_0c_3x1=conv(384, 256, (3, 1)),
            )
        ),
        Branch_2=FanOutBranch(
            OrderedDict(
                Conv2d_0a_1x1=conv(1536, 384, 1),
                Conv2d_0b_3x1=conv(384, 448, (3, 1)),
                Conv2d_0c_1x3=conv(448, 512, (1, 3)),
                Conv2d_0d_1x3=conv(512, 256, (1, 3)),
                Conv2d_0e_3x1=conv(512, 256, (3, 1)),
            )
        ),
        Branch_3=PoolBranch(1536, 256),
    )


# --------------------------------------------------------------------------- the model


class InceptionV4(InceptionNet):
    """Inception v4 as in slim: stem, 4 Inception-A, Reduction-A, 7 Inception-B, Reduction-B,
    3 Inception-C blocks, global average pool, fully connected logits.

    Args:
        num_classes: classes of ``Logits`` and ``AuxLogits`` (the checkpoint has 1001); 0 drops
            both, as slim does.
        create_aux_logits: build the auxiliary head (it is in the released checkpoint).
        aux_logits: in training mode, ``forward`` returns ``(logits, aux_logits)`` (as
            torchvision's ``inception_v3``); in eval mode it always returns the logits alone.
        drop_rate: dropout before ``Logits`` in training (slim: keep_prob 0.8).
    """

    channels_last = False  # NCHW: the pools take the slice fast path of layers.pooling
    num_features = 1536

    def __init__(
        self,
        *,
        num_classes: int = 1001,
        create_aux_logits: bool = True,
        aux_logits: bool = False,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.tf_scope = "InceptionV4"
        self.classifier_name = "Logits.Logits"
        self.num_classes = num_classes
        self.aux_logits = aux_logits

        base: OrderedDict[str, nn.Module] = OrderedDict(
            Conv2d_1a_3x3=conv(3, 32, 3, 2, "VALID"),
            Conv2d_2a_3x3=conv(32, 32, 3, padding="VALID"),
            Conv2d_2b_3x3=conv(32, 64, 3),
            Mixed_3a=stem_mixed_3a(),
            Mixed_4a=stem_mixed_4a(),
            Mixed_5a=stem_mixed_5a(),
        )
        base.update((f"Mixed_5{block}", block_inception_a()) for block in "bcde")
        base["Mixed_6a"] = reduction_a(384, k=192, l=224, m=256, n=384)  # 35 → 17, 1024 channels
        base.update((f"Mixed_6{block}", block_inception_b()) for block in "bcdefgh")
        base["Mixed_7a"] = block_reduction_b()
        base.update((f"Mixed_7{block}", block_inception_c()) for block in "bcd")
        self.add_base(base)  # slim's inception_v4_base: every block is an end point

        self.AuxLogits = None
        if create_aux_logits and num_classes:  # as slim: no auxiliary head without classes
            self.AuxLogits = AuxLogits(
                1024,
                num_classes,
                scopes=("AvgPool_1a_5x5", "Conv2d_1b_1x1", "Conv2d_2a", "Aux_logits"),
                input_name="Mixed_6h",
                classifier=fc_classifier,
            )
        self.aux_after = "Mixed_6h"
        names = ("AvgPool_1a", "PreLogitsFlatten", "Dropout_1b", "Logits")
        self.Logits = FCLogitsHead(self.num_features, num_classes, drop_rate, names)
        self.check_aux_logits()


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes, ``conv_bn`` is ``ConvBnAct`` (conv weights in
# the layer's own scope, beta/moving statistics under ``BatchNorm``), and the walker in _tf.py
# maps the two fully connected layers with the FC layout ([in, out] → [out, in]):
# ``Mixed_6b.Branch_1.Conv2d_0b_1x7.conv.weight`` → ``InceptionV4/Mixed_6b/Branch_1/Conv2d_0b_1x7/
# weights`` (HWIO → OIHW), ``AuxLogits.Aux_logits.weight`` → ``InceptionV4/AuxLogits/Aux_logits/
# weights``, ``Logits.Logits.bias`` → ``InceptionV4/Logits/Logits/biases``.

# --------------------------------------------------------------------------- constructors


@register_model
def inception_v4(**kwargs) -> InceptionV4:
    """Inception v4, 1001 classes, 299x299."""
    return InceptionV4(**kwargs)
