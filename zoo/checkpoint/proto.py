"""The few protobuf messages of TF checkpoints, with a small wire-format codec (no protobuf).

Wire format: each field is a varint tag ``number << 3 | wire_type`` followed by a varint (type 0),
8 bytes (1), a varint length and that many bytes (2), or 4 bytes (5). Unknown fields are skipped,
as protobuf readers do. Encoders write fields in field-number order and leave out proto3
defaults (0, empty), exactly like TF's C++ serializer, so our files match TF's byte for byte.

Messages (field numbers from TF's ``.proto`` files):

* ``TensorShapeProto`` (``framework/tensor_shape.proto``): dim=2 {size=1, name=2}, unknown_rank=3
* ``TensorSliceProto`` (``framework/tensor_slice.proto``): extent=1 {start=1, length=2}; an extent
  without ``length`` takes the whole dimension
* ``VersionDef`` (``framework/versions.proto``): producer=1, min_consumer=2, bad_consumers=3
* ``BundleHeaderProto`` / ``BundleEntryProto`` (``protobuf/tensor_bundle.proto``): the V2 index
* ``SavedTensorSlices`` {meta=1, data=2}, ``SavedTensorSliceMeta`` {tensor=1, versions=2},
  ``SavedSliceMeta`` {name=1, shape=2, type=3, slice=4}, ``SavedSlice`` {name=1, slice=2, data=3}
  (``util/saved_tensor_slice.proto``): the V1 records
* ``TensorProto`` (``framework/tensor.proto``): only located here (:func:`scan`); decoding its
  values is the V1 reader's job.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..errors import CheckpointError
from .slices import TensorSlice
from .source import Source

__all__ = [
    "BundleEntry",
    "BundleHeader",
    "Field",
    "ProtoError",
    "SavedSliceMeta",
    "VersionDef",
    "decode_packed_varints",
    "decode_varint",
    "encode_packed_varints",
    "encode_varint",
    "fields",
    "scan",
]

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5


class ProtoError(CheckpointError):
    """A malformed protobuf message (callers add which file and record it came from)."""


# ----------------------------------------------------------------------------- wire format


def encode_varint(value: int) -> bytes:
    """Base-128 varint; negative numbers as their 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """``(value, position after it)``; at most 10 bytes."""
    if pos < len(buf) and buf[pos] < 0x80:  # the common one-byte case, first
        return buf[pos], pos + 1
    value = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i + 1
        shift += 7
    raise ProtoError("truncated or overlong varint")


def signed64(value: int) -> int:
    """A varint read as uint64, seen as the int64 (or sign-extended int32) it encodes."""
    return value - (1 << 64) if value >> 63 else value


def decode_packed_varints(buf: np.ndarray, count: int | None = None) -> tuple[np.ndarray, int]:
    """The first ``count`` varints (all if None) of the uint8 array ``buf``, as uint64, and the
    number of bytes they take (vectorised: packed repeated fields can hold millions)."""
    ends = np.flatnonzero(buf < 0x80)
    if count is not None:
        if len(ends) < count:
            raise ProtoError(f"expected {count} varints, found {len(ends)}")
        ends = ends[:count]
    elif len(ends) and ends[-1] != len(buf) - 1:
        raise ProtoError("truncated varint at the end of a packed field")
    if len(ends) == 0:
        if count is None and len(buf):
            raise ProtoError("truncated varint at the end of a packed field")
        return np.zeros(0, np.uint64), 0
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    if np.any(ends - starts >= 10):
        raise ProtoError("overlong varint in a packed field")
    used = buf[: ends[-1] + 1]
    shifts = 7 * (np.arange(len(used)) - np.repeat(starts, ends - starts + 1))
    parts = (used & 0x7F).astype(np.uint64) << shifts.astype(np.uint64)
    return np.add.reduceat(parts, starts), int(ends[-1]) + 1


