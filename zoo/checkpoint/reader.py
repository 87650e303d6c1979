"""``zoo.open_checkpoint``: a TF checkpoint as a lazy, read-only ``{name: numpy array}`` mapping."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, CheckpointKeyError, close_matches
from .sstable import FOOTER_SIZE, MAGIC
from .v1 import V1Bundle
from .v2 import V2Bundle

__all__ = ["CheckpointReader", "open_checkpoint"]

_DATA_FILE = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")
_V1_SHARD = re.compile(r"^(?P<prefix>.+)-\d{5}-of-(?P<n>\d{5})$")
_NOT_CHECKPOINTS = re.compile(
    r"(\.meta|\.pbtxt|\.pb|\.graph|\.json|\.txt|\.tempstate\d*|^checkpoint)$"
)


class CheckpointReader(Mapping[str, np.ndarray]):
    """The variables of a TF checkpoint (V1 or V2), read from disk only when asked for.

    * Keys are the variable names, sorted; ``len``, iteration and ``in`` read no tensor data.
    * ``reader[name]`` reads one tensor and returns a new, writable, C-contiguous numpy array
      that the caller owns: nothing is cached or memory-mapped, so iterating over a checkpoint
      holds one tensor at a time (plus what the caller keeps; ``for name, value in
      reader.items()`` keeps the previous value until the next one is read). Every read is
      checked against the stored crc32c (V2: per tensor; V1: per table block); a mismatch
      raises :class:`zoo.ChecksumError`.
    * dtypes are those stored, except ``bfloat16`` (returned as exact float32) and ``string``
      (object arrays of ``bytes``; a scalar is a 0-d object array). :meth:`tf_dtype` names the
      stored TF dtype.
    * Partitioned variables are returned whole, their slices reassembled.
    """

    def __init__(self, backend: V1Bundle | V2Bundle, path: Path) -> None:
        self._backend = backend
        self._names = backend.names()
        self._set = frozenset(self._names)
        self.path = path
        self.format: str = backend.format
        self.files: list[Path] = list(backend.files)
        self._closed = False

    # ------------------------------------------------------------------ Mapping

    def __getitem__(self, name: str) -> np.ndarray:
        self._check(name)
        try:
            return self._backend.read(name)
        except CheckpointError as exc:
            if repr(name) in str(exc):
                raise
            raise type(exc)(f"{exc} (reading variable {name!r})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._set

    # ------------------------------------------------------------------ metadata

    def shape(self, name: str) -> tuple[int, ...]:
        """The stored shape of ``name`` (reads no tensor data)."""
        self._check(name)
        return tuple(self._backend.shape(name))

    def dtype(self, name: str) -> np.dtype:
        """The numpy dtype ``reader[name]`` returns (reads no tensor data)."""
        self._check(name)
        return self._backend.dtype(name).numpy

    def tf_dtype(self, name: str) -> str:
        """The TF dtype stored, by its TF name ('float32', 'bfloat16', 'string', ...)."""
        self._check(name)
        return self._backend.dtype(name).name

    def _check(self, name: str) -> None:
        if self._closed:
            raise CheckpointError(f"{self.path}: the checkpoint reader is closed")
        if name not in self._set:
            raise CheckpointKeyError(
                f"{name!r} is not a variable of the checkpoint {self.path} "
                f"({len(self._names)} variables).{close_matches(str(name), self._names)}"
            )

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close the files (arrays already returned stay valid)."""
        if not self._closed:
            self._backend.close()
            self._closed = True

    def __enter__(self) -> CheckpointReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"<CheckpointReader {self.format} {str(self.path)!r}, {len(self)} variables{state}>"


