"""One exception hierarchy for everything slimzoo raises on purpose.

Every message says what was expected, what was found and what to do next.
Catch :class:`ZooError` to handle all of them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ArchiveError",
    "CacheError",
    "CheckpointError",
    "CheckpointKeyError",
    "ChecksumError",
    "ConfigError",
    "DownloadError",
    "MappingError",
    "NoWeightsError",
    "OfflineError",
    "PartsError",
    "RegistryError",
    "UnknownModelError",
    "ZooError",
    "close_matches",
]


class ZooError(Exception):
    """Base class of every error slimzoo raises deliberately."""


class UnknownModelError(ZooError, ValueError):
    """A model name that is not registered (a ``ValueError`` too, for plain callers)."""


class CheckpointError(ZooError):
    """A TF checkpoint that cannot be read: wrong magic, truncated, missing shard, unknown dtype."""


class ChecksumError(CheckpointError):
    """Stored and computed checksums differ (crc32c of a tensor, sha256 of a download)."""


class CheckpointKeyError(CheckpointError, KeyError):
    """A variable name the checkpoint does not hold (also a ``KeyError``: the Mapping contract)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class MappingError(ZooError):
    """A checkpoint that does not fit a network: unused, missing or mis-shaped tensors."""


class RegistryError(ZooError):
    """An invalid ``weights_registry.json`` (or ``ZOO_REGISTRY`` file)."""


class NoWeightsError(ZooError, ValueError):
    """``pretrained=True`` for a network whose weights were never published (``resnet_v1_200``)."""


class DownloadError(ZooError):
    """A download that failed, or whose size or hash did not match the registry."""


class OfflineError(DownloadError):
    """Offline mode is on (``ZOO_OFFLINE=1``) and the weights are not in the cache."""


class ArchiveError(ZooError):
    """A tarball that is corrupt, truncated or holds unsafe members (``..``, links, devices)."""


class CacheError(ZooError):
    """The weights cache cannot be used: a lock not obtained in time, an unwritable directory."""


class PartsError(ZooError):
    """A rank's part of a prediction under ``torchrun`` is missing, from another run, or does
    not fit the others (a rank that saw other files, a part folder rank 0 cannot read)."""


class ConfigError(ZooError, ValueError):
    """An invalid setting (``ZOO_*`` environment variable or keyword argument)."""


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """A ``did you mean ...?`` suffix for an error message, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " Did you mean: " + ", ".join(repr(m) for m in matches) + "?"
