"""The classifier end of the networks: slim's 1x1-conv logits as a ``Linear``, its
``spatial_squeeze`` (lenient and strict), and the Inception v1-v3 ``Logits`` head."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["Conv1x1AsLinear", "ConvLogitsHead", "SpatialSqueeze", "Squeeze1x1"]


class Conv1x1AsLinear(nn.Linear):
    """A classifier that slim writes as a 1x1 conv on a 1x1 map (``logits/weights`` is
    ``[1, 1, in, out]``). It is a plain ``nn.Linear`` in torch; the mapping reshapes."""


class SpatialSqueeze(nn.Module):
    """slim's ``spatial_squeeze``: (N, C, 1, 1) → (N, C); a larger map stays a map (fully
    convolutional use, where TF's squeeze would fail)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) if x.shape[-2:] == (1, 1) else x


class Squeeze1x1(nn.Module):
    """slim's ``spatial_squeeze`` in front of a classifier: (N, C, 1, 1) → (N, C).

    Unlike :class:`SpatialSqueeze` a larger map is an error (slim's squeeze fails there too), so a
    fixed pooling window that does not cover the map is reported instead of mis-shaped logits.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"the classifier needs a 1x1 map after pooling, got {tuple(x.shape[-2:])}: the "
                "fixed pooling window does not cover this input size; build the model with "
                "global_pool=True to average any map size"
            )
        return x.flatten(1)


class ConvLogitsHead(nn.Sequential):
    """slim's ``Logits`` scope of Inception v1–v3: average pool to 1x1, dropout (training only),
    squeeze, and a 1x1-conv classifier with biases (a :class:`Conv1x1AsLinear`).

    The children are named like slim's scopes and end points: ``pool = (name, module)``
    (``("global_pool", GlobalAvgPool())`` or a fixed window such as ``"AvgPool_1a"``), then
    ``dropout``, ``SpatialSqueeze`` and ``logits`` (e.g. ``"Conv2d_1c_1x1"``). With
    ``num_classes=0`` the classifier is an ``nn.Identity`` and the head returns the features.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        drop_rate: float,
        pool: tuple[str, nn.Module],
        dropout: str,
        logits: str,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.pool_name, self.logits_name = pool[0], logits
        self.add_module(pool[0], pool[1])
        self.add_module(dropout, nn.Dropout(drop_rate))
        self.add_module("SpatialSqueeze", Squeeze1x1())
        self.add_module(logits, self._classifier(num_classes))

    def _classifier(self, num_classes: int) -> nn.Module:
        return Conv1x1AsLinear(self.in_features, num_classes) if num_classes else nn.Identity()

    def pre_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input: pooled features (N, in_features)."""
        *layers, _classifier = self
        for layer in layers:
            x = layer(x)
        return x

    def reset(self, num_classes: int) -> None:
        """A new, randomly initialised classifier for ``num_classes`` (0: none)."""
        setattr(self, self.logits_name, self._classifier(num_classes))

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        """slim's end points of the head: the pool (by its name) and, with a classifier,
        ``Logits``."""
        points = OrderedDict([(self.pool_name, self[0])])
        if not isinstance(self[-1], nn.Identity):
            points["Logits"] = self[-1]
        return points
