"""V2 checkpoints ("tensor bundles"): ``<prefix>.index`` + ``<prefix>.data-0000i-of-0000n``.

The index is a table (see :mod:`.sstable`) mapping each variable name to a ``BundleEntryProto``:
dtype, shape, data shard, byte offset and size, and the masked crc32c of those bytes. The entry
under the empty key is a ``BundleHeaderProto`` (shard count, endianness, format version).
Numeric tensors are their raw little-endian C-order bytes. A string tensor is
``varint64 length`` per element, a 4-byte masked crc32c of the lengths (each checksummed as a
little-endian uint32, or uint64 if it does not fit), then the string bytes; its entry's crc32c
covers lengths-as-uint32, the length crc and the bytes. A partitioned variable has an entry
listing its slices (and no data); each slice has its own entry under its slice key (see
:mod:`.slices`). Reference: TF's ``util/tensor_bundle/tensor_bundle.cc``.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ChecksumError
from . import dtypes
from .crc import crc32c, unmask
from .limits import check_declared
from .proto import BundleEntry, BundleHeader, ProtoError, decode_packed_varints
from .slices import check_cover, encode_slice_key
from .source import FileSource
from .sstable import Table

__all__ = ["V2Bundle", "data_path", "index_path"]

FORMAT_VERSION = 1  # kTensorBundleVersion: the newest format this reader understands


def index_path(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def data_path(prefix: Path, shard: int, num_shards: int) -> Path:
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")


class V2Bundle:
    """Reads the tensors of one V2 checkpoint (opened by :func:`zoo.open_checkpoint`)."""

    format = "v2"

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.index_file = index_path(prefix)
        self._index = FileSource(self.index_file)
        self._data: dict[int, FileSource] = {}
        self._lock = threading.Lock()
        try:
            self._load_index()
        except BaseException:
            self.close()
            raise

    def _load_index(self) -> None:
        self._entries: dict[str, bytes] = {}
        self._parsed: dict[str, BundleEntry] = {}
        self._slice_entries: dict[bytes, bytes] = {}
        items = Table(self._index).items()
        first = next(items, None)
        if first is None or first[0] != b"":
            raise CheckpointError(
                f"{self.index_file}: expected a BundleHeaderProto under the empty key as the "
                "first entry of a V2 index, found none: not a V2 checkpoint index"
            )
        try:
            header = BundleHeader.decode(first[1])
        except ProtoError as exc:
            raise CheckpointError(f"{self.index_file}: unreadable bundle header ({exc})") from None
        version = header.version
        if version.min_consumer > FORMAT_VERSION or FORMAT_VERSION in version.bad_consumers:
            raise CheckpointError(
                f"{self.index_file}: written in bundle format version {version.producer} "
                f"(readable from version {version.min_consumer}); this reader understands "
                f"version {FORMAT_VERSION}. Re-save the checkpoint with an older TensorFlow."
            )
        if header.endianness not in (0, 1) or header.num_shards < 1:
            raise CheckpointError(
                f"{self.index_file}: corrupt header (endianness {header.endianness}, "
                f"{header.num_shards} shards)"
            )
        self.num_shards = header.num_shards
        self.big_endian = header.endianness == 1
        for key, value in items:
            if key.startswith(b"\x00"):  # one slice of a partitioned variable
                self._slice_entries[key] = value
            else:
                self._entries[key.decode("utf-8", "surrogateescape")] = value
        self.files = [self.index_file]
        for shard in range(self.num_shards):
            path = data_path(self.prefix, shard, self.num_shards)
            if not path.is_file():
                found = sorted(p.name for p in path.parent.glob(f"{self.prefix.name}.data-*"))
                raise CheckpointError(
                    f"missing data shard {path}: the index {self.index_file.name} lists "
                    f"{self.num_shards} shards, the directory has {found or 'none'}. Copy every "
                    "file of the checkpoint."
                )
            self.files.append(path)
        self.data_bytes = sum(p.stat().st_size for p in self.files[1:])

    # ------------------------------------------------------------------ metadata

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: str) -> BundleEntry:
        entry = self._parsed.get(name)
        if entry is None:
            try:
                entry = self._parsed[name] = BundleEntry.decode(self._entries[name])
            except ProtoError as exc:
                raise CheckpointError(
                    f"{self.index_file}: the entry of {name!r} is corrupt ({exc})"
                ) from None
        return entry

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entry(name).shape

    def dtype(self, name: str) -> dtypes.DType:
        return dtypes.from_enum(self.entry(name).dtype, f"{self.index_file}: {name!r}")

    # ------------------------------------------------------------------ values

    def read(self, name: str) -> np.ndarray:
        entry = self.entry(name)
        dtype = self.dtype(name)
        if not entry.slices:
            self._locate(name, entry)  # a truncated file is named as such, first
        # every element takes its itemsize in a data file (a string: at least its length byte)
        min_bytes = 1 if dtype.is_string else dtype.storage.itemsize
        check_declared(entry.shape, min_bytes, self.data_bytes, f"{self.index_file}: {name!r}")
        if not entry.slices:
            return dtype.to_numpy(self._read_entry(name, entry, dtype))
        return dtype.to_numpy(self._read_partitioned(name, entry, dtype))

    def _read_partitioned(self, name: str, entry: BundleEntry, dtype: dtypes.DType) -> np.ndarray:
        what = f"{self.index_file}: partitioned variable {name!r}"
        check_cover(entry.shape, list(entry.slices), what)
        out = np.empty(entry.shape, dtype.storage or object)
        for slc in entry.slices:
            raw = self._slice_entries.get(encode_slice_key(name, slc))
            if raw is None:
                raise CheckpointError(f"{what}: the index has no entry for its slice {slc}")
            try:
                part = BundleEntry.decode(raw)
            except ProtoError as exc:
                raise CheckpointError(f"{what}: entry of slice {slc} is corrupt ({exc})") from None
            if part.dtype != entry.dtype or part.shape != slc.shape(entry.shape):
                raise CheckpointError(
                    f"{what}: slice {slc} is stored as dtype enum {part.dtype}, shape "
                    f"{list(part.shape)}; expected {entry.dtype}, {list(slc.shape(entry.shape))}"
                )
            region = slc.index(entry.shape)
            target = out[region]
            if dtype.is_string or not target.flags.c_contiguous:
                out[region] = self._read_entry(f"{name} (slice {slc})", part, dtype)
            else:  # read straight into the full array
                self._read_entry(f"{name} (slice {slc})", part, dtype, into=target)
        return out

    def _read_entry(
        self, name: str, entry: BundleEntry, dtype: dtypes.DType, into: np.ndarray | None = None
    ) -> np.ndarray:
        source = self._locate(name, entry)
        if dtype.is_string:
            return self._read_strings(name, entry, source)
        count = math.prod(entry.shape)
        expected = count * dtype.storage.itemsize
        if entry.size != expected:
            raise CheckpointError(
                f"{self.index_file}: {name!r} is recorded as {entry.size} bytes, but "
                f"{dtype.name} {list(entry.shape)} needs {expected}: corrupt index"
            )
        out = np.empty(entry.shape, dtype.storage) if into is None else into
        flat = out.reshape(-1).view(np.uint8)
        crc = source.readinto(entry.offset, flat, f"tensor {name!r}", crc=0)
        self._check_crc(name, entry, source, crc)
        if self.big_endian and dtype.storage.itemsize > 1:
            out = out.byteswap(inplace=True)
        return out

    def _locate(self, name: str, entry: BundleEntry) -> FileSource:
        """The data file holding ``entry``, checked to hold all of its bytes."""
        if not 0 <= entry.shard_id < self.num_shards:
            raise CheckpointError(
                f"{self.index_file}: {name!r} is in shard {entry.shard_id}, but the checkpoint "
                f"has {self.num_shards} shards"
            )
        source = self._source(entry.shard_id)
        if entry.offset < 0 or entry.size < 0 or entry.offset + entry.size > source.size:
            raise CheckpointError(
                f"{source.path} is truncated: {name!r} needs bytes {entry.offset}.."
                f"{entry.offset + entry.size}, the file has {source.size} bytes. Download or "
                "copy the checkpoint again."
            )
        return source

    def _read_strings(self, name: str, entry: BundleEntry, source: FileSource) -> np.ndarray:
        count = math.prod(entry.shape)
        if count > entry.size:  # each string has at least its one-byte length
            raise CheckpointError(
                f"{source.path}: string tensor {name!r} has {count} elements, but its entry "
                f"records {entry.size} bytes (at least one per element): corrupt index"
            )
        out = np.empty(entry.shape, object)
        if entry.size == 0 and count == 0:
            return out
        raw = source.read(entry.offset, entry.size, f"tensor {name!r}")
        try:  # the lengths are varints of at most 10 bytes: decode only the bytes they can use
            head = np.frombuffer(raw, np.uint8, min(len(raw), 10 * count))
            lengths, pos = decode_packed_varints(head, count)
        except ProtoError as exc:
            raise CheckpointError(
                f"{source.path}: string tensor {name!r} is corrupt ({exc})"
            ) from None
        if pos + 4 > len(raw):
            raise CheckpointError(f"{source.path}: string tensor {name!r} is corrupt")
        # TF checksums each length as a uint32 (a uint64 if it does not fit), in the byte order
        # of the machine that wrote it
        order = ">" if self.big_endian else "<"
        if lengths.max(initial=0) <= 0xFFFFFFFF:
            crc = crc32c(lengths.astype(order + "u4"))
        else:  # pragma: no cover - a string of 4 GiB or more
            crc = 0
            for n in lengths.tolist():
                crc = crc32c(np.array(n, order + ("u4" if n <= 0xFFFFFFFF else "u8")), crc)
        stored_lengths_crc = int.from_bytes(raw[pos : pos + 4], "big" if order == ">" else "little")
        if unmask(stored_lengths_crc) != crc:
            raise ChecksumError(
                f"{source.path}: the string lengths of {name!r} fail their crc32c check "
                f"(stored 0x{unmask(stored_lengths_crc):08x}, computed 0x{crc:08x}): the file "
                "is corrupt. Download or copy the checkpoint again."
            )
        crc = crc32c(raw[pos : pos + 4], crc)
        pos += 4
        # (each length is checked first: a sum of uint64 lengths could wrap around)
        text = len(raw) - pos
        total = int(lengths.sum()) if lengths.max(initial=0) <= text else None
        if total != text:
            raise CheckpointError(
                f"{source.path}: string tensor {name!r} holds {text} bytes of text, its "
                f"lengths add up to {total if total is not None else 'more'}: corrupt"
            )
        self._check_crc(name, entry, source, crc32c(raw[pos:], crc))
        flat = out.reshape(-1)
        for i, n in enumerate(lengths.tolist()):
            flat[i] = raw[pos : pos + n]
            pos += n
        return out

    def _check_crc(self, name: str, entry: BundleEntry, source: FileSource, actual: int) -> None:
        stored = unmask(entry.crc32c)
        if stored != actual:
            raise ChecksumError(
                f"{source.path}: tensor {name!r} (bytes {entry.offset}.."
                f"{entry.offset + entry.size}) fails its crc32c check: the index stores "
                f"0x{stored:08x}, the data gives "
                f"0x{actual:08x}. The file is corrupt: download or copy the checkpoint again."
            )

    def _source(self, shard: int) -> FileSource:
        with self._lock:
            if shard not in self._data:
                self._data[shard] = FileSource(data_path(self.prefix, shard, self.num_shards))
            return self._data[shard]

    def close(self) -> None:
        self._index.close()
        for source in self._data.values():
            source.close()
        self._data.clear()
