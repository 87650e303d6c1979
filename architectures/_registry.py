"""Name → constructor registry of the networks (``@register_model``), as in timm."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable

from torch import nn

__all__ = [
    "create_model",
    "get_constructor",
    "list_architectures",
    "natural_key",
    "register_model",
]

_CONSTRUCTORS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a constructor under its function name (the slim network name)."""
    name = fn.__name__
    if name in _CONSTRUCTORS:
        raise ValueError(f"model {name!r} is registered twice")
    _CONSTRUCTORS[name] = fn
    return fn


def natural_key(name: str) -> tuple[tuple[int, float | str], ...]:
    """Sort key that orders the numbers inside names by value: ``resnet_v1_50`` before
    ``resnet_v1_101``, ``mobilenet_v1_0.25_128`` before ``mobilenet_v1_0.5_128``."""
    parts = re.split(r"(\d+(?:\.\d+)?)", name)
    # (0, text) / (1, number) pairs never compare a str with a float
    return tuple((1, float(p)) if i % 2 else (0, p) for i, p in enumerate(parts) if p)


def list_architectures(pattern: str = "*") -> list[str]:
    """Registered network names matching a glob ``pattern``, in natural order (``_50`` before
    ``_101``)."""
    return sorted((n for n in _CONSTRUCTORS if fnmatch.fnmatchcase(n, pattern)), key=natural_key)


def get_constructor(name: str) -> Callable[..., nn.Module]:
    """The constructor registered as ``name``; ``UnknownModelError`` with close matches if none."""
    try:
        return _CONSTRUCTORS[name]
    except KeyError:
        from zoo.errors import UnknownModelError, close_matches

        raise UnknownModelError(
            f"unknown model {name!r}.{close_matches(name, _CONSTRUCTORS)} "
            f"zoo.list_models() lists all {len(_CONSTRUCTORS)} models."
        ) from None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build the network ``name`` with random weights."""
    return get_constructor(name)(**kwargs)
