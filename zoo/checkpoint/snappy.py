"""Snappy decompression of one table block, in pure Python (small blocks only).

TF's table writer compresses blocks with Snappy by default (``lib/io/table_options.h``); the
checkpoint writers turn that off (``tensor_bundle.cc``, ``tensor_slice_writer.cc``), but the
comments there say TF 1.1 shipped with compressed bundle indexes, so an index block of a 2017
checkpoint may be compressed. Those blocks are small, so a simple decoder is fast enough.
Format (google/snappy ``format_description.txt``): a varint uncompressed length, then elements
whose tag's low two bits say literal (0) or copy with a 1-, 2- or 4-byte offset (1, 2, 3).
"""

from __future__ import annotations

__all__ = ["decompress"]


class SnappyError(ValueError):
    """Malformed Snappy data."""


def decompress(data: bytes) -> bytes:
    try:
        return _decompress(data)
    except IndexError:
        raise SnappyError("the compressed data ends in the middle of an element") from None


def _decompress(data: bytes) -> bytes:
    length, pos = _varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal; lengths >= 61 follow the tag in 1-4 bytes
            n = tag >> 2
            if n >= 60:
                width = n - 59
                n = int.from_bytes(data[pos : pos + width], "little")
                pos += width
            n += 1
            if pos + n > len(data):
                raise SnappyError("literal runs past the end of the block")
            out += data[pos : pos + n]
            pos += n
            if len(out) > length:
                raise SnappyError(f"decoded more than the {length} bytes the header declares")
            continue
        if kind == 1:
            n = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            width = 2 if kind == 2 else 4
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        if not 0 < offset <= len(out):
            raise SnappyError(f"copy offset {offset} outside the {len(out)} bytes decoded")
        # a copy may overlap the bytes it produces: then it repeats the last `offset` bytes
        pattern = out[len(out) - offset : len(out) - offset + n]
        out += (pattern * (n // len(pattern) + 1))[:n]
        if len(out) > length:  # a crafted block cannot make us build more than it declares
            raise SnappyError(f"decoded more than the {length} bytes the header declares")
    if len(out) != length:
        raise SnappyError(f"decoded {len(out)} bytes, the header says {length}")
    return bytes(out)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 35:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise SnappyError("bad length header")
