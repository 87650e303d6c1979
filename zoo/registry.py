"""The weights registry in use: every published TF-slim checkpoint, loaded and cached.

``weights_registry.json`` is the one source of truth for where a release is downloaded from, how it
is verified (size, sha256) and extracted (which tarball members), and how its network is fed
(input size, crop, mean/std, label offset). The shipped file is looked up next to this package
(``zoo/weights_registry.json``, as installed from a wheel) and then at the repository root (a
source checkout). ``ZOO_REGISTRY=/path/registry.json`` replaces it, e.g. with a company's mirror
URLs and hashes or its own fine-tuned releases.

Everything is validated when it is loaded: the shipped registry when ``zoo`` is imported, a
``ZOO_REGISTRY`` file at its first use (so a bad file cannot break ``import zoo``). A problem raises
:class:`~zoo.errors.RegistryError` naming the file, the entry and the field.

The entries are the frozen dataclasses of :mod:`zoo.registry_schema` (re-exported here), built by
:mod:`zoo.registry_validation`; this module finds, reads and caches the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import RegistryError
from .registry_schema import (
    PREPROCESSING_SCHEMES,
    SCHEMA_VERSION,
    Accuracy,
    ModelInfo,
    Paper,
    Preprocessing,
    Registry,
    Release,
)
from .registry_validation import DuplicateKey, no_duplicate_keys, parse_registry

__all__ = [
    "PREPROCESSING_SCHEMES",
    "SCHEMA_VERSION",
    "Accuracy",
    "ModelInfo",
    "Paper",
    "Preprocessing",
    "Registry",
    "Release",
    "get_registry",
    "list_pretrained",
    "load_registry",
    "model_info",
    "shipped_registry_path",
]

REGISTRY_FILE = "weights_registry.json"


# --------------------------------------------------------------------------- loading


def shipped_registry_path() -> Path:
    """The shipped registry: next to the package (wheel), else at the repository root."""
    here = Path(__file__).resolve().parent
    for candidate in (here / REGISTRY_FILE, here.parent / REGISTRY_FILE):
        if candidate.is_file():
            return candidate
    raise RegistryError(
        f"{REGISTRY_FILE} is missing: looked in {here} and {here.parent}. Reinstall slimzoo (the "
        "wheel ships it as zoo/weights_registry.json) or set ZOO_REGISTRY to a registry file."
    )


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and validate a registry file (no caching; see :func:`get_registry`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"cannot read the weights registry {path}: {exc}") from exc
    try:
        document = json.loads(text, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} is not valid JSON: {exc}") from exc
    except DuplicateKey as exc:
        raise RegistryError(f"{path}: key {exc.args[0]!r} appears twice in one object") from None
    return parse_registry(document, str(path))


_cache: dict[tuple[str, int, int], Registry] = {}


def get_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """The registry in use: ``path``, else ``ZOO_REGISTRY``, else the shipped one.

    Cached per file path, modification time and size, so an edited file is re-read.
    """
    if path is None:
        path = os.environ.get("ZOO_REGISTRY") or shipped_registry_path()
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError as exc:
        raise RegistryError(
            f"weights registry {path} not found ({exc.strerror}); check ZOO_REGISTRY"
        ) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    registry = _cache.get(key)
    if registry is None:
        registry = load_registry(path)
        _cache.clear()  # one file in use at a time; a replaced file drops the old one
        _cache[key] = registry
    return registry


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``: release URL/size/sha256, num_classes and label offset,
    input size, crop, interpolation, mean/std, accuracy, paper and licence.

    >>> zoo.model_info("resnet_v2_50").preprocessing.input_size   # doctest: +SKIP
    299
    """
    return get_registry().get(name)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Model names with published weights (``pretrained=True`` works) matching ``pattern``."""
    return get_registry().names(pattern, with_weights=True)


# The shipped registry is validated when zoo is imported: a broken file fails loudly and early.
SHIPPED = get_registry(shipped_registry_path())
