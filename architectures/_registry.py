"""Name → constructor registry of the networks (``@register_model``), as in timm."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

__all__ = ["create_model", "get_constructor", "list_architectures", "register_model"]

_CONSTRUCTORS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a constructor under its function name (the slim network name)."""
    name = fn.__name__
    if name in _CONSTRUCTORS:
        raise ValueError(f"model {name!r} is registered twice")
    _CONSTRUCTORS[name] = fn
    return fn


def list_architectures(pattern: str = "*") -> list[str]:
    """Registered network names matching a glob ``pattern``, sorted."""
    return sorted(n for n in _CONSTRUCTORS if fnmatch.fnmatchcase(n, pattern))


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
