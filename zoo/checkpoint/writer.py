"""Write TF checkpoints without TensorFlow: :func:`write_v2` (bundle) and :func:`write_v1`.

Both lay their files out exactly as TensorFlow's own savers do (TF's ``tensor_bundle.cc`` and
``tensor_slice_writer.cc``): variables in name order, the same table block size and restart
interval, the same protobuf encoding; a V2 checkpoint written here is byte-identical to the
one ``tf.compat.v1.train.Saver`` writes for the same variables (the tests check this).

Writes are atomic: every file is written under a temporary name in the target directory and
renamed into place at the end (data files before the index, whose presence marks a complete V2
checkpoint); on any error the temporary files are removed and nothing is left behind. Existing
checkpoints are only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import dtypes
from .crc import crc32c, mask
from .proto import (
    BundleEntry,
    BundleHeader,
    SavedSliceMeta,
    VersionDef,
    encode_packed_varints,
    encode_saved_meta,
    encode_slice,
    len_field,
    len_field_header,
)
from .slices import TensorSlice, encode_slice_key
from .sstable import TableWriter
from .v1 import VALUE_FIELDS
from .v2 import data_path, index_path

__all__ = ["write_v1", "write_v2"]

BUNDLE_VERSION = VersionDef(producer=1)  # kTensorBundleVersion, min consumer 0
V1_VERSION = VersionDef(producer=1)  # TF_CHECKPOINT_VERSION, min consumer 0
_V1_MAX_RECORD = (1 << 31) - 1  # protobuf's message size limit: TF cannot parse larger records


def write_v2(
    prefix: str | os.PathLike, tensors: Mapping[str, np.ndarray], *, overwrite: bool = False
) -> Path:
    """Write ``tensors`` as a V2 checkpoint ``<prefix>.index`` + ``<prefix>.data-00000-of-00001``.

    Values are taken with ``numpy.asarray``; every dtype :func:`zoo.open_checkpoint` reads is
    supported (float16/32/64, bfloat16 given as an ``ml_dtypes.bfloat16`` array, signed and
    unsigned ints, bool, complex, and strings as bytes/str object or string arrays).
    Returns the prefix (what ``open_checkpoint`` and ``tf.train.load_checkpoint`` take).

    Raises:
        FileExistsError: a checkpoint with this prefix exists and ``overwrite`` is False.
        TypeError / ValueError: a dtype or name that cannot be stored.
    """
    prefix = Path(prefix)
    items = _prepare(tensors)
    index, data = index_path(prefix), data_path(prefix, 0, 1)
    stale = sorted(prefix.parent.glob(f"{_glob_escape(prefix.name)}.data-?????-of-?????"))
    _refuse_overwrite([p for p in [index, *stale] if p.exists()], overwrite)
    with _atomic([data, index]) as (data_file, index_file):
        entries = []
        offset = 0
        for name, dtype, value in items:
            if dtype.is_string:
                parts, crc = _string_parts(value)
            else:
                parts, crc = [value], crc32c(value.reshape(-1).view(np.uint8))
            size = 0
            for part in parts:
                data_file.write(_raw(part))
                size += _nbytes(part)
            entry = BundleEntry(dtype.enum, value.shape, 0, offset, size, mask(crc))
            entries.append((name.encode("utf-8", "surrogateescape"), entry))
            offset += size
        table = TableWriter(index_file)
        table.add(b"", BundleHeader(1, 0, BUNDLE_VERSION).encode())
        for key, entry in sorted(entries):
            table.add(key, entry.encode())
        table.finish()
    for old in stale:
        if old != data:
            old.unlink(missing_ok=True)  # shards of the checkpoint just replaced
    return prefix


def write_v1(
    path: str | os.PathLike, tensors: Mapping[str, np.ndarray], *, overwrite: bool = False
) -> Path:
    """Write ``tensors`` as a single-file V1 (TensorSlice) checkpoint, as slim's 2016 releases.

    Same dtypes as :func:`write_v2`. TensorFlow's own V1 code reads float32/64, int8/16/32/64,
    uint8, bool, complex, float16 (``Saver.restore`` only) and strings; uint16/32/64 and
    bfloat16 are written in their standard ``TensorProto`` fields, which this package reads but
    TensorFlow's V1 reader does not. A tensor over 2 GiB does not fit a V1 record (protobuf's
    limit): use :func:`write_v2`. Returns ``path``.
    """
    path = Path(path)
    items = _prepare(tensors)
    _refuse_overwrite([path] if path.exists() else [], overwrite)
    with _atomic([path]) as (file,):
        table = TableWriter(file)
        metas = []
        records = []
        for name, dtype, value in items:
            slc = TensorSlice.full(value.ndim)
            metas.append(SavedSliceMeta(name, value.shape, dtype.enum, (slc,)))
            records.append((encode_slice_key(name, slc), _v1_record(name, slc, dtype, value)))
        table.add(b"", encode_saved_meta(metas, V1_VERSION))
        for key, parts in sorted(records, key=lambda r: r[0]):
            table.add(key, *parts)
        table.finish()
    return path


# --------------------------------------------------------------------------- values


def _prepare(tensors: Mapping[str, np.ndarray]) -> list[tuple[str, dtypes.DType, np.ndarray]]:
    """``(name, dtype, stored value)`` in name order; numbers become little-endian C-order
    arrays of the storage dtype, strings object arrays of bytes."""
    out = []
    for name in sorted(tensors, key=lambda n: str(n).encode("utf-8", "surrogateescape")):
        if not isinstance(name, str) or not name or name.startswith("\x00"):
            raise ValueError(f"variable names must be non-empty strings, got {name!r}")
        value = np.asarray(tensors[name])
        dtype = dtypes.from_numpy(value.dtype)
        if dtype.is_string:
            stored = np.empty(value.shape, object)
            flat = stored.reshape(-1)
            for i, item in enumerate(value.reshape(-1).tolist()):
                if isinstance(item, str):
                    item = item.encode("utf-8")
                if not isinstance(item, bytes):
                    raise TypeError(f"{name}: string tensors hold bytes or str, found {item!r}")
                flat[i] = item
        elif dtype.name == "bfloat16":
            stored = np.asarray(value, order="C").view(np.uint16).astype("<u2", copy=False)
        else:
            stored = np.asarray(value, dtype=dtype.storage, order="C")
        out.append((name, dtype, stored))
    return out


def _string_parts(value: np.ndarray) -> tuple[list[bytes], int]:
    """A V2 string tensor: varint lengths, masked crc32c of the lengths, the bytes."""
    strings = value.reshape(-1).tolist()
    lengths = np.array([len(s) for s in strings], np.uint64)
    if lengths.max(initial=0) > 0xFFFFFFFF:  # pragma: no cover - strings of 4 GiB
        crc = 0
        for n in lengths.tolist():
            crc = crc32c(np.array(n, "<u4" if n <= 0xFFFFFFFF else "<u8"), crc)
    else:
        crc = crc32c(lengths.astype("<u4"))
    length_crc = mask(crc).to_bytes(4, "little")
    crc = crc32c(length_crc, crc)
    text = b"".join(strings)
    parts = [encode_packed_varints(lengths).tobytes(), length_crc, text]
    return parts, crc32c(text, crc)


def _v1_record(
    name: str, slc: TensorSlice, dtype: dtypes.DType, value: np.ndarray
) -> list[bytes | np.ndarray]:
    """``SavedTensorSlices{data: SavedSlice{name, slice, data: TensorProto}}`` as buffers,
    the values as TF's ``Fill`` puts them in the dtype's typed repeated field."""
    number, kind = VALUE_FIELDS[dtype.name]
    if kind == "bytes":
        payload = b"".join(len_field(number, s) for s in value.reshape(-1).tolist())
        tensor: list[bytes | np.ndarray] = [payload]
    else:
        if kind == "fixed":
            packed = value.reshape(-1).view(np.uint8)
        elif dtype.name in ("float16", "bfloat16"):
            packed = encode_packed_varints(value.reshape(-1).view(np.uint16))
        else:
            packed = encode_packed_varints(value.reshape(-1).astype(_VARINT_SOURCE[dtype.name]))
        tensor = [len_field_header(number, packed.nbytes), packed] if packed.nbytes else []
    tensor_size = sum(_nbytes(p) for p in tensor)
    head = len_field(1, name.encode("utf-8", "surrogateescape")) + len_field(2, encode_slice(slc))
    saved_size = len(head) + len(len_field_header(3, tensor_size)) + tensor_size
    record = [len_field_header(2, saved_size) + head + len_field_header(3, tensor_size), *tensor]
    if sum(_nbytes(p) for p in record) > _V1_MAX_RECORD:
        raise ValueError(
            f"{name}: {value.nbytes} bytes do not fit a V1 checkpoint record (protobuf's 2 GiB "
            "limit); write a V2 checkpoint instead (write_v2)"
        )
    return record


# integers as protobuf int32/int64 fields: sign-extended to 64 bits before varint encoding
_VARINT_SOURCE = {
    "int8": np.int64,
    "int16": np.int64,
    "int32": np.int64,
    "int64": np.int64,
    "uint8": np.uint64,
    "uint16": np.uint64,
    "uint32": np.uint64,
    "uint64": np.uint64,
    "bool": np.uint64,
}


def _nbytes(part: bytes | np.ndarray) -> int:
    return part.nbytes if isinstance(part, np.ndarray) else len(part)


def _raw(part: bytes | np.ndarray) -> bytes | np.ndarray:
    return part.reshape(-1).view(np.uint8) if isinstance(part, np.ndarray) else part


# --------------------------------------------------------------------------- files


def _refuse_overwrite(existing: list[Path], overwrite: bool) -> None:
    if existing and not overwrite:
        raise FileExistsError(
            f"a checkpoint exists at {existing[0]}"
            + (f" (and {len(existing) - 1} more files)" if len(existing) > 1 else "")
            + ": pass overwrite=True to replace it"
        )


@contextmanager
def _atomic(paths: list[Path]) -> Iterator[list[BinaryIO]]:
    """Files written under temporary names next to ``paths``, renamed in order on success."""
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(4)
    temps = [p.with_name(f".{p.name}.tmp-{token}") for p in paths]
    files: list[BinaryIO] = []
    renamed: list[Path] = []
    try:
        for temp in temps:
            files.append(open(temp, "xb"))  # closed below, also on errors
        yield files
        for f in files:
            f.close()
        for temp, path in zip(temps, paths):
            os.replace(temp, path)
            renamed.append(path)
    except BaseException:
        for f in files:
            f.close()
        for path in [*temps, *renamed]:  # a rename that failed half-way: undo the others too
            path.unlink(missing_ok=True)
        raise


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
