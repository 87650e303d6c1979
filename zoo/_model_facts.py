"""The registry entry that says how a model name is fed and labelled, for transforms and labels.

:func:`zoo.model_info` answers for every network of the shipped registry (released or not:
``resnet_v1_200`` has no weights but its family's preprocessing). Beyond the registry names this
module knows one naming rule: slim's MobileNet checkpoints carry their depth multiplier and
resolution in the name (``mobilenet_v1_0.5_160``, ``mobilenet_v2_1.4_224``, built as
``zoo.load("mobilenet_v1", depth_multiplier=0.5, checkpoint=...)``); such a name gets its
network's entry with the resolution of the name as input size.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

import architectures

from .errors import UnknownModelError, close_matches
from .registry import ModelInfo, get_registry

__all__ = ["by_family", "model_facts", "model_family"]

# mobilenet_v1_0.5_160: network, depth multiplier, resolution (slim's checkpoint names)
_MOBILENET_CHECKPOINT = re.compile(r"(?P<network>mobilenet_v[12])_\d+(?:\.\d+)?_(?P<size>\d{2,3})")


def model_facts(name: str) -> ModelInfo:
    """:func:`zoo.model_info` of ``name``, also for slim's MobileNet checkpoint names.

    Callers read ``preprocessing`` (kind, input size, crop fraction), ``num_classes`` and
    ``label_offset``.

    Raises:
        zoo.UnknownModelError: neither a registry entry nor a MobileNet checkpoint name (the
            message lists close matches).
    """
    registry = get_registry()
    info = registry.models.get(name)
    if info is not None:
        return info
    match = _MOBILENET_CHECKPOINT.fullmatch(name)
    base = registry.models.get(match["network"]) if match else None
    if base is not None and base.preprocessing is not None:
        size = int(match["size"])
        preprocessing = dataclasses.replace(base.preprocessing, input_size=size)
        return dataclasses.replace(
            base, name=name, release=None, accuracy=None, preprocessing=preprocessing
        )
    known = sorted({*registry.models, *architectures.list_architectures()})
    raise UnknownModelError(
        f"unknown model {name!r}: expected a network of the weights registry "
        f"({registry.source}) such as 'inception_v3' or 'vgg_16', or a MobileNet checkpoint "
        f"name such as 'mobilenet_v1_0.5_160'.{close_matches(name, known)}"
    )


def model_family(name: str) -> str:
    """The family of a model or network name: the ``architectures`` module of its network
    (``mobilenet_v1`` for ``mobilenet_v1_0.5_160`` and ``mobilenet_v1_050``, ``inception_v3``
    for ``adv_inception_v3``); the network's own name when it is not available here."""
    info = get_registry().models.get(name)
    network = info.architecture if info is not None else name
    try:
        module = architectures.get_constructor(network).__module__
    except UnknownModelError:
        return network
    return module.rsplit(".", 1)[-1]


def by_family(names: Iterable[str]) -> list[tuple[str, list[str]]]:
    """``names`` grouped by :func:`model_family`, families and names in natural order
    (``mobilenet_v1_0.25_128`` before ``mobilenet_v1_0.5_128``), for listings of many models."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names, key=architectures.natural_key):
        groups.setdefault(model_family(name), []).append(name)
    return sorted(groups.items(), key=lambda item: architectures.natural_key(item[0]))
