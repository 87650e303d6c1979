"""Inception-ResNet v2, ported from TF-slim.

Paper: Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning", AAAI 2017, https://arxiv.org/abs/1602.07261.
Slim source: tensorflow/models ``research/slim/nets/inception_resnet_v2.py``
(``inception_resnet_v2``, ``inception_resnet_v2_base``, ``block35``, ``block17``, ``block8``).
Checkpoint: ``inception_resnet_v2_2016_08_30`` (TF V1): 1001 classes (index 0 = background),
299x299, "inception" preprocessing (RGB scaled to [-1, 1]).

Slim quirks reproduced here:

* every conv is slim ``conv2d`` + ``batch_norm`` (epsilon 1e-3, no gamma: ``scale=False``) + ReLU
  without a bias, except the 1x1 up-projection ``Conv2d_1x1`` that closes each residual block:
  it has a bias and neither batch norm nor activation;
* residual blocks add ``scale * up`` to their input, then apply ReLU: 10 x ``block35``
  (scale 0.17, scopes ``Repeat/block35_<i>``), 20 x ``block17`` (0.10, ``Repeat_1``),
  9 x ``block8`` (0.20, ``Repeat_2``) and a last ``Block8`` with scale 1.0 and *no* activation;
* slim's defaults ``output_stride=16`` and ``align_feature_maps=False``: the stem and the
  reductions (``Mixed_6a``, ``Mixed_7a``) use 'VALID' strided convs and max pools (odd maps lose
  their last row/column), everything else is 'SAME'. Neither option is exposed: slim's
  classifier always uses these values (its ``output_stride=8`` stops at ``PreAuxLogits``, and
  ``align_feature_maps`` is only an argument of ``inception_resnet_v2_base``);
* the 3x3 average pool of ``Mixed_5b`` is 'SAME' and averages over real pixels only, as TF;
* the final pool averages the whole map (slim's ``AvgPool_1a_8x8`` uses the static map size as
  its kernel), so any input of at least 75x75 gives logits;
* the auxiliary head (``AuxLogits``, on ``PreAuxLogits`` = the output of ``Repeat_1``) is in the
  checkpoint. Its average pool is scoped ``Conv2d_1a_3x3`` although it is a 5x5/3 pool, and its
  ``Conv2d_2a_5x5`` is a 'VALID' conv whose kernel slim sets to the map size it meets (5x5 at
  299x299). The checkpoint's kernel therefore only fits inputs whose ``PreAuxLogits`` map is
  17..19 pixels, i.e. 299..346; elsewhere the auxiliary logits cannot be computed (a clear error
  in training, ``AuxLogits`` absent from :meth:`InceptionResnetV2.end_points`), the main logits
  are unaffected;
* dropout (keep_prob 0.8) before the fully connected ``Logits`` layer, in training only.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._inception_utils import (
    AuxLogits,
    FCLogitsHead,
    InceptionNet,
    PoolBranch,
    conv,
    fc_classifier,
    reduction_a,
    seq,
)
from ._registry import register_model
from .layers import Concat, Conv2dSame, MaxPool2dSame

__all__ = ["InceptionResnetV2", "inception_resnet_v2"]

# --------------------------------------------------------------------------- building blocks


class ResidualBlock(nn.Module):
    """slim ``block35`` / ``block17`` / ``block8``: concatenated branches, a 1x1 up-projection
    ``Conv2d_1x1`` (bias, no batch norm, no activation) back to the input width, then
    ``relu(x + scale * up)`` (no ReLU when ``activate`` is False: the final ``Block8``)."""

    def __init__(
        self,
        branches: OrderedDict[str, nn.Module],
        mixed_channels: int,
        channels: int,
        scale: float,
        activate: bool = True,
    ) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)
        self.Conv2d_1x1 = Conv2dSame(mixed_channels, channels, 1, bias=True)
        self.branch_names = list(branches)
        self.scale = scale
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([getattr(self, name)(x) for name in self.branch_names], 1)
        out = torch.add(x, self.Conv2d_1x1(mixed), alpha=self.scale)
        return torch.relu_(out) if self.activate else out

    def extra_repr(self) -> str:
        return f"scale={self.scale}, activate={self.activate}"


def block35(scale: float = 0.17, activate: bool = True) -> ResidualBlock:
    """slim ``block35`` (35x35 map, 320 channels)."""
    branches = OrderedDict(
        Branch_0=seq(("Conv2d_1x1", conv(320, 32, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(320, 32, 1)),
            ("Conv2d_0b_3x3", conv(32, 32, 3)),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(320, 32, 1)),
            ("Conv2d_0b_3x3", conv(32, 48, 3)),
            ("Conv2d_0c_3x3", conv(48, 64, 3)),
        ),
    )
    return ResidualBlock(branches, 32 + 32 + 64, 320, scale, activate)


def block17(scale: float = 0.10, activate: bool = True) -> ResidualBlock:
    """slim ``block17`` (17x17 map, 1088 channels)."""
    branches = OrderedDict(
        Branch_0=seq(("Conv2d_1x1", conv(1088, 192, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(1088, 128, 1)),
            ("Conv2d_0b_1x7", conv(128, 160, (1, 7))),
            ("Conv2d_0c_7x1", conv(160, 192, (7, 1))),
        ),
    )
    return ResidualBlock(branches, 192 + 192, 1088, scale, activate)


def block8(scale: float = 0.20, activate: bool = True) -> ResidualBlock:
    """slim ``block8`` (8x8 map, 2080 channels)."""
    branches = OrderedDict(
        Branch_0=seq(("Conv2d_1x1", conv(2080, 192, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(2080, 192, 1)),
            ("Conv2d_0b_1x3", conv(192, 224, (1, 3))),
            ("Conv2d_0c_3x1", conv(224, 256, (3, 1))),
        ),
    )
    return ResidualBlock(branches, 192 + 256, 2080, scale, activate)


def repeat(block, count: int, name: str) -> nn.Sequential:
    """slim ``repeat(net, count, block, ...)``: children ``<name>_1`` .. ``<name>_<count>``."""
    return nn.Sequential(OrderedDict((f"{name}_{i}", block()) for i in range(1, count + 1)))


def mixed_5b() -> Concat:
    """``Mixed_5b``: the Inception-A-like block after the stem, 192 → 320 channels."""
    return Concat(
        Branch_0=seq(("Conv2d_1x1", conv(192, 96, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(192, 48, 1)),
            ("Conv2d_0b_5x5", conv(48, 64, 5)),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(192, 64, 1)),
            ("Conv2d_0b_3x3", conv(64, 96, 3)),
            ("Conv2d_0c_3x3", conv(96, 96, 3)),
        ),
        Branch_3=PoolBranch(192, 64),
    )


def mixed_7a() -> Concat:
    """``Mixed_7a``: reduction 17 → 8, 1088 → 2080 channels."""
    return Concat(
        Branch_0=seq(
            ("Conv2d_0a_1x1", conv(1088, 256, 1)),
            ("Conv2d_1a_3x3", conv(256, 384, 3, 2, "VALID")),
        ),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(1088, 256, 1)),
            ("Conv2d_1a_3x3", conv(256, 288, 3, 2, "VALID")),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv(1088, 256, 1)),
            ("Conv2d_0b_3x3", conv(256, 288, 3)),
            ("Conv2d_1a_3x3", conv(288, 320, 3, 2, "VALID")),
        ),
        Branch_3=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
    )


# --------------------------------------------------------------------------- the model


class InceptionResnetV2(InceptionNet):
    """Inception-ResNet v2 as in slim: stem, ``Mixed_5b``, 10 x block35, ``Mixed_6a``,
    20 x block17, ``Mixed_7a``, 10 x block8, ``Conv2d_7b_1x1``, global average pool, fully
    connected logits.

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
        self.tf_scope = "InceptionResnetV2"
        self.classifier_name = "Logits.Logits"
        self.num_classes = num_classes
        self.aux_logits = aux_logits

        self.add_base(
            OrderedDict(
                Conv2d_1a_3x3=conv(3, 32, 3, 2, "VALID"),
                Conv2d_2a_3x3=conv(32, 32, 3, padding="VALID"),
                Conv2d_2b_3x3=conv(32, 64, 3),
                MaxPool_3a_3x3=MaxPool2dSame(3, 2, "VALID"),
                Conv2d_3b_1x1=conv(64, 80, 1, padding="VALID"),
                Conv2d_4a_3x3=conv(80, 192, 3, padding="VALID"),
                MaxPool_5a_3x3=MaxPool2dSame(3, 2, "VALID"),
                Mixed_5b=mixed_5b(),
                Repeat=repeat(block35, 10, "block35"),
                Mixed_6a=reduction_a(320, k=256, l=256, m=384, n=384),  # 35 → 17, 1088 channels
                Repeat_1=repeat(block17, 20, "block17"),  # its output is 'PreAuxLogits'
                Mixed_7a=mixed_7a(),
                Repeat_2=repeat(block8, 9, "block8"),
                Block8=block8(scale=1.0, activate=False),
                Conv2d_7b_1x1=conv(2080, 1536, 1),
            )
        )
        self.AuxLogits = None
        if create_aux_logits and num_classes:  # as slim: no auxiliary head without classes
            self.AuxLogits = AuxLogits(
                1088,
                num_classes,
                # slim scopes the 5x5/3 pool 'Conv2d_1a_3x3'
                scopes=("Conv2d_1a_3x3", "Conv2d_1b_1x1", "Conv2d_2a_5x5", "Logits"),
                input_name="PreAuxLogits",
                classifier=fc_classifier,
            )
        self.aux_after = "Repeat_1"
        names = ("AvgPool_1a_8x8", "Flatten", "Dropout", "Logits")
        self.Logits = FCLogitsHead(self.num_features, num_classes, drop_rate, names)
        self.check_aux_logits()

    def base_end_point_names(self) -> dict[str, str]:
        """slim records no end point for the repeated blocks but ``Repeat_1``'s output."""
        names = super().base_end_point_names()
        for scope in ("Repeat", "Repeat_2", "Block8"):
            del names[scope]
        names["Repeat_1"] = "PreAuxLogits"
        return names


# --------------------------------------------------------------------------- TF-name mapping
# Nothing to add: module names are the TF scopes, ``conv_bn`` is ``ConvBnAct`` (conv weights in
# the layer's own scope, beta/moving statistics under ``BatchNorm``), a residual block's
# ``Conv2d_1x1`` is a plain conv with ``weights`` and ``biases``, and the walker in _tf.py maps
# the two fully connected layers with the FC layout ([in, out] → [out, in]):
# ``Repeat_1.block17_3.Conv2d_1x1.bias`` → ``InceptionResnetV2/Repeat_1/block17_3/Conv2d_1x1/
# biases``, ``AuxLogits.Logits.weight`` → ``InceptionResnetV2/AuxLogits/Logits/weights``.

# --------------------------------------------------------------------------- constructors


@register_model
def inception_resnet_v2(**kwargs) -> InceptionResnetV2:
    """Inception-ResNet v2, 1001 classes, 299x299."""
    return InceptionResnetV2(**kwargs)
