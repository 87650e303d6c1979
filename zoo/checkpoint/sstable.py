"""LevelDB-style sorted tables, the container of V1 checkpoints and of V2 ``.index`` files.

Layout (TF's ``lib/io/format.cc``, ``block.cc``, ``block_builder.cc``, ``table_builder.cc``, all
LevelDB's design):

* The file is a run of blocks, each followed by a 5-byte trailer: a compression type byte
  (0 none, 1 Snappy) and the masked crc32c of the block bytes plus that type byte.
* A block holds entries ``varint shared, varint unshared, varint value_length, key[shared:],
  value``: each key is stored as the length of the prefix it shares with the previous key plus
  the rest. Every 16th entry is a "restart point" with ``shared == 0``; the block ends with the
  restart offsets (uint32 each) and their count (uint32), which allows a binary search.
* The 48-byte footer holds two block handles (varint offset, varint size): the meta-index block
  (empty in TF files) and the index block, zero padding to 40 bytes, and the magic
  ``0xdb4775248b80fb57`` (little-endian uint64).
* The index block has one entry per data block: a key >= every key in that block and < every
  key of the next one, and the block's handle. Keys compare as raw bytes.

:class:`Table` reads a table lazily. Blocks up to 64 KiB are read whole, verified, parsed and
cached. Of a larger block (usually one big tensor record) only the entry headers are read and
the value is returned as a location; the block's crc32c is then computed while the caller reads
the value into its array (:meth:`Table.read_checked`) or from what it read (:meth:`Table.verify`),
so a 400 MB record is read exactly once. :class:`TableWriter` lays a table out exactly as TF's
``TableBuilder`` does.
"""

from __future__ import annotations

import bisect
import collections
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import CheckpointError, ChecksumError
from . import snappy
from .crc import crc32c, mask, unmask
from .proto import ProtoError, decode_varint, encode_varint
from .source import BytesSource, FileSource, Source

__all__ = ["MAGIC", "BlockHandle", "Record", "Table", "TableWriter"]

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
BLOCK_SIZE = 256 * 1024  # TF's table::Options default
RESTART_INTERVAL = 16

_SMALL_BLOCK = 64 << 10  # blocks up to this size are read whole (and cached)
_MANY_RECORDS_BLOCK = 1 << 20  # ... and blocks of small records up to this size
_CACHED_BLOCKS = 4
_VERIFY_CHUNK = 8 << 20


@dataclass(frozen=True)
class BlockHandle:
    offset: int
    size: int  # without the trailer

    def encode(self) -> bytes:
        return encode_varint(self.offset) + encode_varint(self.size)


@dataclass(frozen=True)
class Record:
    """Where a value lies: ``source[offset:offset + length]``.

    ``block`` is set when that block has not been verified yet (a large block read lazily from
    the file); the caller must then call :meth:`Table.verify` after reading the value.
    """

    source: Source
    offset: int
    length: int
    block: BlockHandle | None

    def read(self) -> bytes:
        return self.source.read(self.offset, self.length, "a table value")


