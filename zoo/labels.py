"""ImageNet class names in the order of a slim model's logits: :func:`imagenet_labels`.

slim's ImageNet models come in two label spaces:

* **1001 classes** (inception, resnet_v2, mobilenet, nasnet, pnasnet): index 0 is
  ``"background"``, then the 1000 ILSVRC-2012 classes. slim numbers them from 1 "in alphabetical
  order" of their WordNet ids (``datasets/imagenet.py``), n01440764 (tench) first.
* **1000 classes** (vgg, resnet_v1, converted from Caffe): the same 1000 classes, same order,
  no background.

The sorted-WordNet-id order is also torchvision's (and Caffe's), so the names come from
torchvision's ImageNet category list, installed with it and read offline. slim's own readable
names are WordNet glosses ("tench, Tinca tinca"); torchvision's short names are used instead.
To compare a 1001-class model with torchvision models, drop the background logit:
:func:`drop_background` (``logits[..., 1:]``).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ._model_facts import model_facts

__all__ = ["BACKGROUND", "drop_background", "imagenet_labels"]

BACKGROUND = "background"


@functools.cache
def _imagenet_1000() -> tuple[str, ...]:
    """torchvision's 1000 ImageNet names (index = class id), without touching the network."""
    from torchvision.models import ResNet50_Weights

    names = tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    if len(names) != 1000:
        raise RuntimeError(
            f"torchvision's ImageNet category list has {len(names)} names, expected 1000: "
            "is torchvision installed correctly?"
        )
    return names


def imagenet_labels(name_or_num_classes: str | int) -> list[str]:
    """Class names in the order of a model's logits.

    Args:
        name_or_num_classes: a slim model name (``"inception_v3"`` → 1001 names, ``"vgg_16"`` →
            1000) or the class count itself, 1001 or 1000.

    Returns:
        A new list: ``["background", "tench", "goldfish", ...]`` for 1001 classes,
        ``["tench", "goldfish", ...]`` for 1000.

    Raises:
        zoo.UnknownModelError: an unknown model name.
        ValueError: a class count other than 1000 or 1001.

    >>> imagenet_labels("inception_v3")[:2], imagenet_labels("vgg_16")[0]
    (['background', 'tench'], 'tench')
    """
    if isinstance(name_or_num_classes, str):
        num_classes = int(model_facts(name_or_num_classes).num_classes)
    else:
        num_classes = int(name_or_num_classes)
    if num_classes == 1001:
        return [BACKGROUND, *_imagenet_1000()]
    if num_classes == 1000:
        return list(_imagenet_1000())
    raise ValueError(
        f"ImageNet models have 1000 or 1001 (with background) classes, got {num_classes}; "
        "a fine-tuned model's labels are its own"
    )


def drop_background(logits: Tensor, dim: int = -1) -> Tensor:
    """1001-class slim logits → the 1000 ImageNet classes in torchvision's order.

    Removes index 0 (background) along ``dim``: ``logits[..., 1:]`` for the default ``dim``.
    Apply softmax afterwards if you need probabilities over the 1000 classes only.

    Raises:
        ValueError: ``logits`` does not have 1001 entries along ``dim``.
    """
    if not isinstance(logits, Tensor):
        logits = torch.as_tensor(logits)
    if logits.dim() == 0 or logits.shape[dim] != 1001:
        raise ValueError(
            f"drop_background expects 1001-class logits (background first) along dim {dim}, "
            f"got shape {tuple(logits.shape)}; 1000-class models (vgg, resnet_v1) have none"
        )
    return logits.narrow(dim, 1, 1000)
