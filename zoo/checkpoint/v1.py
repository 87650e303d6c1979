"""V1 checkpoints ("TensorSlice" tables): one table file, the format of the 2016 slim releases.

The record under the empty key is a ``SavedTensorSlices`` whose ``meta`` lists every tensor:
name, shape, dtype and the slices saved (one full slice for an ordinary variable, one per
partition for a partitioned one). Each slice is a record under its slice key (see
:mod:`.slices`) holding ``SavedTensorSlices{data: SavedSlice{name, slice, data: TensorProto}}``,
where the values are in the TensorProto's typed repeated field (``float_val``, ``int_val``,
``half_val`` for float16 as raw 16-bit patterns, ...), never in ``tensor_content``
(``SaveTypeTraits`` / ``Fill`` in TF's ``util/saved_tensor_slice_util.h``). A sharded V1 save
writes ``<prefix>-0000i-of-0000n`` files, each a complete table; this reader merges them.

V1 records carry no checksum of their own (unlike V2 entries): integrity rests on the crc32c
of each table block, which is checked for every block a value is read from (the block holding
a large tensor is checksummed from the bytes just read, so it is read once).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from . import dtypes
from .limits import check_declared
from .proto import (
    FIXED32,
    FIXED64,
    LEN,
    VARINT,
    Field,
    ProtoError,
    SavedSliceMeta,
    decode_packed_varints,
    decode_saved_meta,
    scan,
)
from .slices import TensorSlice, check_cover, encode_slice_key
from .source import FileSource
from .sstable import Record, Table

__all__ = ["VALUE_FIELDS", "V1Bundle"]

CHECKPOINT_VERSION = 1  # TF_CHECKPOINT_VERSION: the newest V1 version this reader understands

# The TensorProto field holding each dtype's values (tensor.proto), and how it is encoded:
# "fixed" = packed little-endian floats (complex: real, imag pairs), "varint" = packed varints,
# "bytes" = one length-delimited field per element.
VALUE_FIELDS: dict[str, tuple[int, str]] = {
    "float32": (5, "fixed"),
    "float64": (6, "fixed"),
    "complex64": (9, "fixed"),
    "complex128": (12, "fixed"),
    "int32": (7, "varint"),
    "int16": (7, "varint"),
    "int8": (7, "varint"),
    "uint8": (7, "varint"),
    "uint16": (7, "varint"),
    "int64": (10, "varint"),
    "bool": (11, "varint"),
    "float16": (13, "varint"),
    "bfloat16": (13, "varint"),
    "uint32": (16, "varint"),
    "uint64": (17, "varint"),
    "string": (8, "bytes"),
}
TENSOR_CONTENT = 4


class V1Bundle:
    """Reads the tensors of a V1 checkpoint (one file, or the shards of a sharded save)."""

    format = "v1"

    def __init__(self, files: list[Path]) -> None:
        self.files = list(files)
        self._sources: list[FileSource] = []
        self._meta: dict[str, SavedSliceMeta] = {}
        self._pieces: dict[str, list[tuple[TensorSlice, Table]]] = {}
        try:
            for path in self.files:
                source = FileSource(path)
                self._sources.append(source)
                self._load_meta(Table(source))
        except BaseException:
            self.close()
            raise

    def _load_meta(self, table: Table) -> None:
        record = table.locate(b"")
        parsed = None
        if record is not None:
            raw = record.read()
            table.verify(record, (record.offset, raw))
            try:
                parsed = decode_saved_meta(raw)
            except ProtoError:
                parsed = None
        if parsed is None:
            raise CheckpointError(
                f"{table.path} is a table but not a V1 checkpoint: its first record is not a "
                "SavedTensorSlices table of contents. (A V2 checkpoint is opened by its prefix "
                "or its '.index' file.)"
            )
        tensors, versions = parsed
        if (
            CHECKPOINT_VERSION < versions.min_consumer
            or CHECKPOINT_VERSION in versions.bad_consumers
        ):
            raise CheckpointError(
                f"{table.path}: written in V1 checkpoint version {versions.producer} (readable "
                f"from {versions.min_consumer}); this reader understands version "
                f"{CHECKPOINT_VERSION}"
            )
        for meta in tensors:
            known = self._meta.setdefault(meta.name, meta)
            if (known.shape, known.dtype) != (meta.shape, meta.dtype):
                raise CheckpointError(
                    f"{table.path}: {meta.name!r} is {list(meta.shape)} (dtype enum "
                    f"{meta.dtype}) here but {list(known.shape)} ({known.dtype}) in another shard"
                )
            self._pieces.setdefault(meta.name, []).extend((s, table) for s in meta.slices)

    # ------------------------------------------------------------------ metadata

    def names(self) -> list[str]:
        return sorted(self._meta)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._meta[name].shape

    def dtype(self, name: str) -> dtypes.DType:
        return dtypes.from_enum(self._meta[name].dtype, f"{self.files[0]}: {name!r}")

    # ------------------------------------------------------------------ values

    def read(self, name: str) -> np.ndarray:
        meta, dtype = self._meta[name], self.dtype(name)
        pieces = self._pieces[name]
        what = f"{pieces[0][1].path if pieces else self.files[0]}: {name!r}"
        check_declared(meta.shape, _min_bytes(dtype), sum(s.size for s in self._sources), what)
        if len(pieces) != 1 or not pieces[0][0].is_full():
            check_cover(meta.shape, [slc for slc, _ in pieces], what)
        out = np.empty(meta.shape, dtype.storage or object)
        for slc, table in pieces:
            region = slc.index(meta.shape)
            target = out[region]
            direct = target.flags.c_contiguous and not dtype.is_string
            into = target if direct else None
            values = self._read_slice(table, name, slc, dtype, target.size, into)
            if not direct:
                out[region] = values.reshape(target.shape)
        return dtype.to_numpy(out)

    def _read_slice(
        self,
        table: Table,
        name: str,
        slc: TensorSlice,
        dtype: dtypes.DType,
        count: int,
        into: np.ndarray | None,
    ) -> np.ndarray:
        record = table.locate(encode_slice_key(name, slc))
        if record is None:
            raise CheckpointError(
                f"{table.path}: the table of contents lists slice {slc} of {name!r}, but the "
                "file has no record for it: corrupt or truncated checkpoint"
            )
        try:
            tensor = _tensor_proto(record, name)
            fields = list(scan(record.source, *tensor))
        except ProtoError as exc:
            raise CheckpointError(
                f"{table.path}: the record of {name!r} is malformed ({exc})"
            ) from None
        number, kind = VALUE_FIELDS[dtype.name]
        content = [f for f in fields if f.number == TENSOR_CONTENT and f.wire == LEN]
        values = [f for f in fields if f.number == number]
        if content and not values:
            kind, values = "fixed", content  # raw bytes in the storage layout
        what = f"{table.path}: {name!r} slice {slc}"
        if kind == "fixed":
            out, known = _read_fixed(table, record, values, dtype, count, into, what), None
        elif kind == "varint":
            out, known = _read_varints(record, values, dtype, count, what)
        else:
            out, known = _read_bytes(record, values, count, what), None
        table.verify(record, known)
        if into is not None and out is not into:
            into.reshape(-1)[:] = out
        return out

    def close(self) -> None:
        for source in self._sources:
            source.close()


def _min_bytes(dtype: dtypes.DType) -> int:
    """The fewest file bytes one element of ``dtype`` takes in a V1 record."""
    kind = VALUE_FIELDS[dtype.name][1]
    if kind == "bytes":
        return 2  # a field tag and a length
    return 1 if kind == "varint" else dtype.storage.itemsize


def _tensor_proto(record: Record, name: str) -> tuple[int, int]:
    """``(start, end)`` of the TensorProto inside a ``SavedTensorSlices{data: SavedSlice}``."""
    end = record.offset + record.length
    data = [f for f in scan(record.source, record.offset, end) if f.number == 2 and f.wire == LEN]
    if not data:
        raise ProtoError("the record holds no SavedSlice")
    saved = data[-1]
    tensor = None
    for f in scan(record.source, saved.offset, saved.offset + saved.length):
        if f.number == 1 and f.wire == LEN:
            stored = record.source.read(f.offset, f.length).decode("utf-8", "surrogateescape")
            if stored != name:
                raise ProtoError(f"the record under {name!r}'s key holds tensor {stored!r}")
        elif f.number == 3 and f.wire == LEN:
            tensor = (f.offset, f.offset + f.length)
    return tensor if tensor is not None else (saved.offset, saved.offset)  # no data: empty


def _read_fixed(
    table: Table,
    record: Record,
    fields: list[Field],
    dtype: dtypes.DType,
    count: int,
    into: np.ndarray | None,
    what: str,
) -> np.ndarray:
    out = into if into is not None else np.empty(count, dtype.storage)
    flat = out.reshape(-1).view(np.uint8)
    if len(fields) == 1 and fields[0].wire == LEN and fields[0].length == len(flat):
        # the usual case: one packed field, read straight into the array, block checked on the way
        table.read_checked(record, fields[0].offset, flat, what)
        return out
    pos = 0
    for f in fields:
        size = f.length if f.wire == LEN else {FIXED32: 4, FIXED64: 8}.get(f.wire, 0)
        if size == 0 or pos + size > len(flat):
            raise CheckpointError(
                f"{what}: holds more than the {count} values its shape has (or a bad encoding)"
            )
        if f.wire == LEN:
            record.source.readinto(f.offset, flat[pos : pos + size], what)
        else:
            flat[pos : pos + size] = np.frombuffer(f.value.to_bytes(size, "little"), np.uint8)
        pos += size
    if pos != len(flat):
        raise CheckpointError(f"{what}: holds {pos} bytes of values, its shape needs {len(flat)}")
    return out


def _read_varints(
    record: Record, fields: list[Field], dtype: dtypes.DType, count: int, what: str
) -> tuple[np.ndarray, tuple[int, np.ndarray] | None]:
    chunks, known = [], None
    for f in fields:
        if f.wire == LEN:
            raw = np.empty(f.length, np.uint8)
            record.source.readinto(f.offset, raw, what)
            try:
                values, _ = decode_packed_varints(raw)
            except ProtoError as exc:
                raise CheckpointError(f"{what}: bad packed values ({exc})") from None
            chunks.append(values)
            known = (f.offset, raw) if len(fields) == 1 else None
        elif f.wire == VARINT:
            chunks.append(np.array([f.value], np.uint64))
        else:
            raise CheckpointError(f"{what}: values have wire type {f.wire}, expected varints")
    values = np.concatenate(chunks) if chunks else np.zeros(0, np.uint64)
    if len(values) != count:
        raise CheckpointError(f"{what}: holds {len(values)} values, its shape needs {count}")
    if dtype.name in ("float16", "bfloat16"):  # 16-bit patterns, stored widened to int32
        out = values.astype(np.uint16).view(dtype.storage)
    elif dtype.name == "bool":
        out = values != 0
    elif dtype.storage.kind == "i":  # negative numbers are sign-extended 64-bit varints
        out = values.view(np.int64).astype(dtype.storage)
    else:
        out = values.astype(dtype.storage)
    return out, known


def _read_bytes(record: Record, fields: list[Field], count: int, what: str) -> np.ndarray:
    out = np.empty(count, object)
    if len(fields) != count or any(f.wire != LEN for f in fields):
        raise CheckpointError(f"{what}: holds {len(fields)} strings, its shape needs {count}")
    for i, f in enumerate(fields):
        out[i] = record.source.read(f.offset, f.length, what)
    return out
