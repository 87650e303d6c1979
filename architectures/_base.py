"""What every slimzoo network has in common: the timm-style head API and slim's end points."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["SlimNet"]


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
