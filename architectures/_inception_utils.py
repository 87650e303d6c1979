"""What the Inception family files share: slim's ``inception_utils.inception_arg_scope`` conv,
branch containers, the auxiliary classifier and the fully connected ``Logits`` head.

* :data:`conv`: slim ``conv2d`` under the Inception arg scopes (v1–v4, Inception-ResNet v2): no
  bias, batch norm with epsilon 1e-3 and no gamma (``scale=False``), ReLU.
* :func:`seq`, :class:`FanOutBranch`, :class:`PoolBranch`: the branches of a ``Mixed_*`` block
  (:class:`~architectures.layers.Concat` concatenates them); :func:`reduction_a`, the block
  Inception v4 and Inception-ResNet v2 share with other widths.
* :class:`AuxLogits`: slim's auxiliary classifier (Inception v3/v4, Inception-ResNet v2): 5x5/3
  'VALID' average pool, 1x1 conv (128), 5x5 'VALID' conv (768), classifier; the families name
  its scopes differently, so the names are arguments.
* :class:`FCLogitsHead`: the ``Logits`` scope of Inception v4 and Inception-ResNet v2 (global
  average pool, flatten, dropout, fully connected classifier).
* :class:`InceptionNet`: a :class:`~architectures._base.ChainNet` with the optional auxiliary
  head. The main network (``forward_features``/``forward_head``) never runs the head; ``forward``
  adds its output in training mode when built with ``aux_logits=True`` (as torchvision's
  ``inception_v3``), ``end_points`` records ``AuxLogits`` (see :class:`~architectures._base.
  SlimNet`), and a model built without the head may load a checkpoint that has it
  (``unbuilt_heads``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from ._base import ChainNet
from ._input import check_input
from .layers import AvgPool2dSame, Concat, ConvBnAct, GlobalAvgPool, MaxPool2dSame

__all__ = [
    "AuxLogits",
    "FCLogitsHead",
    "FanOutBranch",
    "InceptionNet",
    "PoolBranch",
    "conv",
    "fc_classifier",
    "reduction_a",
    "relu",
    "seq",
]

# ReLU in place: it only ever overwrites the batch norm's own output
relu = partial(nn.ReLU, inplace=True)
# slim conv2d under inception_arg_scope: no bias, batch norm without gamma (eps 1e-3), ReLU
conv = partial(ConvBnAct, bn_eps=1e-3, bn_scale=False, act=relu)


# --------------------------------------------------------------------------- branches


def seq(*layers: tuple[str, nn.Module]) -> nn.Sequential:
    """A branch: layers applied in order, each named by its TF scope."""
    return nn.Sequential(OrderedDict(layers))


class FanOutBranch(nn.Sequential):
    """A branch whose layers run in order, except that the last two both read the same map (a
    1x3 and a 3x1 conv) and their outputs are concatenated (Inception v3 ``Mixed_7b``/``7c``,
    Inception v4's Inception-C blocks). A Sequential: the convs sit directly in the branch scope."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *trunk, across, down = self
        for layer in trunk:
            x = layer(x)
        return torch.cat([across(x), down(x)], dim=1)


class PoolBranch(nn.Module):
    """``Branch_3``: 3x3 'SAME' average pool (``AvgPool_0a_3x3``), then a 1x1 conv + batch norm
    + ReLU (``Conv2d_0b_1x1``).

    Run as conv → pool → batch norm → ReLU, which is the same function: a 1x1 conv (a linear map
    across channels, no bias) and an average pool (the same linear map across space for every
    channel, also where it excludes padding) commute. Pooling the conv's output instead of its
    input pools several times fewer channels (3 to 8 in Inception v4 / Inception-ResNet v2). A
    hook on ``AvgPool_0a_3x3`` therefore sees pooled conv outputs.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.AvgPool_0a_3x3 = AvgPool2dSame(3, 1, "SAME")
        self.Conv2d_0b_1x1 = conv(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv_bn = self.Conv2d_0b_1x1
        return conv_bn.act(conv_bn.bn(self.AvgPool_0a_3x3(conv_bn.conv(x))))


def reduction_a(in_channels: int, k: int, l: int, m: int, n: int) -> Concat:
    """The paper's Reduction-A (Inception v4 ``Mixed_6a``, Inception-ResNet v2 ``Mixed_6a``): 3x3/2
    conv (``n``) | 1x1 (``k``) → 3x3 (``l``) → 3x3/2 (``m``) | 3x3/2 max pool, strided 'VALID'."""
    return Concat(
        Branch_0=seq(("Conv2d_1a_3x3", conv(in_channels, n, 3, 2, "VALID"))),
        Branch_1=seq(
            ("Conv2d_0a_1x1", conv(in_channels, k, 1)),
            ("Conv2d_0b_3x3", conv(k, l, 3)),
            ("Conv2d_1a_3x3", conv(l, m, 3, 2, "VALID")),
        ),
        Branch_2=seq(("MaxPool_1a_3x3", MaxPool2dSame(3, 2, "VALID"))),
    )


# --------------------------------------------------------------------------- heads


def fc_classifier(in_features: int, num_classes: int) -> nn.Module:
    """slim ``fully_connected`` without activation (``[in, out]`` weights and biases);
    ``num_classes=0`` leaves the features as they are."""
    return nn.Linear(in_features, num_classes) if num_classes else nn.Identity()


class AuxLogits(nn.Module):
    """slim's auxiliary classifier (TF scope ``AuxLogits``): 5x5/3 'VALID' average pool, 1x1
    conv (128), 'VALID' conv over the whole 5x5 map (768), flatten, classifier.

    slim sizes the big conv's kernel to the pooled map it meets (5x5 at 299x299), so the
    checkpoint's kernel fits only an input map of 17 to 19 pixels (inputs of 299 to 346); the
    head raises a ``ValueError`` for another size (:meth:`fits` tells in advance).

    Args:
        in_channels: channels of the input end point.
        num_classes: classes of the classifier.
        scopes: TF scopes of the pool, the 1x1 conv, the 5x5 conv and the classifier
            (``("AvgPool_1a_5x5", "Conv2d_1b_1x1", "Conv2d_2a_5x5", "Conv2d_2b_1x1")`` in v3).
        input_name: the end point the head reads (for the error message).
        classifier: ``(in_features, num_classes) → module`` (:func:`fc_classifier`, or
            :class:`~architectures.layers.Conv1x1AsLinear` for slim's 1x1-conv logits).
        widths: channels of the two convs (slim's ``depth(128)``, ``depth(768)``).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        scopes: tuple[str, str, str, str],
        input_name: str,
        classifier: Callable[[int, int], nn.Module],
        widths: tuple[int, int] = (128, 768),
    ) -> None:
        super().__init__()
        pool, proj, whole_map, self.logits_name = scopes
        self.input_name, self.make_classifier, self.num_features = input_name, classifier, widths[1]
        self.add_module(pool, AvgPool2dSame(5, 3, "VALID"))
        self.add_module(proj, conv(in_channels, widths[0], 1))
        self.add_module(whole_map, conv(widths[0], widths[1], 5, padding="VALID"))
        self.add_module(self.logits_name, classifier(widths[1], num_classes))

    def fits(self, x: torch.Tensor) -> bool:
        """Whether the checkpoint's 5x5 kernel covers the pooled map of ``x`` exactly."""
        return all((n - 5) // 3 + 1 == 5 for n in x.shape[-2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool, proj, whole_map, classifier = self.children()
        if not self.fits(x):
            raise ValueError(
                f"the auxiliary head needs a {self.input_name} map of 17 to 19 pixels (inputs of "
                f"299 to 346), got {tuple(x.shape[-2:])}: the checkpoint's 5x5 kernel of its "
                "'VALID' conv is sized for 299x299 inputs. Use an input of that size, or build "
                "the model with create_aux_logits=False (or without aux_logits=True)."
            )
        return classifier(whole_map(proj(pool(x))).flatten(1))

    def reset(self, num_classes: int) -> None:
        """A new, randomly initialised classifier for ``num_classes``."""
        setattr(self, self.logits_name, self.make_classifier(self.num_features, num_classes))


class FCLogitsHead(nn.Sequential):
    """The ``Logits`` scope of Inception v4 / Inception-ResNet v2: global average pool (end
    point ``global_pool``), flatten, dropout (training only; its output is the end point
    ``PreLogitsFlatten``), fully connected classifier (``Logits``).

    ``names`` are the TF scopes of the four layers (slim names them differently per family).
    Same interface as :class:`~architectures.layers.ConvLogitsHead`.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        drop_rate: float,
        names: tuple[str, str, str, str],
    ) -> None:
        pool, flatten, dropout, self.logits_name = names
        self.in_features = in_features
        super().__init__(
            OrderedDict(
                [
                    (pool, GlobalAvgPool()),
                    (flatten, nn.Flatten(1)),
                    (dropout, nn.Dropout(drop_rate)),
                    (self.logits_name, fc_classifier(in_features, num_classes)),
                ]
            )
        )

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features (N, in_features), before dropout."""
        return self[1](self[0](x))

    def reset(self, num_classes: int) -> None:
        """A new, randomly initialised classifier for ``num_classes`` (0: none)."""
        setattr(self, self.logits_name, fc_classifier(self.in_features, num_classes))

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points = OrderedDict(global_pool=self[0], PreLogitsFlatten=self[2])
        if not isinstance(self[3], nn.Identity):
            points["Logits"] = self[3]
        return points


# --------------------------------------------------------------------------- the model frame


class InceptionNet(ChainNet):
    """A :class:`~architectures._base.ChainNet` with slim's optional auxiliary classifier.

    A family builds its base with :meth:`add_base`, sets ``self.AuxLogits`` (an
    :class:`AuxLogits` or None), ``self.aux_after`` (the base child it reads),
    ``self.aux_logits`` and ``self.Logits``, then calls :meth:`check_aux_logits`.
    """

    AuxLogits: AuxLogits | None
    aux_after: str
    aux_logits: bool

    def check_aux_logits(self) -> None:
        if self.aux_logits and self.AuxLogits is None:
            with_classes = "" if self.num_classes else " and num_classes > 0"
            raise ValueError(
                "aux_logits=True returns the auxiliary head's logits, which needs "
                f"create_aux_logits=True{with_classes}"
            )

    @property
    def classifier_names(self) -> tuple[str, ...]:
        """Torch paths of every classifier: the logits and, if built, the auxiliary logits."""
        aux = () if self.AuxLogits is None else (f"AuxLogits.{self.AuxLogits.logits_name}",)
        return (self.classifier_name, *aux)

    @property
    def unbuilt_heads(self) -> tuple[str, ...]:
        """Built without the auxiliary head, the model may load weights that have it."""
        return ("AuxLogits",) if self.AuxLogits is None else ()

    @property
    def optional_heads(self) -> tuple[str, ...]:
        """The auxiliary head, if built: weights without it load (inference never runs it)."""
        return () if self.AuxLogits is None else ("AuxLogits",)

    def drop_optional_head(self, path: str) -> None:
        """Remove the auxiliary head (weights without it were loaded)."""
        if path != "AuxLogits" or self.AuxLogits is None:
            raise ValueError(f"{path!r} is not an optional head of {type(self).__name__}")
        self.AuxLogits, self.aux_logits = None, False

    def aux_head(self) -> nn.Module | None:
        return self.AuxLogits

    @property
    def aux_input_end_point(self) -> str:
        return self.base_end_point_names()[self.aux_after]

    @property
    def aux_end_point_after(self) -> str:  # slim builds the head after the base network
        return list(self.base_end_point_names().values())[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, classes); ``(logits, aux_logits)`` in training mode with ``aux_logits``."""
        check_input(x)
        if not (self.training and self.aux_logits):
            return self.forward_head(self.forward_features(x))
        aux = None
        for name, features in self.iter_base(x):
            if name == self.aux_after:
                aux = self.AuxLogits(features)
        return self.forward_head(features), aux

    def reset_classifier(self, num_classes: int) -> None:
        """New (randomly initialised) classifiers for ``num_classes``: the logits and, if the
        model has one, the auxiliary head's (removed for ``num_classes=0``: slim builds no
        auxiliary head without classes either)."""
        if not num_classes:
            self.AuxLogits, self.aux_logits = None, False
        super().reset_classifier(num_classes)
        if self.AuxLogits is not None:
            self.AuxLogits.reset(num_classes)
