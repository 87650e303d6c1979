"""The on-disk weights cache: layout, entry checks, atomic writes and inter-process locks.

Layout of ``<cache>`` (``ZOO_CACHE_DIR``)::

    weights/<key>.safetensors   converted torch weights (key = model name, ``.no_ema`` suffix
    weights/<key>.json          for use_ema=False); the JSON sidecar is written last: an entry
                                is complete only when both exist and agree
    downloads/<tarball>.part    an interrupted download (resumed by the next call) and its
    downloads/<tarball>.part.json   state; downloads/<tarball> = a verified tarball (deleted
                                after conversion unless ZOO_KEEP_TARBALLS=1)
    locks/<key>.lock            one lock per entry and one per download (``download.<tarball>``)
    tmp/<key>.<pid>.<random>/   extraction directory of a conversion in progress

Entries of different releases of one model coexist: when ``weights/<key>.json`` was made from
another tarball (another sha256: a process with another ``ZOO_REGISTRY``, or a release updated
in the registry) than the one the registry in use names, the entry of this release lives at
``weights/<key>@<first 16 hex digits of its tarball sha256>.*`` (:meth:`Cache.key_for`). So
processes with different registries share one cache and neither deletes the other's entry.

Everything is written under a temporary name in the same directory and renamed into place, so a
process killed at any moment leaves nothing a later load would take for complete; temporaries of
an entry are removed by the next process that holds its lock.

Locks are ``filelock.FileLock`` (``flock``): the OS releases them when the holder dies, even by
SIGKILL, so a crashed process never leaves a lock that blocks others. A waiting process logs once
that it is waiting and gives up after ``ZOO_LOCK_TIMEOUT`` seconds with :class:`CacheError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from .errors import CacheError
from .safetensors_stream import read_header

__all__ = ["SIDECAR_FORMAT", "Cache", "EntryState"]

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "slimzoo-weights"
SIDECAR_VERSION = 1
_LOG_WAIT_AFTER = 2.0  # seconds of waiting for a lock before saying so


@dataclass(frozen=True)
class EntryState:
    """Whether a cache entry can be used, and why not."""

    status: str  # "complete", "missing" or "invalid"
    problem: str | None = None
    sidecar: Mapping[str, Any] | None = None  # parsed sidecar when it could be read

    @property
    def complete(self) -> bool:
        return self.status == "complete"


class Cache:
    """Paths and operations of one cache directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.weights_dir = self.root / "weights"
        self.downloads_dir = self.root / "downloads"
        self.locks_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"

    # ---------------------------------------------------------------- paths

    def weights_path(self, key: str) -> Path:
        return self.weights_dir / f"{key}.safetensors"

    def sidecar_path(self, key: str) -> Path:
        return self.weights_dir / f"{key}.json"

    def tarball_path(self, file_name: str) -> Path:
        return self.downloads_dir / file_name

    def partial_path(self, file_name: str) -> Path:
        return self.downloads_dir / f"{file_name}.part"

    def temp_file(self, key: str, suffix: str) -> Path:
        """A unique temporary name beside the entry's final files (same file system)."""
        return self.weights_dir / f".tmp.{key}.{os.getpid()}.{secrets.token_hex(4)}{suffix}"

    def temp_dir(self, key: str) -> Path:
        path = self.tmp_dir / f"{key}.{os.getpid()}.{secrets.token_hex(4)}"
        path.mkdir(parents=True)
        return path

    def ensure_dirs(self) -> None:
        try:
            for d in (self.weights_dir, self.downloads_dir, self.locks_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the weights cache in {self.root} ({exc}); set ZOO_CACHE_DIR "
                "(or cache_dir=...) to a writable directory"
            ) from None

    def key_for(self, key: str, tarball_sha256: str | None) -> str:
        """The key of ``key``'s entry made from the tarball ``tarball_sha256``: ``key`` itself
        unless that entry was made from another tarball, then ``key@<sha256[:16]>``."""
        if tarball_sha256 is None:
            return key  # no hash to tell releases apart: the one entry (pinned on first use)
        alternate = f"{key}@{tarball_sha256[:16]}"
        if self.sidecar_path(alternate).exists():
            return alternate
        made_from = _sidecar_field(self.sidecar_path(key), "tarball_sha256")
        if made_from is None or made_from == tarball_sha256:
            return key
        return alternate

    # ---------------------------------------------------------------- locks

    @contextlib.contextmanager
    def lock(self, name: str, timeout: float, doing: str) -> Iterator[None]:
        """Hold the inter-process lock ``locks/<name>.lock``; ``doing`` says what the holder does
        (for the messages)."""
        path = self.locks_dir / f"{name}.lock"
        # mode 0o666 (less the umask): a cache shared by several users stays lockable by all
        lock = filelock.FileLock(str(path), mode=0o666)
        deadline = time.monotonic() + timeout
        said = False
        while True:
            remaining = deadline - time.monotonic()
            try:
                lock.acquire(timeout=max(0.0, min(remaining, _LOG_WAIT_AFTER)))
                break
            except filelock.Timeout:
                if remaining <= _LOG_WAIT_AFTER:
                    raise CacheError(
                        f"timed out after {timeout:.0f} s waiting for {path}: another process is "
                        f"{doing}. Wait for it, or raise ZOO_LOCK_TIMEOUT. (Locks are released "
                        "when their process dies; only on a file system without working locks "
                        "can one be stale: then delete the file if no process is running.)"
                    ) from None
                if not said:
                    log.warning("waiting for another process that is %s (%s)", doing, path)
                    said = True
        try:
            yield
        finally:
            lock.release()

    # ---------------------------------------------------------------- entries

    def inspect(
        self, key: str, *, model: str, tarball_sha256: str | None, deep: bool = False
    ) -> EntryState:
        """Check the entry ``key`` cheaply (sidecar, header, size), or fully with ``deep``
        (CRC-32C of the whole file against the sidecar's: about 1 s for 4 GB)."""
        from .convert import MAPPING_VERSION

        weights, sidecar_path = self.weights_path(key), self.sidecar_path(key)
        if not sidecar_path.exists():
            if weights.exists():
                return EntryState("invalid", "the sidecar is missing (an interrupted write?)")
            return EntryState("missing")
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
            if not isinstance(sidecar, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return EntryState("invalid", f"the sidecar {sidecar_path.name} is unreadable ({exc})")
        problem = _sidecar_problem(sidecar, model, tarball_sha256, MAPPING_VERSION)
        if problem is None:
            problem = _weights_problem(weights, sidecar, deep)
        return EntryState("invalid" if problem else "complete", problem, sidecar)

    def remove_entry(self, key: str) -> None:
        """Delete an entry: sidecar first, so no moment has a sidecar beside other weights."""
        self.sidecar_path(key).unlink(missing_ok=True)
        self.weights_path(key).unlink(missing_ok=True)

    def remove_temporaries(self, key: str) -> None:
        """Leftovers of killed processes that wrote ``key`` (call with the entry's lock held).

        Only names of exactly this key: ``vgg_16``'s cleanup must not touch ``vgg_16.no_ema``'s.
        """
        ours = re.compile(rf"{re.escape(key)}\.\d+\.[0-9a-f]{{8}}(\..*)?")
        for path in self.weights_dir.glob(".tmp.*"):
            if ours.fullmatch(path.name[len(".tmp.") :]):
                path.unlink(missing_ok=True)
        for path in self.tmp_dir.glob("*"):
            if ours.fullmatch(path.name):
                shutil.rmtree(path, ignore_errors=True)

    def commit(self, key: str, weights_tmp: Path, sidecar: Mapping[str, Any]) -> None:
        """Move converted weights into place, then write the sidecar that makes them valid.

        An entry being replaced stays whole until this moment (its replacement is written
        and synced first); then its sidecar goes, so no moment pairs it with the new weights.
        """
        sidecar_tmp = self.temp_file(key, ".json")
        with open(sidecar_tmp, "w", encoding="utf-8") as f:
            json.dump(dict(sidecar), f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        self.sidecar_path(key).unlink(missing_ok=True)
        os.replace(weights_tmp, self.weights_path(key))
        os.replace(sidecar_tmp, self.sidecar_path(key))
        _fsync_dir(self.weights_dir)


def _sidecar_field(path: Path, field: str) -> Any:
    """One field of a sidecar, or None if it cannot be read."""
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return sidecar.get(field) if isinstance(sidecar, dict) else None


def _sidecar_problem(
    sidecar: Mapping[str, Any], model: str, tarball_sha256: str | None, mapping_version: int
) -> str | None:
    if sidecar.get("format") != SIDECAR_FORMAT or sidecar.get("format_version") != SIDECAR_VERSION:
        return "the sidecar has an unknown format"
    if sidecar.get("model") != model:
        return f"the sidecar is for {sidecar.get('model')!r}, not {model!r}"
    if sidecar.get("mapping_version") != mapping_version:
        return (
            f"converted with mapping version {sidecar.get('mapping_version')}, this slimzoo "
            f"uses {mapping_version}"
        )
    if tarball_sha256 is not None and sidecar.get("tarball_sha256") != tarball_sha256:
        return (
            f"converted from a tarball with sha256 {sidecar.get('tarball_sha256')}, the "
            f"registry now says {tarball_sha256}"
        )
    if not isinstance(sidecar.get("safetensors_size"), int):
        return "the sidecar lacks the weights' size"
    return None


def _weights_problem(weights: Path, sidecar: Mapping[str, Any], deep: bool) -> str | None:
    try:
        size = weights.stat().st_size
    except OSError:
        return f"{weights.name} is missing"
    if size != sidecar["safetensors_size"]:
        return f"{weights.name} has {size} bytes, the sidecar says {sidecar['safetensors_size']}"
    try:
        read_header(weights)
    except (OSError, ValueError) as exc:
        return f"{weights.name} has an invalid safetensors header ({exc})"
    if deep:
        found = _crc32c_of_file(weights)
        if found != sidecar.get("safetensors_crc32c"):
            return (
                f"{weights.name} has CRC-32C {found}, the sidecar recorded "
                f"{sidecar.get('safetensors_crc32c')} (the file was modified or corrupted)"
            )
    return None


def _crc32c_of_file(path: Path) -> str:
    from .checkpoint.crc import crc32c

    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = crc32c(chunk, crc)
    return f"{crc:08x}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
