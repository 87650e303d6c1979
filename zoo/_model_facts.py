"""What preprocessing and label set a released slim model expects, for transforms and labels.

``zoo.model_info`` (the weights registry) is the source of truth once it exists; until then this
module answers from a small table keyed by model family, taken from the checkpoint facts
(classes, eval size, preprocessing of each published tarball). :func:`model_facts` is the one
place to switch over: it returns any object with the fields ``preprocessing``, ``input_size``,
``crop_fraction`` and ``num_classes``, and the callers read only those.
"""

from __future__ import annotations

import fnmatch
import numbers
import re
from dataclasses import dataclass
from typing import Any

from .errors import UnknownModelError, close_matches

__all__ = ["ModelFacts", "image_hw", "model_facts"]


@dataclass(frozen=True)
class ModelFacts:
    """The evaluation facts of a released checkpoint (a subset of ``zoo.model_info``)."""

    preprocessing: str  # "inception" or "vgg"
    input_size: int  # square eval size in pixels
    crop_fraction: float  # inception: tf.image.central_crop fraction; vgg: 224/256
    num_classes: int  # 1001 (index 0 = background) or 1000 (vgg, resnet_v1: Caffe-trained)


_INCEPTION, _VGG = "inception", "vgg"

# (glob over slim model names, facts). First match wins. resnet_v2 is the trap: slim's
# preprocessing_factory maps it to vgg 224, but its checkpoints were trained and evaluated with
# inception preprocessing at 299 (vgg preprocessing gives near-zero accuracy).
_FAMILIES: tuple[tuple[str, ModelFacts], ...] = (
    ("vgg_*", ModelFacts(_VGG, 224, 0.875, 1000)),
    ("resnet_v1_*", ModelFacts(_VGG, 224, 0.875, 1000)),
    ("resnet_v2_*", ModelFacts(_INCEPTION, 299, 0.875, 1001)),
    ("inception_v[12]", ModelFacts(_INCEPTION, 224, 0.875, 1001)),
    ("inception_v[34]", ModelFacts(_INCEPTION, 299, 0.875, 1001)),
    ("inception_resnet_v2", ModelFacts(_INCEPTION, 299, 0.875, 1001)),
    ("mobilenet_*", ModelFacts(_INCEPTION, 224, 0.875, 1001)),
    ("*nasnet*large", ModelFacts(_INCEPTION, 331, 0.875, 1001)),
    ("*nasnet*mobile", ModelFacts(_INCEPTION, 224, 0.875, 1001)),
)

# Names used for "did you mean" suggestions only.
_KNOWN_NAMES = (
    "vgg_16",
    "vgg_19",
    "resnet_v1_50",
    "resnet_v1_101",
    "resnet_v1_152",
    "resnet_v2_50",
    "resnet_v2_101",
    "resnet_v2_152",
    "inception_v1",
    "inception_v2",
    "inception_v3",
    "inception_v4",
    "inception_resnet_v2",
    "mobilenet_v1",
    "mobilenet_v2",
    "nasnet_large",
    "nasnet_mobile",
    "pnasnet_large",
    "pnasnet_mobile",
)

# MobileNet checkpoints carry their resolution in the name: mobilenet_v1_0.5_160.
_TRAILING_RESOLUTION = re.compile(r"_(\d{2,3})$")


def model_facts(name: str) -> Any:
    """Preprocessing kind, eval size, crop fraction and class count of the model ``name``.

    Raises:
        zoo.UnknownModelError: ``name`` is not a slim ImageNet model this table knows.
    """
    # When zoo.model_info lands on main this body becomes: return model_info(name)
    return _fallback_facts(name)


def _fallback_facts(name: str) -> ModelFacts:
    for pattern, facts in _FAMILIES:
        if fnmatch.fnmatchcase(name, pattern):
            match = _TRAILING_RESOLUTION.search(name) if name.startswith("mobilenet") else None
            if match:
                return ModelFacts(
                    facts.preprocessing, int(match.group(1)), facts.crop_fraction, facts.num_classes
                )
            return facts
    raise UnknownModelError(
        f"no preprocessing or label facts for model {name!r}: expected a slim ImageNet model "
        f"such as 'inception_v3' or 'vgg_16'.{close_matches(name, _KNOWN_NAMES)} "
        "Pass 'inception' or 'vgg' (with image_size=...) to choose a preprocessing directly."
    )


def image_hw(size: int | tuple[int, ...]) -> tuple[int, int]:
    """``(height, width)`` from an int, ``(h, w)`` or timm-style ``(channels, h, w)``."""
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    dims = tuple(int(s) for s in size)
    if len(dims) in (2, 3):
        return dims[-2], dims[-1]
    raise ValueError(f"image size must be an int, (h, w) or (c, h, w); got {size!r}")
