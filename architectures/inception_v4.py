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

import functools
from collections import OrderedDict

import torch
from torch import nn

from ._base import SlimNet
from ._registry import register_model
from .layers import AvgPool2dSame, ConvBnAct, GlobalAvgPool, MaxPool2dSame

__all__ = ["InceptionV4", "inception_v4"]

# --------------------------------------------------------------------------- building blocks


def conv_bn(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    padding: str = "SAME",
) -> ConvBnAct:
    """slim ``conv2d`` under ``inception_arg_scope``: no bias, batch norm without gamma, ReLU."""
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


class Branches(nn.Module):
    """A ``Mixed_*`` scope: the branches (``Branch_0``, ``Branch_1``, ...) all read the input,
    their outputs are concatenated along channels."""

    def __init__(self, branches: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        for name, branch in branches.items():
            self.add_module(name, branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


class ForkedBranch(nn.Module):
    """An Inception-C branch: its layers run in sequence except the last two, which both read
    the previous output and are concatenated (``Conv2d_0b_1x3`` ‖ ``Conv2d_0c_3x1``)."""

    def __init__(self, layers: OrderedDict[str, nn.Module]) -> None:
        super().__init__()
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *trunk, left, right = self.children()
        for layer in trunk:
            x = layer(x)
        return torch.cat([left(x), right(x)], 1)


def classifier(in_features: int, num_classes: int) -> nn.Module:
    """slim ``fully_connected`` without activation (``[in, out]`` weights and biases);
    ``num_classes=0`` leaves the features as they are."""
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


def seq(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    """A branch: named layers in sequence (the names are the TF scopes)."""
    return nn.Sequential(OrderedDict(layers))


class PoolBranch(nn.Module):
    """``Branch_3``: 3x3 'SAME' average pool (``AvgPool_0a_3x3``), then a 1x1 conv + batch norm
    + ReLU (``Conv2d_0b_1x1``).

    Run as conv → pool → batch norm → ReLU, which is the same function: a 1x1 conv (a linear map
    across channels, no bias) and an average pool (the same linear map across space for every
    channel, also where it excludes padding) commute. Pooling the conv's output instead of its
    input pools 4 to 8 times fewer channels. A hook on ``AvgPool_0a_3x3`` therefore sees pooled
    conv outputs.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.AvgPool_0a_3x3 = AvgPool2dSame(3, 1, "SAME")
        self.Conv2d_0b_1x1 = conv_bn(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.Conv2d_0b_1x1
        return conv.act(conv.bn(self.AvgPool_0a_3x3(conv.conv(x))))


def stem_mixed_3a() -> Branches:
    """``Mixed_3a``: 3x3/2 max pool ‖ 3x3/2 conv, both 'VALID' (147 → 73)."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("MaxPool_0a_3x3", MaxPool2dSame(3, 2, "VALID"))),
            Branch_1=seq(("Conv2d_0a_3x3", conv_bn(64, 96, 3, 2, "VALID"))),
        )
    )


def stem_mixed_4a() -> Branches:
    """``Mixed_4a``: two towers ending in a 'VALID' 3x3 conv (73 → 71)."""
    return Branches(
        OrderedDict(
            Branch_0=seq(
                ("Conv2d_0a_1x1", conv_bn(160, 64, 1)),
                ("Conv2d_1a_3x3", conv_bn(64, 96, 3, padding="VALID")),
            ),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(160, 64, 1)),
                ("Conv2d_0b_1x7", conv_bn(64, 64, (1, 7))),
                ("Conv2d_0c_7x1", conv_bn(64, 64, (7, 1))),
                ("Conv2d_1a_3x3", conv_bn(64, 96, 3, padding="VALID")),
            ),
        )
    )


def stem_mixed_5a() -> Branches:
    """``Mixed_5a``: 3x3/2 conv ‖ 3x3/2 max pool, both 'VALID' (71 → 35)."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_1a_3x3", conv_bn(192, 192, 3, 2, "VALID"))),
            Branch_1=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
        )
    )


def block_inception_a() -> Branches:
    """slim ``block_inception_a`` (``Mixed_5b`` .. ``Mixed_5e``): 384 → 384 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_0a_1x1", conv_bn(384, 96, 1))),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(384, 64, 1)),
                ("Conv2d_0b_3x3", conv_bn(64, 96, 3)),
            ),
            Branch_2=seq(
                ("Conv2d_0a_1x1", conv_bn(384, 64, 1)),
                ("Conv2d_0b_3x3", conv_bn(64, 96, 3)),
                ("Conv2d_0c_3x3", conv_bn(96, 96, 3)),
            ),
            Branch_3=PoolBranch(384, 96),
        )
    )