class Table:
    """A read-only table in ``source`` (an open :class:`FileSource`)."""

    def __init__(self, source: FileSource) -> None:
        self.source = source
        self.path = source.path
        if source.size < FOOTER_SIZE:
            raise CheckpointError(
                f"{self.path} is not a TF checkpoint table: it has {source.size} bytes, fewer "
                f"than the {FOOTER_SIZE}-byte table footer (truncated or not a checkpoint)"
            )
        footer = source.read(source.size - FOOTER_SIZE, FOOTER_SIZE, "the table footer")
        magic = int.from_bytes(footer[-8:], "little")
        if magic != MAGIC:
            raise CheckpointError(
                f"{self.path} is not a TF checkpoint table: expected the magic number "
                f"0x{MAGIC:016x} in its last 8 bytes, found 0x{magic:016x}. The file is "
                "truncated, corrupt, or not a TensorFlow checkpoint."
            )
        try:
            _, pos = _decode_handle(footer, 0)  # meta-index block: unused by TF
            index_handle, _ = _decode_handle(footer, pos)
        except ProtoError as exc:
            raise CheckpointError(f"{self.path}: corrupt table footer ({exc})") from None
        self._cache: collections.OrderedDict[int, _LoadedBlock] = collections.OrderedDict()
        self._cache_lock = threading.Lock()  # readers may be shared between threads
        self._verified: set[int] = set()
        index = self._load(index_handle, "the index block")
        self._index_keys = list(index.entries)
        self._index_handles = []
        for offset, length in index.entries.values():
            handle, _ = _decode_handle(index.data[offset : offset + length], 0)
            self._index_handles.append(handle)

    # ------------------------------------------------------------------ lookups

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key, value)`` in key order (for tables of small values: V2 indexes)."""
        for handle in self._index_handles:
            block = self._load(handle, "a data block")
            for key, (offset, length) in block.entries.items():
                yield key, block.data[offset : offset + length]

    def locate(self, key: bytes) -> Record | None:
        """The value stored under ``key``, or None."""
        i = bisect.bisect_left(self._index_keys, key)
        if i == len(self._index_keys):
            return None
        handle = self._index_handles[i]
        if self._read_whole(handle):
            loaded = self._load(handle, "a data block")
            found = loaded.entries.get(key)
            return None if found is None else Record(loaded.source, *found, None)
        # a block holding a big tensor: parse only the entry headers, straight from the file
        found = _Block(self.source, handle.offset, handle.size).seek(key)
        if found is None:
            return None
        pending = None if handle.offset in self._verified else handle
        return Record(self.source, *found, pending)

    def _read_whole(self, handle: BlockHandle) -> bool:
        """Read (and cache) a block whole, or parse it lazily from the file?

        Whole: small blocks, compressed ones, and blocks of many small records (up to 1 MiB),
        which are then looked up in memory. Lazily: blocks whose first record fills most of
        the block (one big tensor, read straight into its array) and any block over 1 MiB.
        """
        if handle.size <= _SMALL_BLOCK or handle.offset in self._cache:
            return True
        self._check_handle(handle, "a data block")
        if not self._is_plain(handle):
            return True
        first = _Block(self.source, handle.offset, handle.size).first_value_length()
        return 2 * first < handle.size <= _MANY_RECORDS_BLOCK

    def verify(self, record: Record, known: tuple[int, np.ndarray] | None = None) -> None:
        """Check the crc32c of ``record``'s block (if still pending), reading it from the file.

        ``known`` is ``(file offset, bytes already read)`` for a part of the block the caller
        holds in memory (the value it just read): that part is checksummed from memory.
        """
        handle = record.block
        if handle is None or handle.offset in self._verified:
            return
        end = handle.offset + handle.size
        if known is None:
            crc = self._crc_of(handle.offset, end)
        else:
            offset, data = known[0], _raw(known[1])
            if not handle.offset <= offset <= offset + len(data) <= end:
                raise ValueError("the known bytes must lie inside the block")
            crc = self._crc_of(handle.offset, offset)
            crc = crc32c(data, crc)
            crc = self._crc_of(offset + len(data), end, crc)
        self._finish_verify(handle, crc)

    def read_checked(self, record: Record, offset: int, out: np.ndarray, what: str) -> None:
        """Read ``len(out)`` bytes at ``offset`` (inside ``record``) into the uint8 array
        ``out``, verifying the record's block on the way: the value's crc32c is computed chunk
        by chunk as it is read, the few other bytes of the block are read from the file."""
        handle = record.block
        if handle is None or handle.offset in self._verified:
            record.source.readinto(offset, out, what)
            return
        crc = self._crc_of(handle.offset, offset)
        crc = self.source.readinto(offset, out, what, crc=crc)
        self._finish_verify(
            handle, self._crc_of(offset + len(out), handle.offset + handle.size, crc)
        )

    def _crc_of(self, start: int, stop: int, crc: int = 0) -> int:
        """crc32c of the file bytes ``[start, stop)``, read in chunks."""
        while start < stop:
            n = min(stop - start, _VERIFY_CHUNK)
            crc = crc32c(self.source.read(start, n, "a data block"), crc)
            start += n
        return crc

    def _finish_verify(self, handle: BlockHandle, crc: int) -> None:
        trailer = self.source.read(handle.offset + handle.size, TRAILER_SIZE, "a block trailer")
        self._check_crc(handle, crc32c(trailer[:1], crc), trailer)
        self._verified.add(handle.offset)

    # ------------------------------------------------------------------ blocks

    def _check_handle(self, handle: BlockHandle, what: str) -> None:
        if handle.offset + handle.size + TRAILER_SIZE > self.source.size - FOOTER_SIZE:
            raise CheckpointError(
                f"{self.path}: {what} at bytes {handle.offset}..{handle.offset + handle.size} "
                f"lies past the end of the table data ({self.source.size} bytes in all): the "
                "file is truncated or corrupt"
            )

    def _is_plain(self, handle: BlockHandle) -> bool:
        trailer = self.source.read(handle.offset + handle.size, TRAILER_SIZE, "a block trailer")
        return trailer[0] == 0

    def _load(self, handle: BlockHandle, what: str) -> _LoadedBlock:
        """A whole block, verified, decompressed and parsed (small ones kept in a cache)."""
        with self._cache_lock:
            cached = self._cache.get(handle.offset)
            if cached is not None:
                self._cache.move_to_end(handle.offset)
                return cached
        self._check_handle(handle, what)
        raw = self.source.read(handle.offset, handle.size + TRAILER_SIZE, what)
        contents, trailer = raw[: handle.size], raw[handle.size :]
        self._check_crc(handle, crc32c(trailer[:1], crc32c(contents)), trailer)
        if trailer[0] == 1:
            try:
                contents = snappy.decompress(contents)
            except snappy.SnappyError as exc:
                raise CheckpointError(f"{self.path}: bad Snappy block ({exc})") from None
        elif trailer[0] != 0:
            raise CheckpointError(
                f"{self.path}: block at byte {handle.offset} uses compression type "
                f"{trailer[0]}; TF tables only use 0 (none) and 1 (Snappy)"
            )
        block = _LoadedBlock(contents, self.path)
        if handle.size <= _MANY_RECORDS_BLOCK:
            with self._cache_lock:
                self._cache[handle.offset] = block
                while len(self._cache) > _CACHED_BLOCKS:
                    self._cache.popitem(last=False)
        return block

    def _check_crc(self, handle: BlockHandle, actual: int, trailer: bytes) -> None:
        stored = unmask(int.from_bytes(trailer[1:5], "little"))
        if stored != actual:
            raise ChecksumError(
                f"{self.path}: the block at bytes {handle.offset}..{handle.offset + handle.size} "
                f"fails its crc32c check (stored 0x{stored:08x}, computed 0x{actual:08x}): the "
                "file is corrupt. Download or copy the checkpoint again."
            )


class _LoadedBlock:
    """A block in memory with its entries parsed: ``{key: (value offset, value length)}``."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.source = BytesSource(data, path)
        if len(data) < 4:
            raise CheckpointError(f"{path}: corrupt table block ({len(data)} bytes)")
        count = int.from_bytes(data[-4:], "little")
        end = len(data) - 4 - 4 * count
        if count == 0 or end < 0:
            raise CheckpointError(f"{path}: corrupt table block ({count} restart points)")
        self.entries: dict[bytes, tuple[int, int]] = {}
        pos, key = 0, b""
        try:
            while pos < end:
                shared, pos = decode_varint(data, pos)
                unshared, pos = decode_varint(data, pos)
                length, pos = decode_varint(data, pos)
                if shared > len(key) or pos + unshared + length > end:
                    raise ProtoError("entry overruns the block")
                key = key[:shared] + data[pos : pos + unshared]
                pos += unshared
                self.entries[key] = (pos, length)
                pos += length
        except ProtoError as exc:
            raise CheckpointError(f"{path}: corrupt table block entry at {pos} ({exc})") from None


