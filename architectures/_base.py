"""What every slimzoo network has in common: the timm-style head API and slim's end points."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from ._input import check_input

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
    # The auxiliary classifier of Inception v3/v4, Inception-ResNet v2 and NASNet is no part of
    # the main network: forward_features/forward_head never run it. A family with one names the
    # end point it reads (aux_input_end_point) and the one after which slim records 'AuxLogits'
    # (aux_end_point_after), and returns it from aux_head(); end_points() then runs it on the
    # recorded input where it fits (aux_end_point_always: there, or raise its error).
    aux_input_end_point: str = ""
    aux_end_point_always: bool = False

    @property
    def aux_end_point_after(self) -> str:
        return self.aux_input_end_point

    def aux_head(self) -> nn.Module | None:
        """The auxiliary classifier (with ``fits(x)``), or None where there is none."""
        return None

    @property
    def unbuilt_heads(self) -> tuple[str, ...]:
        """Torch paths of released heads this model was built without (e.g. an auxiliary head
        with ``create_aux_logits=False``). A checkpoint or state dict of the full model holds
        their tensors: loading leaves them unread (a checkpoint's are reported as ignored)."""
        return ()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.get_submodule(self.classifier_name)

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        """``{slim end point name: module whose output it is}``."""
        raise NotImplementedError

    @staticmethod
    def to_channels_last(x: torch.Tensor) -> torch.Tensor:
        """An image batch in channels-last memory layout (same shape and values; a no-op when it
        already is, and for unbatched input). PyTorch's CPU convolutions (oneDNN) and pools run
        several times faster on it than on NCHW; tensor-core GPUs prefer it too."""
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x

    @torch.no_grad()
    def end_points(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Run the network and return slim's end points (its names, NCHW tensors) in run order.

        Meant for parity debugging and feature extraction; the tensors are detached copies taken
        as each module returns (networks may reuse an output's memory in place afterwards).
        """
        check_input(x)
        captured: OrderedDict[str, torch.Tensor] = OrderedDict()
        handles = []
        for name, module in self.end_point_modules().items():

            def hook(_m, _inp, out, name=name):
                captured[name] = out.detach().clone()  # later in-place ops must not change it

            handles.append(module.register_forward_hook(hook))
        try:
            logits = self.forward_head(self.forward_features(x))  # the main network only
        finally:
            for h in handles:
                h.remove()
        captured = self._with_aux_end_point(captured)
        if self.predictions_end_point and logits.dim() == 2:
            captured["Predictions"] = torch.softmax(logits, dim=-1)
        return captured

    def _with_aux_end_point(
        self, points: OrderedDict[str, torch.Tensor]
    ) -> OrderedDict[str, torch.Tensor]:
        """``points`` with ``AuxLogits`` after ``aux_end_point_after``, as slim records it."""
        head = self.aux_head()
        if head is None:
            return points
        aux_input = points[self.aux_input_end_point]
        if not (head.fits(aux_input) or self.aux_end_point_always):
            return points  # an input size the checkpoint's aux kernel cannot take
        aux = head(aux_input)
        ordered: OrderedDict[str, torch.Tensor] = OrderedDict()
        for name, value in points.items():
            ordered[name] = value
            if name == self.aux_end_point_after:
                ordered["AuxLogits"] = aux
        return ordered


class ChainNet(SlimNet):
    """A :class:`SlimNet` whose base network is a chain of end points, then a ``Logits`` head.

    The children named in ``base_names`` (registered with :meth:`add_base`) run in order and each
    one's output is a slim end point (unless :meth:`base_end_point_names` says otherwise), as in
    slim's ``inception_v1_base`` … ``inception_v4_base``.
    The head ``self.Logits`` has ``pre_logits(x)``, ``reset(num_classes)`` and
    ``end_point_modules()`` (e.g. :class:`~architectures.layers.ConvLogitsHead`).
    """

    base_names: tuple[str, ...] = ()
    Logits: nn.Module
    # run the base in channels-last memory format (see iter_base)
    channels_last: bool = True

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
        if self.channels_last:
            x = self.to_channels_last(x)
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

    def base_end_point_names(self) -> dict[str, str]:
        """``{base child: slim end point name}``; by default every child, under its own name."""
        return {name: name for name in self.base_names}

    def end_point_modules(self) -> OrderedDict[str, nn.Module]:
        points = OrderedDict(
            (point, getattr(self, name)) for name, point in self.base_end_point_names().items()
        )
        points.update(self.Logits.end_point_modules())
        return points