def encode_packed_varints(values: np.ndarray) -> np.ndarray:
    """Varints of ``values`` (read as uint64; negative int64 become 10 bytes) as a uint8 array."""
    v = values.astype(np.int64, copy=False).view(np.uint64) if values.dtype.kind == "i" else values
    v = v.astype(np.uint64, copy=False).reshape(-1)
    out = np.zeros((len(v), 10), np.uint8)
    length = np.ones(len(v), np.int64)
    for k in range(10):
        out[:, k] = (v >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (v >> np.uint64(7 * (k + 1))) != 0 if k < 9 else np.zeros(len(v), bool)
        out[more, k] |= 0x80
        length += more
    return out[np.arange(10) < length[:, None]]


class Field(NamedTuple):
    """One field: ``value`` for varint/fixed types; ``offset``/``length`` locate a LEN payload."""

    number: int
    wire: int
    value: int
    offset: int
    length: int


def scan(source: Source, start: int, end: int) -> Iterator[Field]:
    """The fields of the message in ``source[start:end]``, without reading LEN payloads.

    Field headers are parsed from a small read-ahead (``head``), re-read only when the next
    header may not lie inside it: a record holding a 400 MB tensor costs one small read.
    """
    pos = start
    head_at, head = start, b""
    while pos < end:
        p = pos - head_at
        if p + 20 > len(head) and head_at + len(head) < end:
            head_at, head, p = pos, source.read(pos, min(end - pos, 1024), "a protobuf field"), 0
        tag, p = decode_varint(head, p)
        number, wire = tag >> 3, tag & 7
        if wire == VARINT:
            value, q = decode_varint(head, p)
            yield Field(number, wire, value, head_at + p, q - p)
        elif wire == LEN:
            length, q = decode_varint(head, p)
            if head_at + q + length > end:
                raise ProtoError(f"field {number} runs past the end of its message")
            yield Field(number, wire, 0, head_at + q, length)
            q += length
        elif wire in (FIXED32, FIXED64):
            size = 4 if wire == FIXED32 else 8
            if p + size > len(head):
                raise ProtoError(f"fixed-size field {number} runs past the end of its message")
            yield Field(
                number, wire, int.from_bytes(head[p : p + size], "little"), head_at + p, size
            )
            q = p + size
        else:
            raise ProtoError(f"unsupported wire type {wire} (field {number})")
        pos = head_at + q
    if pos != end:
        raise ProtoError("message overruns its length")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(number, wire type, value)`` of each field of an in-memory message; ``value`` is an
    int, or the payload bytes of a LEN field. (A tight loop: indexes are parsed per variable.)"""
    pos, end = 0, len(buf)
    try:
        while pos < end:
            tag = buf[pos]
            pos += 1
            if tag >= 0x80:
                tag, pos = decode_varint(buf, pos - 1)
            number, wire = tag >> 3, tag & 7
            if wire == VARINT:
                value = buf[pos]
                pos += 1
                if value >= 0x80:
                    value, pos = decode_varint(buf, pos - 1)
                yield number, wire, value
            elif wire == LEN:
                length = buf[pos]
                pos += 1
                if length >= 0x80:
                    length, pos = decode_varint(buf, pos - 1)
                if pos + length > end:
                    raise ProtoError(f"field {number} runs past the end of its message")
                yield number, wire, buf[pos : pos + length]
                pos += length
            elif wire in (FIXED32, FIXED64):
                size = 4 if wire == FIXED32 else 8
                if pos + size > end:
                    raise ProtoError(f"fixed-size field {number} runs past the end of its message")
                yield number, wire, int.from_bytes(buf[pos : pos + size], "little")
                pos += size
            else:
                raise ProtoError(f"unsupported wire type {wire} (field {number})")
    except IndexError:
        raise ProtoError("message ends in the middle of a field") from None


def _tag(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def varint_field(number: int, value: int) -> bytes:
    """A varint field, or b'' for the proto3 default 0."""
    return _tag(number, VARINT) + encode_varint(value) if value else b""


def len_field(number: int, payload: bytes) -> bytes:
    """A LEN field (always written: sub-messages are present even when empty)."""
    return _tag(number, LEN) + encode_varint(len(payload)) + payload


def len_field_header(number: int, length: int) -> bytes:
    """The tag and length of a LEN field whose payload is written separately."""
    return _tag(number, LEN) + encode_varint(length)


def fixed32_field(number: int, value: int) -> bytes:
    return _tag(number, FIXED32) + value.to_bytes(4, "little") if value else b""


# ----------------------------------------------------------------------------- messages


def decode_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, wire, value in fields(buf):
        if number == 2 and wire == LEN:
            size = 0
            for g_number, g_wire, g_value in fields(value):
                if g_number == 1 and g_wire == VARINT:
                    size = signed64(g_value)
            if size < 0:
                raise ProtoError(f"tensor shape with an unknown dimension ({size})")
            dims.append(size)
        elif number == 3 and value:
            raise ProtoError("tensor shape of unknown rank")
    return tuple(dims)


def encode_shape(shape: tuple[int, ...]) -> bytes:
    return b"".join(len_field(2, varint_field(1, int(d))) for d in shape)


def decode_slice(buf: bytes) -> TensorSlice:
    extents = []
    for number, wire, value in fields(buf):
        if number == 1 and wire == LEN:
            start, length = 0, None
            for g_number, g_wire, g_value in fields(value):
                if g_number == 1 and g_wire == VARINT:
                    start = signed64(g_value)
                elif g_number == 2 and g_wire == VARINT:
                    length = signed64(g_value)
            extents.append((start, length))
    return TensorSlice(tuple(extents))


def encode_slice(slc: TensorSlice) -> bytes:
    # A whole dimension is an empty extent; a partial one sets start (omitted when 0, proto3)
    # and length (always written: it is a oneof, whose presence is kept even for 0).
    out = []
    for start, length in slc.extents:
        body = b""
        if length is not None:
            body = varint_field(1, start) + _tag(2, VARINT) + encode_varint(length)
        out.append(len_field(1, body))
    return b"".join(out)


@dataclass(frozen=True)
class VersionDef:
    producer: int = 0
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()

    @classmethod
    def decode(cls, buf: bytes) -> VersionDef:
        producer = min_consumer = 0
        bad: list[int] = []
        for number, wire, value in fields(buf):
            if number == 1 and wire == VARINT:
                producer = signed64(value)
            elif number == 2 and wire == VARINT:
                min_consumer = signed64(value)
            elif number == 3 and wire == VARINT:
                bad.append(signed64(value))
            elif number == 3 and wire == LEN:  # packed
                pos = 0
                while pos < len(value):
                    item, pos = decode_varint(value, pos)
                    bad.append(signed64(item))
        return cls(producer, min_consumer, tuple(bad))

    def encode(self) -> bytes:
        packed = b"".join(encode_varint(v) for v in self.bad_consumers)
        return (
            varint_field(1, self.producer)
            + varint_field(2, self.min_consumer)
            + (len_field(3, packed) if packed else b"")
        )


@dataclass(frozen=True)
class BundleHeader:
    """``BundleHeaderProto``: the V2 index entry under the empty key."""

    num_shards: int = 1
    endianness: int = 0  # 0 little, 1 big (of the tensor bytes; the index is always protobuf)
    version: VersionDef = field(default_factory=VersionDef)

    @classmethod
    def decode(cls, buf: bytes) -> BundleHeader:
        num_shards, endianness, version = 0, 0, VersionDef()
        for number, wire, value in fields(buf):
            if number == 1 and wire == VARINT:
                num_shards = signed64(value)
            elif number == 2 and wire == VARINT:
                endianness = value
            elif number == 3 and wire == LEN:
                version = VersionDef.decode(value)
        return cls(num_shards, endianness, version)

    def encode(self) -> bytes:
        return (
            varint_field(1, self.num_shards)
            + varint_field(2, self.endianness)
            + len_field(3, self.version.encode())
        )


@dataclass(frozen=True)
class BundleEntry:
    """``BundleEntryProto``: where one tensor (or one slice) lies in the V2 data files."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0  # masked
    slices: tuple[TensorSlice, ...] = ()

    @classmethod
    def decode(cls, buf: bytes) -> BundleEntry:
        values = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": 0}
        slices = []
        names = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}
        for number, wire, value in fields(buf):
            if number in names and wire == VARINT:
                values[names[number]] = signed64(value)
            elif number == 2 and wire == LEN:
                values["shape"] = decode_shape(value)
            elif number == 6 and wire == FIXED32:
                values["crc32c"] = value
            elif number == 7 and wire == LEN:
                slices.append(decode_slice(value))
        return cls(**values, slices=tuple(slices))

    def encode(self) -> bytes:
        return b"".join(
            [
                varint_field(1, self.dtype),
                len_field(2, encode_shape(self.shape)),
                varint_field(3, self.shard_id),
                varint_field(4, self.offset),
                varint_field(5, self.size),
                fixed32_field(6, self.crc32c),
                *(len_field(7, encode_slice(s)) for s in self.slices),
            ]
        )