def block_reduction_a() -> Branches:
    """slim ``block_reduction_a`` (``Mixed_6a``): 35 → 17, 384 → 1024 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_1a_3x3", conv_bn(384, 384, 3, 2, "VALID"))),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(384, 192, 1)),
                ("Conv2d_0b_3x3", conv_bn(192, 224, 3)),
                ("Conv2d_1a_3x3", conv_bn(224, 256, 3, 2, "VALID")),
            ),
            Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
        )
    )


def block_inception_b() -> Branches:
    """slim ``block_inception_b`` (``Mixed_6b`` .. ``Mixed_6h``): 1024 → 1024 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_0a_1x1", conv_bn(1024, 384, 1))),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(1024, 192, 1)),
                ("Conv2d_0b_1x7", conv_bn(192, 224, (1, 7))),
                ("Conv2d_0c_7x1", conv_bn(224, 256, (7, 1))),
            ),
            Branch_2=seq(
                ("Conv2d_0a_1x1", conv_bn(1024, 192, 1)),
                ("Conv2d_0b_7x1", conv_bn(192, 192, (7, 1))),
                ("Conv2d_0c_1x7", conv_bn(192, 224, (1, 7))),
                ("Conv2d_0d_7x1", conv_bn(224, 224, (7, 1))),
                ("Conv2d_0e_1x7", conv_bn(224, 256, (1, 7))),
            ),
            Branch_3=PoolBranch(1024, 128),
        )
    )


