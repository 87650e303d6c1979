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

import functools
from collections import OrderedDict

import torch
from torch import nn

from ._base import SlimNet
from ._registry import register_model
from .layers import AvgPool2dSame, Conv2dSame, ConvBnAct, GlobalAvgPool, MaxPool2dSame

__all__ = ["InceptionResnetV2", "inception_resnet_v2"]

# --------------------------------------------------------------------------- building blocks


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    padding: str = "SAME",
) -> ConvBnAct:
    """slim ``conv2d`` under ``inception_resnet_v2_arg_scope``: no bias, batch norm without
    gamma, ReLU."""
    return ConvBnAct(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        bn_eps=1e-3,
        bn_scale=False,
        act=functools.partial(nn.ReLU, inplace=True),
    )


def classifier(in_features: int, num_classes: int) -> nn.Module:
    """slim ``fully_connected`` without activation (``[in, out]`` weights and biases);
    ``num_classes=0`` leaves the features as they are."""
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


def seq(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    """A branch: named layers in sequence (the names are the TF scopes)."""
    return nn.Sequential(OrderedDict(layers))


class Branches(nn.Module):
    """A ``Mixed_*`` scope: the branches (``Branch_0``, ``Branch_1``, ...) all read the input,
    their outputs are concatenated along channels."""

    def __init__(self, branches: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


class PoolBranch(nn.Module):
    """``Branch_3``: 3x3 'SAME' average pool (``AvgPool_0a_3x3``), then a 1x1 conv + batch norm
    + ReLU (``Conv2d_0b_1x1``).

    Run as conv → pool → batch norm → ReLU, which is the same function: a 1x1 conv (a linear map
    across channels, no bias) and an average pool (the same linear map across space for every
    channel, also where it excludes padding) commute. Pooling the conv's output instead of its
    input pools 3 times fewer channels. A hook on ``AvgPool_0a_3x3`` therefore sees pooled
    conv outputs.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.AvgPool_0a_3x3 = AvgPool2dSame(3, 1, "SAME")
        self.Conv2d_0b_1x1 = conv_bn(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.Conv2d_0b_1x1
        return conv.act(conv.bn(self.AvgPool_0a_3x3(conv.conv(x))))


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
        Branch_0=seq(("Conv2d_1x1", conv_bn(320, 32, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv_bn(320, 32, 1)),
            ("Conv2d_0b_3x3", conv_bn(32, 32, 3)),
        ),
        Branch_2=seq(
            ("Conv2d_0a_1x1", conv_bn(320, 32, 1)),
            ("Conv2d_0b_3x3", conv_bn(32, 48, 3)),
            ("Conv2d_0c_3x3", conv_bn(48, 64, 3)),
        ),
    )
    return ResidualBlock(branches, 32 + 32 + 64, 320, scale, activate)


def block17(scale: float = 0.10, activate: bool = True) -> ResidualBlock:
    """slim ``block17`` (17x17 map, 1088 channels)."""
    branches = OrderedDict(
        Branch_0=seq(("Conv2d_1x1", conv_bn(1088, 192, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv_bn(1088, 128, 1)),
            ("Conv2d_0b_1x7", conv_bn(128, 160, (1, 7))),
            ("Conv2d_0c_7x1", conv_bn(160, 192, (7, 1))),
        ),
    )
    return ResidualBlock(branches, 192 + 192, 1088, scale, activate)


def block8(scale: float = 0.20, activate: bool = True) -> ResidualBlock:
    """slim ``block8`` (8x8 map, 2080 channels)."""
    branches = OrderedDict(
        Branch_0=seq(("Conv2d_1x1", conv_bn(2080, 192, 1))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv_bn(2080, 192, 1)),
            ("Conv2d_0b_1x3", conv_bn(192, 224, (1, 3))),
            ("Conv2d_0c_3x1", conv_bn(224, 256, (3, 1))),
        ),
    )
    return ResidualBlock(branches, 192 + 256, 2080, scale, activate)


def repeat(block, count: int, name: str) -> nn.Sequential:
    """slim ``repeat(net, count, block, ...)``: children ``<name>_1`` .. ``<name>_<count>``."""
    return nn.Sequential(OrderedDict((f"{name}_{i}", block()) for i in range(1, count + 1)))


def mixed_5b() -> Branches:
    """``Mixed_5b``: the Inception-A-like block after the stem, 192 → 320 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_1x1", conv_bn(192, 96, 1))),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(192, 48, 1)),
                ("Conv2d_0b_5x5", conv_bn(48, 64, 5)),
            ),
            Branch_2=seq(
                ("Conv2d_0a_1x1", conv_bn(192, 64, 1)),
                ("Conv2d_0b_3x3", conv_bn(64, 96, 3)),
                ("Conv2d_0c_3x3", conv_bn(96, 96, 3)),
            ),
            Branch_3=PoolBranch(192, 64),
        )
    )


def mixed_6a() -> Branches:
    """``Mixed_6a``: reduction 35 → 17, 320 → 1088 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_1a_3x3", conv_bn(320, 384, 3, 2, "VALID"))),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(320, 256, 1)),
                ("Conv2d_0b_3x3", conv_bn(256, 256, 3)),
                ("Conv2d_1a_3x3", conv_bn(256, 384, 3, 2, "VALID")),
            ),
            Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
        )
    )


def mixed_7a() -> Branches:
    """``Mixed_7a``: reduction 17 → 8, 1088 → 2080 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(
                ("Conv2d_0a_1x1", conv_bn(1088, 256, 1)),
                ("Conv2d_1a_3x3", conv_bn(256, 384, 3, 2, "VALID")),
            ),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(1088, 256, 1)),
                ("Conv2d_1a_3x3", conv_bn(256, 288, 3, 2, "VALID")),
            ),
            Branch_2=seq(
                ("Conv2d_0a_1x1", conv_bn(1088, 256, 1)),
                ("Conv2d_0b_3x3", conv_bn(256, 288, 3)),
                ("Conv2d_1a_3x3", conv_bn(288, 320, 3, 2, "VALID")),
            ),
            Branch_3=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
        )
    )


class AuxLogits(nn.Module):
    """The auxiliary classifier on ``PreAuxLogits`` (TF scope ``AuxLogits``): 5x5/3 'VALID'
    average pool, 1x1 conv, 'VALID' conv over the whole (5x5) map, fully connected ``Logits``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = AvgPool2dSame(5, 3, "VALID")  # slim's scope name for this pool
        self.Conv2d_1b_1x1 = conv_bn(in_channels, 128, 1)
        self.Conv2d_2a_5x5 = conv_bn(128, 768, 5, padding="VALID")
        self.Logits = classifier(768, num_classes)

    def fits(self, x: torch.Tensor) -> bool:
        """Whether the checkpoint's 5x5 kernel covers the pooled map of ``x`` exactly."""
        return all((n - 5) // 3 + 1 == 5 for n in x.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fits(x):
            raise ValueError(
                f"the auxiliary head needs a 17..19 pixel PreAuxLogits map (inputs 299..346), "
                f"got {tuple(x.shape[-2:])}: its 5x5 'VALID' Conv2d_2a_5x5 is sized for 299x299 "
                "inputs. Use an input of that size or build the model with aux_logits=False."
            )
        x = self.Conv2d_2a_5x5(self.Conv2d_1b_1x1(self.Conv2d_1a_3x3(x)))
        return self.Logits(x.flatten(1))


class Logits(nn.Module):
    """TF scope ``Logits``: global average pool, dropout, fully connected ``Logits``."""

    def __init__(self, in_channels: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.AvgPool_1a_8x8 = GlobalAvgPool()  # end point 'global_pool'
        self.Flatten = nn.Flatten(1)
        self.Dropout = nn.Dropout(drop_rate)  # end point 'PreLogitsFlatten' (after dropout)
        self.Logits = classifier(in_channels, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.Flatten(self.AvgPool_1a_8x8(x))
        if pre_logits:
            return x
        return self.Logits(self.Dropout(x))


# --------------------------------------------------------------------------- the model


class InceptionResnetV2(SlimNet):
    """Inception-ResNet v2 as in slim: stem, ``Mixed_5b``, 10 x block35, ``Mixed_6a``,
    20 x block17, ``Mixed_7a``, 10 x block8, ``Conv2d_7b_1x1``, global average pool, fully
    connected logits.

    Args:
        num_classes: classes of ``Logits`` and ``AuxLogits`` (the checkpoint has 1001).
        create_aux_logits: build the auxiliary head (it is in the released checkpoint).
        aux_logits: in training mode, ``forward`` returns ``(logits, aux_logits)`` (as
            torchvision's ``inception_v3``); in eval mode it always returns the logits alone.
        drop_rate: dropout before ``Logits`` in training (slim: keep_prob 0.8).
    """

    def __init__(
        self,
        *,
        num_classes: int = 1001,
        create_aux_logits: bool = True,
        aux_logits: bool = False,
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        if aux_logits and not create_aux_logits:
            raise ValueError("aux_logits=True needs the auxiliary head: create_aux_logits=True")
        self.tf_scope = "InceptionResnetV2"
        self.classifier_name = "Logits.Logits"
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        self.num_features = 1536

        self.Conv2d_1a_3x3 = conv_bn(3, 32, 3, 2, "VALID")
        self.Conv2d_2a_3x3 = conv_bn(32, 32, 3, padding="VALID")
        self.Conv2d_2b_3x3 = conv_bn(32, 64, 3)
        self.MaxPool_3a_3x3 = MaxPool2dSame(3, 2, "VALID")
        self.Conv2d_3b_1x1 = conv_bn(64, 80, 1, padding="VALID")
        self.Conv2d_4a_3x3 = conv_bn(80, 192, 3, padding="VALID")
        self.MaxPool_5a_3x3 = MaxPool2dSame(3, 2, "VALID")
        self.Mixed_5b = mixed_5b()
        self.Repeat = repeat(block35, 10, "block35")
        self.Mixed_6a = mixed_6a()
        self.Repeat_1 = repeat(block17, 20, "block17")  # its output is 'PreAuxLogits'
        self.Mixed_7a = mixed_7a()
        self.Repeat_2 = repeat(block8, 9, "block8")
        self.Block8 = block8(scale=1.0, activate=False)
        self.Conv2d_7b_1x1 = conv_bn(2080, 1536, 1)
        self.AuxLogits = AuxLogits(1088, num_classes) if create_aux_logits else None
        self.Logits = Logits(self.num_features, num_classes, drop_rate)

        self.classifier_names = ("Logits.Logits",) + (
            ("AuxLogits.Logits",) if create_aux_logits else ()
        )

    def _backbone(
        self, x: torch.Tensor, with_aux: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.MaxPool_3a_3x3(x)))
        x = self.Repeat(self.Mixed_5b(self.MaxPool_5a_3x3(x)))
        x = self.Repeat_1(self.Mixed_6a(x))
        aux = self.AuxLogits(x) if with_aux else None
        x = self.Block8(self.Repeat_2(self.Mixed_7a(x)))
        return self.Conv2d_7b_1x1(x), aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``Conv2d_7b_1x1`` map (N, 1536, 8, 8 at 299x299)."""
        return self._backbone(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``Conv2d_7b_1x1`` map → logits (N, classes); ``pre_logits=True`` stops after the
        global average pool (N, 1536)."""
        return self.Logits(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; ``(logits, aux_logits)`` in training mode when built with ``aux_logits``."""
        with_aux = self.training and self.aux_logits
        x, aux = self._backbone(x, with_aux)
        logits = self.forward_head(x)
        return (logits, aux) if with_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        """New (randomly initialised) ``Logits`` and, if built, ``AuxLogits`` classifiers."""
        self.num_classes = num_classes
        self.Logits.Logits = classifier(self.num_features, num_classes)
        if self.AuxLogits is not None:
            self.AuxLogits.Logits = classifier(768, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        names = (
            "Conv2d_1a_3x3 Conv2d_2a_3x3 Conv2d_2b_3x3 MaxPool_3a_3x3 Conv2d_3b_1x1 "
            "Conv2d_4a_3x3 MaxPool_5a_3x3 Mixed_5b Mixed_6a"
        ).split()
        points: OrderedDict[str, nn.Module] = OrderedDict((n, getattr(self, n)) for n in names)
        points["PreAuxLogits"] = self.Repeat_1
        points["Mixed_7a"] = self.Mixed_7a
        points["Conv2d_7b_1x1"] = self.Conv2d_7b_1x1
        points["global_pool"] = self.Logits.AvgPool_1a_8x8
        points["PreLogitsFlatten"] = self.Logits.Dropout
        points["Logits"] = self.Logits.Logits
        return points

    @torch.no_grad()
    def end_points(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """slim's end points; ``AuxLogits`` (placed before ``global_pool``, as in slim) is there
        when the auxiliary head exists and fits the input size (see the module docstring)."""
        want_aux, self.aux_logits = self.aux_logits, False  # the main pass returns logits only
        try:
            points = super().end_points(x)
        finally:
            self.aux_logits = want_aux
        if self.AuxLogits is None or not self.AuxLogits.fits(points["PreAuxLogits"]):
            return points
        ordered: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, value in points.items():
            if name == "global_pool":
                ordered["AuxLogits"] = self.AuxLogits(points["PreAuxLogits"])
            ordered[name] = value
        return ordered


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
