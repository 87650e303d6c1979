"""Write a ``safetensors`` file one tensor at a time, and check a file's header cheaply.

The format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length
``N``, ``N`` bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]},
"__metadata__": {str: str}}``, then the tensors' bytes back to back. Since every tensor's size
is known from its shape and dtype, the header can be written first and the data streamed after
it: the converter never holds more than one tensor, and the file's CRC-32C is computed as it is
written. Files written here are read by ``safetensors.torch.load_file`` like any other.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint.crc import crc32c

__all__ = ["TensorSpec", "read_header", "write_streaming"]

# numpy dtype -> safetensors dtype name
_DTYPES = {
    np.dtype(np.float32): "F32",
    np.dtype(np.float16): "F16",
    np.dtype(np.float64): "F64",
    np.dtype(np.int64): "I64",
    np.dtype(np.int32): "I32",
    np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8",
    np.dtype(np.uint8): "U8",
    np.dtype(np.bool_): "BOOL",
}
_ITEMSIZE = {name: dtype.itemsize for dtype, name in _DTYPES.items()}
_ITEMSIZE.update({"BF16": 2})
_MAX_HEADER = 100 << 20  # safetensors' own limit


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def write_streaming(
    path: Path,
    specs: list[TensorSpec],
    arrays: Iterable[np.ndarray],
    metadata: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Write ``arrays`` (one per spec, in order, produced lazily) to ``path``.

    Each array must have its spec's shape, and a dtype of the same kind (cast while writing);
    it may be a strided view (written block by block). The file is flushed and fsynced.
    Returns ``(file size, CRC-32C of the file as 8 hex digits)``.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for spec in specs:
        if spec.dtype not in _DTYPES:
            raise TypeError(f"{spec.name}: dtype {spec.dtype} has no safetensors name")
        header[spec.name] = {
            "dtype": _DTYPES[spec.dtype],
            "shape": list(spec.shape),
            "data_offsets": [offset, offset + spec.nbytes],
        }
        offset += spec.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    crc = 0
    with open(path, "wb") as out:

        def emit(data: bytes | memoryview) -> None:
            nonlocal crc
            out.write(data)
            crc = crc32c(data, crc)

        emit(struct.pack("<Q", len(blob)))
        emit(blob)
        for spec, array in zip(specs, arrays, strict=True):
            for block in _blocks(spec, array):
                emit(memoryview(block.reshape(-1).view(np.uint8)))
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    expected = 8 + len(blob) + offset
    if size != expected:  # pragma: no cover - would be a bug above
        raise AssertionError(f"wrote {size} bytes to {path}, expected {expected}")
    return size, f"{crc:08x}"


_BLOCK_BYTES = 16 << 20


def _blocks(spec: TensorSpec, array: np.ndarray) -> Iterable[np.ndarray]:
    """``array`` as C-ordered little-endian blocks of ``spec.dtype``.

    A contiguous array of the right dtype is written as it is; a strided view (a transposed
    conv kernel) or another dtype is copied a few rows at a time, so the extra memory is a
    16 MiB block, not a second copy of the tensor.
    """
    same_kind = np.can_cast(array.dtype, spec.dtype, "same_kind")
    if array.shape != spec.shape or not same_kind:
        raise ValueError(
            f"{spec.name}: got {array.dtype}{list(array.shape)}, "
            f"the header says {spec.dtype}{list(spec.shape)}"
        )
    target = spec.dtype.newbyteorder("<")
    if array.ndim == 0 or (array.dtype == target and array.flags.c_contiguous):
        yield np.ascontiguousarray(array, dtype=target)
        return
    row_bytes = max(1, spec.nbytes // max(1, array.shape[0]))
    step = max(1, _BLOCK_BYTES // row_bytes)
    for start in range(0, array.shape[0], step):
        # Copy in the source's memory order first (sequential reads of a transposed kernel),
        # then reorder the compact block: twice as fast as one strided gather over the source.
        block = np.array(array[start : start + step], dtype=target, order="K")
        yield np.ascontiguousarray(block)


def read_header(path: Path) -> dict[str, dict]:
    """Parse and check the header of a safetensors file without reading its data.

    Checks that the header is valid JSON, that every tensor's byte range matches its shape and
    dtype, that the ranges tile the data exactly, and that the file is exactly as long as the
    header says. Raises ``ValueError`` naming the problem.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ValueError(f"{size} bytes: too short for a safetensors header")
        (length,) = struct.unpack("<Q", raw)
        if length > min(_MAX_HEADER, size - 8):
            raise ValueError(f"header length {length} does not fit a {size}-byte file")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise ValueError(f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    header.pop("__metadata__", None)
    spans = []
    for name, entry in header.items():
        try:
            begin, end = entry["data_offsets"]
            count = int(np.prod(entry["shape"], dtype=np.int64))
            nbytes = count * _ITEMSIZE[entry["dtype"]]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tensor {name!r} has an invalid header entry") from None
        if end - begin != nbytes:
            raise ValueError(f"tensor {name!r}: {end - begin} bytes for {nbytes} of data")
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError(f"tensor data has a gap or overlap at byte {position}")
        position = end
    if 8 + length + position != size:
        raise ValueError(f"the file has {size} bytes, its header describes {8 + length + position}")
    return header
