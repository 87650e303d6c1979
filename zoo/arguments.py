"""Checks of :func:`zoo.load`'s arguments, before anything is built, read or downloaded.

A wrong type or an absurd value otherwise surfaces deep inside (``num_classes=10**9`` tries to
allocate terabytes, ``zoo.load(None)`` fails in ``difflib``): here it is one message saying what
was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["MAX_CLASSES", "check_load_arguments"]

MAX_CLASSES = 100_000  # ImageNet-21k has 21,843; more would be gigabytes of classifier


def check_load_arguments(
    name: Any, *, num_classes: Any, checkpoint: Any, weights: Any, pretrained: Any
) -> None:
    """Raise ``TypeError`` (wrong type) or :class:`zoo.ConfigError` (a ``ValueError``: wrong
    value) for an argument of :func:`zoo.load` that cannot be meant."""
    if not isinstance(name, str):
        raise TypeError(
            f"zoo.load: name must be a model name (str), e.g. 'resnet_v2_50' (see "
            f"zoo.list_models()), got {_shown(name)}"
        )
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(
                f"zoo.load: num_classes must be an int (or None for the checkpoint's), got "
                f"{_shown(num_classes)}"
            )
        if not 0 <= num_classes <= MAX_CLASSES:
            raise ConfigError(
                f"zoo.load: num_classes must be between 0 (no classifier: a feature extractor) "
                f"and {MAX_CLASSES:,}, got {num_classes:,}"
            )
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike, Mapping)):
        raise TypeError(
            "zoo.load: checkpoint must be a path (str or os.PathLike) or a {tf_name: array} "
            f"mapping, got {_shown(checkpoint)}"
        )
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"zoo.load: weights must be a path (str or os.PathLike), got {_shown(weights)}"
        )
    if not isinstance(pretrained, bool):
        raise TypeError(f"zoo.load: pretrained must be True or False, got {_shown(pretrained)}")


def _shown(value: Any) -> str:
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} ({type(value).__name__})"