class _Block:
    """The entries of one large block in ``source[base:base + size]``, read on demand."""

    def __init__(self, source: Source, base: int, size: int) -> None:
        self.source = source
        self.base = base
        self.size = size
        if size < 4:
            raise CheckpointError(f"{source.path}: corrupt table block ({size} bytes)")
        self.data_end = base + size - 4  # until the restart points are read (if ever)
        self.restarts: list[int] | None = None

    def _read_restarts(self) -> list[int]:
        base, size = self.base, self.size
        count = int.from_bytes(self.source.read(base + size - 4, 4, "a block"), "little")
        self.data_end = base + size - 4 - 4 * count
        if count == 0 or self.data_end < base:
            raise CheckpointError(f"{self.source.path}: corrupt table block ({count} restarts)")
        raw = self.source.read(self.data_end, 4 * count, "a block")
        return [base + r for r in struct.unpack(f"<{count}I", raw)]

    def _entry(self, pos: int, prev_key: bytes) -> tuple[bytes, int, int, int]:
        """``(key, value offset, value length, next entry)`` of the entry at ``pos``."""
        head = self.source.read(pos, min(15, self.data_end - pos), "a block entry")
        try:
            shared, p = decode_varint(head, 0)
            unshared, p = decode_varint(head, p)
            length, p = decode_varint(head, p)
        except ProtoError:
            raise CheckpointError(f"{self.source.path}: corrupt block entry at {pos}") from None
        key_start = pos + p
        value_start = key_start + unshared
        if shared > len(prev_key) or value_start + length > self.data_end:
            raise CheckpointError(f"{self.source.path}: corrupt block entry at {pos}")
        key = prev_key[:shared] + self.source.read(key_start, unshared, "a key")
        return key, value_start, length, value_start + length

    def first_value_length(self) -> int:
        return self._entry(self.base, b"")[2]

    def seek(self, target: bytes) -> tuple[int, int] | None:
        """Location of the value stored under ``target``, or None."""
        # A large block usually holds just the one big record: try the first entry before
        # reading the restart points.
        key, offset, length, _ = self._entry(self.base, b"")
        if key == target:
            return offset, length
        if key > target:
            return None
        # last restart point whose key is < target, then a linear scan (LevelDB's Block::Seek)
        self.restarts = self.restarts or self._read_restarts()
        lo, hi = 0, len(self.restarts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            key, *_ = self._entry(self.restarts[mid], b"")
            if key < target:
                lo = mid
            else:
                hi = mid - 1
        pos, key = self.restarts[lo], b""
        while pos < self.data_end:
            key, offset, length, pos = self._entry(pos, key)
            if key == target:
                return offset, length
            if key > target:
                return None
        return None


def _decode_handle(buf: bytes, pos: int) -> tuple[BlockHandle, int]:
    offset, pos = decode_varint(buf, pos)
    size, pos = decode_varint(buf, pos)
    return BlockHandle(offset, size), pos


# --------------------------------------------------------------------------- writing

Buffer = bytes | np.ndarray  # np.ndarray: a C-contiguous array, written as its raw bytes


class _BlockBuilder:
    def __init__(self, restart_interval: int) -> None:
        self.restart_interval = restart_interval
        self.parts: list[Buffer] = []
        self.size = 0
        self.restarts = [0]
        self.counter = 0
        self.last_key = b""

    def empty(self) -> bool:
        return not self.parts

    def add(self, key: bytes, value: list[Buffer]) -> None:
        shared = 0
        if self.counter < self.restart_interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(self.size)
            self.counter = 0
        head = (
            encode_varint(shared)
            + encode_varint(len(key) - shared)
            + encode_varint(sum(_nbytes(v) for v in value))
            + key[shared:]
        )
        self._append(head)
        for part in value:
            self._append(part)
        self.last_key = key
        self.counter += 1

    def _append(self, part: Buffer) -> None:
        self.parts.append(part)
        self.size += _nbytes(part)

    def estimate(self) -> int:
        return self.size + 4 * len(self.restarts) + 4

    def finish(self) -> list[Buffer]:
        tail = struct.pack(f"<{len(self.restarts)}I", *self.restarts)
        parts = [*self.parts, tail + struct.pack("<I", len(self.restarts))]
        self.parts, self.size, self.restarts, self.counter, self.last_key = [], 0, [0], 0, b""
        return parts


class TableWriter:
    """Writes a table to ``file`` as TF's ``TableBuilder`` does (no compression).

    Values may be given as several buffers (e.g. a protobuf header and a big numpy array), so
    large tensors are written without being copied into one string first.
    """

    def __init__(
        self, file: BinaryIO, block_size: int = BLOCK_SIZE, restart_interval: int = RESTART_INTERVAL
    ) -> None:
        self.file = file
        self.block_size = block_size
        self.offset = 0
        self.data_block = _BlockBuilder(restart_interval)
        self.index_block = _BlockBuilder(1)
        self.last_key: bytes | None = None
        self.pending: BlockHandle | None = None  # last data block, whose index entry waits

    def add(self, key: bytes, *value: Buffer) -> None:
        if self.last_key is not None and key <= self.last_key:
            raise ValueError(f"table keys must be added in increasing order: {key!r}")
        length = sum(_nbytes(v) for v in value)
        # TF starts a new block before an entry at least twice the block size, so that a huge
        # value does not drag small neighbours into its block
        if self.last_key is not None and len(key) + length >= 2 * self.block_size:
            self._flush()
        if self.pending is not None:
            self.index_block.add(_separator(self.last_key, key), [self.pending.encode()])
            self.pending = None
        self.last_key = key
        self.data_block.add(key, list(value))
        if self.data_block.estimate() >= self.block_size:
            self._flush()

    def finish(self) -> None:
        self._flush()
        meta_index = self._write_block(_BlockBuilder(RESTART_INTERVAL))
        if self.pending is not None:
            self.index_block.add(_successor(self.last_key), [self.pending.encode()])
            self.pending = None
        index = self._write_block(self.index_block)
        footer = meta_index.encode() + index.encode()
        self.file.write(footer.ljust(40, b"\0") + MAGIC.to_bytes(8, "little"))

    def _flush(self) -> None:
        if not self.data_block.empty():
            self.pending = self._write_block(self.data_block)

    def _write_block(self, block: _BlockBuilder) -> BlockHandle:
        crc, size = 0, 0
        for part in block.finish():
            raw = _raw(part)
            self.file.write(raw)
            crc = crc32c(raw, crc)
            size += len(raw)
        crc = crc32c(b"\0", crc)  # the type byte: no compression
        self.file.write(b"\0" + mask(crc).to_bytes(4, "little"))
        handle = BlockHandle(self.offset, size)
        self.offset += size + TRAILER_SIZE
        return handle


def _nbytes(part: Buffer) -> int:
    return part.nbytes if isinstance(part, np.ndarray) else len(part)


def _raw(part: Buffer) -> Buffer:
    """``part`` as bytes or a flat uint8 array (what ``write`` and ``crc32c`` take)."""
    return part.reshape(-1).view(np.uint8) if isinstance(part, np.ndarray) else part


def _separator(start: bytes, limit: bytes) -> bytes:
    """A short key >= ``start`` and < ``limit`` (TF's FindShortestSeparator)."""
    n = 0
    while n < min(len(start), len(limit)) and start[n] == limit[n]:
        n += 1
    if n < min(len(start), len(limit)):
        byte = start[n]
        if byte < 0xFF and byte + 1 < limit[n]:
            return start[:n] + bytes([byte + 1])
    return start


def _successor(key: bytes) -> bytes:
    """A short key >= ``key`` (TF's FindShortSuccessor): first byte below 0xff, incremented."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key
