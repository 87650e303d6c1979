"""Positioned reads from a checkpoint file, never more than asked for.

Tensors are read with ``pread`` straight into the numpy array that is returned: no mmap (mapped
pages would count towards the process's resident memory until unmapped) and no intermediate
``bytes``. Small reads (varints, keys, protobuf headers) go through a little read-ahead window so
that parsing a record header does not cost one system call per byte.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .crc import crc32c

__all__ = ["BytesSource", "FileSource", "Source"]

_WINDOW = 4096  # enough for any record header; larger windows would copy tensor bytes twice
_CRC_CHUNK = 1 << 20


class Source:
    """Random access to the bytes of one file (or of one in-memory block)."""

    path: Path
    size: int

    def read(self, offset: int, size: int) -> bytes:
        raise NotImplementedError

    def readinto(
        self, offset: int, out: np.ndarray, what: str = "a tensor", crc: int | None = None
    ) -> int | None:
        raise NotImplementedError

    def _check_range(self, offset: int, size: int, what: str) -> None:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise CheckpointError(
                f"{self.path}: truncated or corrupt: {what} needs bytes {offset}..{offset + size} "
                f"but the file has {self.size} bytes. Download or copy the checkpoint again."
            )


class FileSource(Source):
    """A file opened once, read with ``os.pread``/``os.preadv`` (thread-safe, no seek state)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint file {self.path} does not exist") from None
        except OSError as exc:
            raise CheckpointError(f"cannot open checkpoint file {self.path}: {exc}") from exc
        self.size = os.fstat(self._fd).st_size
        self._lock = threading.Lock()
        self._window: tuple[int, bytes] = (0, b"")  # (offset, bytes), replaced as a whole

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _pread(self, size: int, offset: int) -> bytes:
        if self._fd < 0:
            raise CheckpointError(f"{self.path}: the checkpoint reader is closed")
        if hasattr(os, "pread"):
            return os.pread(self._fd, size, offset)
        with self._lock:  # pragma: no cover - Windows has no pread
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, size)

    def read(self, offset: int, size: int, what: str = "a record") -> bytes:
        """Exactly ``size`` bytes at ``offset`` (small reads are served from a window)."""
        self._check_range(offset, size, what)
        start, window = self._window
        if start <= offset and offset + size <= start + len(window):
            return window[offset - start : offset - start + size]
        if size <= _WINDOW // 4:
            window = self._read_exact(offset, min(_WINDOW, self.size - offset), what)
            self._window = (offset, window)
            return window[:size]
        return self._read_exact(offset, size, what)

    def _read_exact(self, offset: int, size: int, what: str) -> bytes:
        chunks = []
        while size > 0:
            chunk = self._pread(size, offset)
            if not chunk:
                raise CheckpointError(f"{self.path}: unexpected end of file reading {what}")
            chunks.append(chunk)
            offset += len(chunk)
            size -= len(chunk)
        return b"".join(chunks) if len(chunks) != 1 else chunks[0]

    def readinto(
        self, offset: int, out: np.ndarray, what: str = "a tensor", crc: int | None = None
    ) -> int | None:
        """Fill the flat uint8 array ``out`` with the bytes at ``offset``.

        With ``crc`` given, also return the crc32c extended over those bytes, computed chunk by
        chunk right after each chunk is read (while it is still in the CPU cache).
        """
        self._check_range(offset, len(out), what)
        step = _CRC_CHUNK if crc is not None else max(len(out), 1)
        for start in range(0, len(out), step):
            chunk = out[start : start + step]
            self._fill(offset + start, chunk, what)
            if crc is not None:
                crc = crc32c(chunk, crc)
        return crc

    def _fill(self, offset: int, out: np.ndarray, what: str) -> None:
        done = 0
        while done < len(out):
            if self._fd < 0:
                raise CheckpointError(f"{self.path}: the checkpoint reader is closed")
            if hasattr(os, "preadv"):
                n = os.preadv(self._fd, [out[done:]], offset + done)
            else:  # pragma: no cover - platforms without preadv
                chunk = self._pread(min(len(out) - done, 1 << 30), offset + done)
                n = len(chunk)
                out[done : done + n] = np.frombuffer(chunk, np.uint8)
            if n <= 0:
                raise CheckpointError(f"{self.path}: unexpected end of file reading {what}")
            done += n


class BytesSource(Source):
    """An in-memory buffer (a verified, possibly decompressed table block)."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.path = path  # for messages only
        self._data = data
        self.size = len(data)

    def read(self, offset: int, size: int, what: str = "a record") -> bytes:
        self._check_range(offset, size, what)
        return bytes(self._data[offset : offset + size])

    def readinto(
        self, offset: int, out: np.ndarray, what: str = "a tensor", crc: int | None = None
    ) -> int | None:
        self._check_range(offset, len(out), what)
        out[:] = np.frombuffer(self._data, np.uint8, len(out), offset)
        return None if crc is None else crc32c(out, crc)