def open_checkpoint(path: str | os.PathLike) -> CheckpointReader:
    """Open a TF checkpoint without TensorFlow.

    ``path`` may be a V2 prefix (``model.ckpt``), its ``.index`` or one of its ``.data-*``
    files, a V1 file (``vgg_16.ckpt``), the prefix of a sharded V1 save
    (``model.ckpt`` for ``model.ckpt-0000i-of-0000n``), or a directory holding exactly one
    checkpoint.

    Raises:
        zoo.CheckpointError: nothing readable at ``path`` (the message says what was looked
            for), a corrupt or truncated file, a missing shard.
    """
    path = Path(path)
    if path.is_dir():
        found = find_checkpoints(path)
        if len(found) != 1:
            listing = ", ".join(sorted(p.name for p in path.iterdir())[:20]) or "nothing"
            if not found:
                raise CheckpointError(
                    f"no TF checkpoint in directory {path}: expected a V2 checkpoint "
                    "('<prefix>.index' + '<prefix>.data-00000-of-0000n') or a V1 checkpoint "
                    f"file; found {listing}"
                )
            raise CheckpointError(
                f"directory {path} holds {len(found)} checkpoints "
                f"({', '.join(str(p.name) for p in found)}): pass the path of the one to open"
            )
        path = found[0]
    format_, files = _resolve(path)
    backend = V2Bundle(files[0]) if format_ == "v2" else V1Bundle(files)
    return CheckpointReader(backend, files[0] if format_ == "v2" else path)


def _resolve(path: Path) -> tuple[str, list[Path]]:
    """``("v2", [prefix])`` or ``("v1", [file, ...])`` for a path that is not a directory."""
    if path.name.endswith(".index") and path.is_file():
        return "v2", [path.with_name(path.name[: -len(".index")])]
    match = _DATA_FILE.match(path.name)
    if match and path.is_file():
        prefix = path.with_name(match["prefix"])
        if not prefix.with_name(prefix.name + ".index").is_file():
            raise CheckpointError(
                f"{path} is a V2 data file, but its index {prefix.name}.index is missing: "
                "copy every file of the checkpoint"
            )
        return "v2", [prefix]
    if path.with_name(path.name + ".index").is_file():
        return "v2", [path]
    if path.is_file():
        return "v1", [path]
    shards = sorted(path.parent.glob(f"{_glob_escape(path.name)}-?????-of-?????"))
    if shards:
        return "v1", _v1_shards(path, shards)
    raise CheckpointError(
        f"no checkpoint at {path}: looked for a V1 file {path}, a V2 index "
        f"{path.name}.index and V1 shards {path.name}-0000i-of-0000n"
        + ("" if path.parent.is_dir() else f" (directory {path.parent} does not exist)")
    )


def _v1_shards(prefix: Path, shards: list[Path]) -> list[Path]:
    counts = {_V1_SHARD.match(p.name)["n"] for p in shards}
    n = int(counts.pop()) if len(counts) == 1 else -1
    expected = [prefix.with_name(f"{prefix.name}-{i:05d}-of-{n:05d}") for i in range(max(n, 0))]
    if n < 0 or sorted(expected) != shards:
        missing = sorted(set(expected) - set(shards))
        raise CheckpointError(
            f"V1 checkpoint {prefix}: expected the shards {prefix.name}-00000-of-{n:05d} .. "
            f"found {[p.name for p in shards]}"
            + (f"; missing {[p.name for p in missing]}" if missing else "")
        )
    return shards


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def find_checkpoints(directory: Path) -> list[Path]:
    """The checkpoints directly inside ``directory``: V2 prefixes, V1 files and V1 shard sets."""
    found: set[Path] = set()
    for p in sorted(directory.iterdir()):
        if not p.is_file() or p.name.startswith("."):  # incl. our writers' temporary files
            continue
        if p.name.endswith(".index"):
            found.add(p.with_name(p.name[: -len(".index")]))
        elif _DATA_FILE.match(p.name) or _NOT_CHECKPOINTS.search(p.name):
            continue
        elif _has_table_magic(p):
            shard = _V1_SHARD.match(p.name)
            found.add(p.with_name(shard["prefix"]) if shard else p)
    return sorted(found)


def _has_table_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            if size < FOOTER_SIZE:
                return False
            f.seek(size - 8)
            return int.from_bytes(f.read(8), "little") == MAGIC
    except OSError:
        return False