@dataclass(frozen=True)
class SavedSliceMeta:
    """One tensor of a V1 file's table of contents: name, shape, dtype, the slices saved."""

    name: str
    shape: tuple[int, ...]
    dtype: int
    slices: tuple[TensorSlice, ...]

    @classmethod
    def decode(cls, buf: bytes) -> SavedSliceMeta:
        name, shape, dtype, slices = "", (), 0, []
        for number, wire, value in fields(buf):
            if number == 1 and wire == LEN:
                name = value.decode("utf-8", "surrogateescape")
            elif number == 2 and wire == LEN:
                shape = decode_shape(value)
            elif number == 3 and wire == VARINT:
                dtype = value
            elif number == 4 and wire == LEN:
                slices.append(decode_slice(value))
        return cls(name, shape, dtype, tuple(slices))

    def encode(self) -> bytes:
        return b"".join(
            [
                len_field(1, self.name.encode("utf-8", "surrogateescape")),
                len_field(2, encode_shape(self.shape)),
                varint_field(3, self.dtype),
                *(len_field(4, encode_slice(s)) for s in self.slices),
            ]
        )


def decode_saved_meta(buf: bytes) -> tuple[list[SavedSliceMeta], VersionDef] | None:
    """The ``meta`` of a V1 file's first record (``SavedTensorSlices``), or None if absent."""
    meta = None
    for number, wire, value in fields(buf):
        if number == 1 and wire == LEN:
            meta = value
    if meta is None:
        return None
    tensors, versions = [], VersionDef()
    for number, wire, value in fields(meta):
        if number == 1 and wire == LEN:
            tensors.append(SavedSliceMeta.decode(value))
        elif number == 2 and wire == LEN:
            versions = VersionDef.decode(value)
    return tensors, versions


def encode_saved_meta(tensors: list[SavedSliceMeta], versions: VersionDef) -> bytes:
    meta = b"".join(len_field(1, t.encode()) for t in tensors) + len_field(2, versions.encode())
    return len_field(1, meta)
