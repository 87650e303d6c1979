"""What every slimzoo network has in common: the timm-style head API and slim's end points."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import torch
from torch import nn

__all__ = ["ChainNet", "SlimNet"]


class SlimNet(nn.Module):
    """Base class of the ported networks.

    A family sets ``tf_scope`` (root TF scope), ``classifier_name`` (attribute path of the final
    classifier, whose bias gives the class count) and ``num_classes``, implements
    ``forward_features``, ``forward_head`` and ``reset_classifier``, and lists the modules whose
    outputs are slim's end points in ``end_point_modules``.
    """

    tf_scope: str = ""
    classifier_name: str = "logits"
    # slim adds 'Predictions' (softmax of the logits) to the end points of most families
    predictions_end_point: bool = True
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        """``{slim end point name: module whose output it is}``."""
        raise NotImplementedError

    @torch.no_grad()
    def end_points(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Run the network and return slim's end points (its names, NCHW tensors) in run order.

        Meant for parity debugging and feature extraction; the tensors are detached copies taken
        as each module returns (networks may reuse an output's memory in place afterwards).
        """
        captured: OrderedDict[str, torch.Tensor] = OrderedDict()
        handles = []
        for name, module in self.end_point_modules().items():

            def hook(_m, _inp, out, name=name):
                captured[name] = out.detach().clone()  # later in-place ops must not change it

            handles.append(module.register_forward_hook(hook))
        try:
            logits = self(x)
        finally:
            for h in handles:
                h.remove()
        if self.predictions_end_point and logits.dim() == 2:
            captured["Predictions"] = torch.softmax(logits, dim=-1)
        return captured


class ChainNet(SlimNet):
    """A :class:`SlimNet` whose base network is a chain of end points, then a ``Logits`` head.

    The children named in ``base_names`` (registered with :meth:`add_base`) run in order and each
    one's output is a slim end point, as in slim's ``inception_v1_base`` … ``inception_v3_base``.
    The head ``self.Logits`` has ``pre_logits(x)``, ``reset(num_classes)`` and
    ``end_point_modules()`` (e.g. :class:`~architectures.layers.ConvLogitsHead`).
    """

    base_names: tuple[str, ...] = ()
    Logits: nn.Module

    @property
    def predictions_end_point(self) -> bool:  # slim's 'Predictions' needs logits
        return bool(self.num_classes)

    def add_base(self, layers: Mapping[str, nn.Module]) -> None:
        """Append ``layers`` to the chain, as children named by their TF scopes."""
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.base_names = (*self.base_names, *layers)

    def iter_base(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Run the chain on an image batch, yielding ``(end point name, output)`` in order.

        The batch runs in channels-last memory format (same shape and values): PyTorch's CPU
        convolutions and, above all, its pooling are several times faster on it.
        """
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        for name in self.base_names:
            x = getattr(self, name)(x)
            yield name, x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for _name, features in self.iter_base(x):  # noqa: B007 (the last one is the result)
            pass
        return features

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.Logits.pre_logits(x) if pre_logits else self.Logits(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.Logits.reset(num_classes)

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points = OrderedDict((name, getattr(self, name)) for name in self.base_names)
        points.update(self.Logits.end_point_modules())
        return points
