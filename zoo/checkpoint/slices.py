"""Tensor slices: the pieces a partitioned variable is saved in, and the keys they are stored under.

Both formats store a slice of variable ``name`` under a binary key built with TF's "ordered code"
(``EncodeTensorNameSlice`` in TF's ``util/saved_tensor_slice_util.cc``, the codes in
``lib/strings/ordered_code.cc``): ``num(0) string(name) num(rank)`` followed by ``signed(start)
signed(length)`` per dimension, where a dimension taken whole is written as start 0, length -1.
The leading ``num(0)`` is a zero byte, so slice keys sort before every readable variable name.
V1 files store every tensor this way (a whole tensor is one full slice); V2 bundles only the
slices of partitioned variables (the full variable's entry lists them).
"""

from __future__ import annotations

import heapq
import itertools
import re
from dataclasses import dataclass

from ..errors import CheckpointError

__all__ = ["TensorSlice", "check_cover", "decode_slice_key", "encode_slice_key"]


@dataclass(frozen=True)
class TensorSlice:
    """Per dimension ``(start, length)``; ``length`` None means the whole dimension."""

    extents: tuple[tuple[int, int | None], ...]

    @classmethod
    def full(cls, rank: int) -> TensorSlice:
        return cls(((0, None),) * rank)

    def is_full(self) -> bool:
        return all(length is None for _, length in self.extents)

    def bounds(self, shape: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` per dimension of the full tensor ``shape`` (checked to fit)."""
        if len(self.extents) != len(shape):
            raise CheckpointError(f"slice {self} has rank {len(self.extents)}, tensor {shape}")
        out = []
        for (start, length), dim in zip(self.extents, shape):
            stop = dim if length is None else start + length
            if length is None:
                start = 0
            if not 0 <= start <= stop <= dim:
                raise CheckpointError(f"slice {self} does not fit a tensor of shape {list(shape)}")
            out.append((start, stop))
        return tuple(out)

    def index(self, shape: tuple[int, ...]) -> tuple[object, ...]:
        """The numpy index of this slice in the full tensor (with ``...``, so that indexing a
        0-d array gives a view, not a scalar)."""
        return (*(slice(start, stop) for start, stop in self.bounds(shape)), ...)

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(stop - start for start, stop in self.bounds(shape))

    def __str__(self) -> str:  # TF's notation: "0,4:-" (start,length per dim, "-" = whole)
        return ":".join("-" if n is None else f"{s},{n}" for s, n in self.extents) or "<scalar>"


def check_cover(shape: tuple[int, ...], slices: list[TensorSlice], what: str) -> None:
    """The slices must tile ``shape`` exactly: inside it, pairwise disjoint, nothing missing.

    O(n log n) for the layouts TF writes (its partitioners cut each dimension into intervals,
    so the slices form a grid); other layouts fall back to a sweep along the dimension with
    the most distinct intervals, comparing each slice with the ones it meets on that axis.
    """
    boxes = [s.bounds(shape) for s in slices]
    pair = _overlapping_pair(boxes)
    if pair is not None:
        first, second = sorted(pair)
        raise CheckpointError(f"{what}: slices {slices[first]} and {slices[second]} overlap")
    covered = sum(_volume(box) for box in boxes)
    total = _volume(tuple((0, d) for d in shape))
    if covered != total:
        listed = ", ".join(map(str, slices[:8])) + (", ..." if len(slices) > 8 else "")
        raise CheckpointError(
            f"{what}: its {len(slices)} saved slices ({listed}) cover {covered} of the "
            f"{total} elements of shape {list(shape)}; the checkpoint is incomplete"
        )


Box = tuple[tuple[int, int], ...]


def _overlapping_pair(boxes: list[Box]) -> tuple[int, int] | None:
    """Indexes of two boxes that share an element, or None."""
    live = [i for i, box in enumerate(boxes) if _volume(box)]  # empty boxes overlap nothing
    if len(live) < 2:
        return None
    rank = len(boxes[live[0]])
    axes = [sorted({boxes[i][d] for i in live}) for d in range(rank)]
    if all(all(a[1] <= b[0] for a, b in itertools.pairwise(ivs)) for ivs in axes):
        # a grid: per dimension, two slices' intervals are equal or disjoint, so two slices
        # overlap exactly when they are the same box
        seen: dict[Box, int] = {}
        for i in live:
            j = seen.setdefault(boxes[i], i)
            if j != i:
                return j, i
        return None
    axis = max(range(rank), key=lambda d: len(axes[d]))
    order = sorted(live, key=lambda i: boxes[i][axis][0])
    active: list[tuple[int, int]] = []  # heap of (stop on the axis, box index)
    for i in order:
        start = boxes[i][axis][0]
        while active and active[0][0] <= start:
            heapq.heappop(active)
        for _, j in active:
            if all(max(a0, b0) < min(a1, b1) for (a0, a1), (b0, b1) in zip(boxes[i], boxes[j])):
                return j, i
        heapq.heappush(active, (boxes[i][axis][1], i))
    return None


def _volume(box: tuple[tuple[int, int], ...]) -> int:
    n = 1
    for start, stop in box:
        n *= stop - start
    return n


# ----------------------------------------------------------------------------- ordered code


def _num_increasing(value: int) -> bytes:
    # one length byte, then the value big-endian without leading zero bytes
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


def _string(data: bytes) -> bytes:
    # 0x00 and 0xff are escaped (as 00 ff and ff 00); 00 01 terminates the string
    if b"\x00" not in data and b"\xff" not in data:
        return data + b"\x00\x01"
    return _SPECIAL_BYTE.sub(lambda m: _ESCAPES[m.group()], data) + b"\x00\x01"


_SPECIAL_BYTE = re.compile(rb"[\x00\xff]")
_ESCAPES = {b"\x00": b"\x00\xff", b"\xff": b"\xff\x00"}


def _signed_increasing(value: int) -> bytes:
    # Length n is given by the bits needed (n bytes hold [-2**(7n-1), 2**(7n-1))); the value is
    # written big-endian in two's complement over n bytes, and its top n bits are flipped, so
    # that non-negative numbers start with 1-bits and order correctly as bytes.
    if -64 <= value < 64:  # one byte: the common case (starts, lengths of whole dimensions)
        return bytes([(value & 0xFF) ^ 0x80])
    magnitude = ~value if value < 0 else value
    n = magnitude.bit_length() // 7 + 1
    header = ((1 << n) - 1) << (8 * n - n)
    return ((value % (1 << (8 * n))) ^ header).to_bytes(n, "big")


def encode_slice_key(name: str, slc: TensorSlice) -> bytes:
    """The table key of slice ``slc`` of variable ``name`` (TF's EncodeTensorNameSlice)."""
    out = [_num_increasing(0), _string(name.encode("utf-8", "surrogateescape"))]
    out.append(_num_increasing(len(slc.extents)))
    for start, length in slc.extents:
        out.append(_signed_increasing(0 if length is None else start))
        out.append(_signed_increasing(-1 if length is None else length))
    return b"".join(out)


def decode_slice_key(key: bytes) -> tuple[str, TensorSlice]:
    """Inverse of :func:`encode_slice_key` (for diagnostics and tests)."""
    pos = 0

    def fail(why: str) -> CheckpointError:
        return CheckpointError(f"malformed tensor slice key {key!r}: {why}")

    def num() -> int:
        nonlocal pos
        if pos >= len(key) or key[pos] > 8 or pos + 1 + key[pos] > len(key):
            raise fail("bad unsigned number")
        n = key[pos]
        value = int.from_bytes(key[pos + 1 : pos + 1 + n], "big")
        pos += 1 + n
        return value

    def signed() -> int:
        nonlocal pos
        if pos >= len(key):
            raise fail("missing signed number")
        flip = 0 if key[pos] & 0x80 else 0xFF
        # count the leading header bits (equal to the sign bit) over the first two bytes
        head = ((key[pos] ^ flip) << 8) | ((key[pos + 1] ^ flip) if pos + 1 < len(key) else 0)
        n = 0
        while n < 16 and head & (0x8000 >> n):
            n += 1
        if not 1 <= n <= 10 or pos + n > len(key):
            raise fail("bad signed number")
        raw = int.from_bytes(key[pos : pos + n], "big") ^ (((1 << n) - 1) << (8 * n - n))
        pos += n
        return raw - (1 << (8 * n)) if raw >> (8 * n - 1) else raw

    if num() != 0:
        raise fail("it does not start with 0")
    raw_name = bytearray()
    while True:
        special = _SPECIAL_BYTE.search(key, pos)
        if special is None or special.start() + 1 >= len(key):
            raise fail("unterminated name")
        end = special.start()
        raw_name += key[pos:end]
        pair = key[end : end + 2]
        if pair == b"\x00\x01":
            break
        if pair not in (b"\x00\xff", b"\xff\x00"):
            raise fail(f"bad escape {pair!r} in the name")
        raw_name += pair[:1]
        pos = end + 2
    pos = end + 2
    rank = num()
    extents = []
    for _ in range(rank):
        start, length = signed(), signed()
        extents.append((0, None) if length < 0 else (start, length))
    if pos != len(key):
        raise fail("trailing bytes")
    return bytes(raw_name).decode("utf-8", "surrogateescape"), TensorSlice(tuple(extents))