def block_reduction_b() -> Branches:
    """slim ``block_reduction_b`` (``Mixed_7a``): 17 → 8, 1024 → 1536 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(
                ("Conv2d_0a_1x1", conv_bn(1024, 192, 1)),
                ("Conv2d_1a_3x3", conv_bn(192, 192, 3, 2, "VALID")),
            ),
            Branch_1=seq(
                ("Conv2d_0a_1x1", conv_bn(1024, 256, 1)),
                ("Conv2d_0b_1x7", conv_bn(256, 256, (1, 7))),
                ("Conv2d_0c_7x1", conv_bn(256, 320, (7, 1))),
                ("Conv2d_1a_3x3", conv_bn(320, 320, 3, 2, "VALID")),
            ),
            Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
        )
    )


def block_inception_c() -> Branches:
    """slim ``block_inception_c`` (``Mixed_7b`` .. ``Mixed_7d``): 1536 → 1536 channels."""
    return Branches(
        OrderedDict(
            Branch_0=seq(("Conv2d_0a_1x1", conv_bn(1536, 256, 1))),
            Branch_1=ForkedBranch(
                OrderedDict(
                    Conv2d_0a_1x1=conv_bn(1536, 384, 1),
                    Conv2d_0b_1x3=conv_bn(384, 256, (1, 3)),
                    Conv2d_0c_3x1=conv_bn(384, 256, (3, 1)),
                )
            ),
            Branch_2=ForkedBranch(
                OrderedDict(
                    Conv2d_0a_1x1=conv_bn(1536, 384, 1),
                    Conv2d_0b_3x1=conv_bn(384, 448, (3, 1)),
                    Conv2d_0c_1x3=conv_bn(448, 512, (1, 3)),
                    Conv2d_0d_1x3=conv_bn(512, 256, (1, 3)),
                    Conv2d_0e_3x1=conv_bn(512, 256, (3, 1)),
                )
            ),
            Branch_3=PoolBranch(1536, 256),
        )
    )


class AuxLogits(nn.Module):
    """The auxiliary classifier on ``Mixed_6h`` (TF scope ``AuxLogits``): 5x5/3 'VALID' average
    pool, 1x1 conv, 'VALID' conv over the whole (5x5) map, fully connected ``Aux_logits``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.AvgPool_1a_5x5 = AvgPool2dSame(5, 3, "VALID")
        self.Conv2d_1b_1x1 = conv_bn(in_channels, 128, 1)
        self.Conv2d_2a = conv_bn(128, 768, 5, padding="VALID")
        self.Aux_logits = classifier(768, num_classes)

    def fits(self, x: torch.Tensor) -> bool:
        """Whether the checkpoint's 5x5 kernel covers the pooled map of ``x`` exactly."""
        return all((n - 5) // 3 + 1 == 5 for n in x.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fits(x):
            raise ValueError(
                f"the auxiliary head needs a 17..19 pixel Mixed_6h map (inputs 299..346), got "
                f"{tuple(x.shape[-2:])}: its 5x5 'VALID' Conv2d_2a is sized for 299x299 inputs. "
                "Use an input of that size or build the model with aux_logits=False."
            )
        x = self.Conv2d_2a(self.Conv2d_1b_1x1(self.AvgPool_1a_5x5(x)))
        return self.Aux_logits(x.flatten(1))


class Logits(nn.Module):
    """TF scope ``Logits``: global average pool, dropout, fully connected ``Logits``."""

    def __init__(self, in_channels: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.AvgPool_1a = GlobalAvgPool()  # end point 'global_pool'
        self.PreLogitsFlatten = nn.Flatten(1)
        self.Dropout_1b = nn.Dropout(drop_rate)  # end point 'PreLogitsFlatten' (after dropout)
        self.Logits = classifier(in_channels, num_classes)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.PreLogitsFlatten(self.AvgPool_1a(x))
        if pre_logits:
            return x
        return self.Logits(self.Dropout_1b(x))


# --------------------------------------------------------------------------- the model


class InceptionV4(SlimNet):
    """Inception v4 as in slim: stem, 4 Inception-A, Reduction-A, 7 Inception-B, Reduction-B,
    3 Inception-C blocks, global average pool, fully connected logits.

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
        self.tf_scope = "InceptionV4"
        self.classifier_name = "Logits.Logits"
        self.num_classes = num_classes
        self.aux_logits = aux_logits
        self.num_features = 1536

        self.Conv2d_1a_3x3 = conv_bn(3, 32, 3, 2, "VALID")
        self.Conv2d_2a_3x3 = conv_bn(32, 32, 3, padding="VALID")
        self.Conv2d_2b_3x3 = conv_bn(32, 64, 3)
        self.Mixed_3a = stem_mixed_3a()
        self.Mixed_4a = stem_mixed_4a()
        self.Mixed_5a = stem_mixed_5a()
        for block in "bcde":
            setattr(self, f"Mixed_5{block}", block_inception_a())
        self.Mixed_6a = block_reduction_a()
        for block in "bcdefgh":
            setattr(self, f"Mixed_6{block}", block_inception_b())
        self.Mixed_7a = block_reduction_b()
        for block in "bcd":
            setattr(self, f"Mixed_7{block}", block_inception_c())
        self.AuxLogits = AuxLogits(1024, num_classes) if create_aux_logits else None
        self.Logits = Logits(self.num_features, num_classes, drop_rate)

        # the backbone in run order; slim records each stage's output as an end point
        self.stage_names = [
            n for n, _ in self.named_children() if n.startswith(("Conv2d", "Mixed"))
        ]
        self.classifier_names = ("Logits.Logits",) + (
            ("AuxLogits.Aux_logits",) if create_aux_logits else ()
        )

    def _backbone(
        self, x: torch.Tensor, with_aux: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        aux = None
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if with_aux and name == "Mixed_6h":
                aux = self.AuxLogits(x)
        return x, aux

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image (N, 3, H, W) → ``Mixed_7d`` map (N, 1536, 8, 8 at 299x299)."""
        return self._backbone(x, with_aux=False)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``Mixed_7d`` map → logits (N, classes); ``pre_logits=True`` stops after the global
        average pool (N, 1536)."""
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
            self.AuxLogits.Aux_logits = classifier(768, num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points: OrderedDict[str, nn.Module] = OrderedDict(
            (name, getattr(self, name)) for name in self.stage_names
        )
        points["global_pool"] = self.Logits.AvgPool_1a
        points["PreLogitsFlatten"] = self.Logits.Dropout_1b
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
        if self.AuxLogits is None or not self.AuxLogits.fits(points["Mixed_6h"]):
            return points
        ordered: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, value in points.items():
            if name == "global_pool":
                ordered["AuxLogits"] = self.AuxLogits(points["Mixed_6h"])
            ordered[name] = value
        return ordered


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
