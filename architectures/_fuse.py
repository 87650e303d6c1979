"""Fold inference-mode batch norm into the convolution before it (``zoo.load(..., fuse_bn=True)``).

slim's ``conv2d`` + ``batch_norm`` at inference is
``gamma * (W x - mean) / sqrt(var + eps) + beta``,
an affine map of the conv output; it folds into the conv's weight and bias exactly (up to float
rounding), removing one pass over every activation map. Only conv → BN pairs with nothing in
between are folded (``ConvBnAct`` and the separable convs' pointwise → BN); pre-activation BNs
(ResNet V2 ``preact``) have a ReLU before the next conv and stay.

A fused model has different parameters than the TF mapping expects: it is for inference and
export of TorchScript/ONNX, not for loading checkpoints or exporting back to TF.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fuse_bn", "fuse_conv_bn"]


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> None:
    """Fold ``bn`` (inference statistics) into ``conv`` in place, giving ``conv`` a bias."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype))


def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every conv → BN pair of ``model`` (in place) and return it, in eval mode.

    A pair is a module with ``conv`` (or ``pointwise``) and ``bn`` children, the convention of
    :class:`architectures.layers.ConvBnAct` and :class:`~architectures.layers.SeparableConv2dSame`.
    Families that place batch norm elsewhere declare their pairs in ``fuse_pairs``: a sequence of
    ``(conv_path, bn_name)`` on the module, where ``conv_path`` may be dotted
    (``"separable_3x3_1.pointwise"``) and ``bn_name`` is a child, replaced by ``nn.Identity``.
    A pair is only declared where the BN's input is exactly that conv's output.
    """
    model.eval()
    for module in list(model.modules()):
        pairs = list(getattr(module, "fuse_pairs", ()))
        for conv_name in ("conv", "pointwise"):
            if isinstance(getattr(module, conv_name, None), nn.Conv2d):
                pairs.append((conv_name, "bn"))
        for conv_path, bn_name in pairs:
            conv, bn = _submodule(module, conv_path), getattr(module, bn_name, None)
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.modules.batchnorm._BatchNorm):
                fuse_conv_bn(conv, bn)
                setattr(module, bn_name, nn.Identity())
    return model.eval()  # the Identity modules in place of the batch norms too


def _submodule(module: nn.Module, path: str) -> nn.Module | None:
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None
