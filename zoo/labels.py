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
To compare a 1001-class model with torchvision models, drop the background logit: load it
with ``zoo.load(name, drop_background=True)`` (the classifier itself then has 1000 outputs, and
``imagenet_labels(name, drop_background=True)`` names them), or slice its logits with
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


def imagenet_labels(name_or_num_classes: str | int, *, drop_background: bool = False) -> list[str]:
    """Class names in the order of a model's logits.

    Args:
        name_or_num_classes: a model name (``"inception_v3"`` → 1001 names, ``"vgg_16"`` →
            1000; the class count and label offset come from :func:`zoo.model_info`) or the
            class count itself, 1001 or 1000.
        drop_background: the names for the logits of a model loaded with
            ``zoo.load(name, drop_background=True)``: the 1001-class list without its first
            entry (``"background"``), i.e. torchvision's 1000 names. Like the load, refused for
            a 1000-class model, which has no background class.

    Returns:
        A new list: ``["background", "tench", "goldfish", ...]`` for 1001 classes,
        ``["tench", "goldfish", ...]`` for 1000.

    Raises:
        zoo.UnknownModelError: an unknown model name.
        ValueError: a class count other than 1000 or 1001 (a fine-tuned model's labels are its
            own), or ``drop_background`` for a 1000-class model.

    >>> imagenet_labels("inception_v3")[:2], imagenet_labels("vgg_16")[0]
    (['background', 'tench'], 'tench')
    >>> imagenet_labels("inception_v3", drop_background=True) == imagenet_labels("vgg_16")
    True
    """
    if isinstance(name_or_num_classes, str):
        info = model_facts(name_or_num_classes)
        num_classes, offset = info.num_classes, info.label_offset
        what = f"{name_or_num_classes} has {num_classes} classes"
    else:
        num_classes = int(name_or_num_classes)
        offset = num_classes - 1000
        what = f"got {num_classes} classes"
    if num_classes - offset != 1000 or offset not in (0, 1):
        raise ValueError(
            f"ImageNet models have 1000 or 1001 (with background) classes, {what}; "
            "a fine-tuned model's labels are its own"
        )
    if drop_background:
        if offset == 0:
            raise ValueError(
                f"drop_background=True: {what} and no background class (vgg and resnet_v1 were "
                "converted from Caffe); its labels are already torchvision's 1000"
            )
        offset = 0
    return [BACKGROUND] * offset + list(_imagenet_1000())


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
