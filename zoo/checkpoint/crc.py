"""CRC-32C (Castagnoli) as TensorFlow stores it: "masked".

TF (after LevelDB, see ``crc32c.h`` in TF's ``lib/hash``) never stores a raw CRC next to the data
it covers: a CRC of a string that itself contains CRCs is weak, so the stored value is rotated
right by 15 bits and offset by a constant. Both the table block trailers and the V2 bundle
entries (``BundleEntryProto.crc32c``) hold masked values.
"""

from __future__ import annotations

import google_crc32c
import numpy as np

__all__ = ["crc32c", "mask", "unmask"]

_MASK_DELTA = 0xA282EAD8


def crc32c(data: bytes | bytearray | memoryview | np.ndarray, crc: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``crc`` (so chunks can be checksummed in turn)."""
    if not isinstance(data, (bytes, np.ndarray)):
        # google_crc32c accepts bytes and numpy arrays, not memoryviews or bytearrays;
        # np.frombuffer wraps them without copying.
        data = np.frombuffer(data, dtype=np.uint8)
    elif isinstance(data, np.ndarray) and not data.flags.c_contiguous:
        data = np.ascontiguousarray(data)
    return google_crc32c.extend(crc, data)


def mask(crc: int) -> int:
    """The stored form of a CRC: rotate right by 15 bits, add a constant (mod 2**32)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask(masked: int) -> int:
    """Inverse of :func:`mask`."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF
