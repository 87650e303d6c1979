"""What a declared shape may claim: checked against the bytes the checkpoint holds, before
anything is allocated.

An index or table of contents declares each tensor's shape and dtype; a corrupt or crafted one
can declare a rank numpy cannot represent, a shape whose size overflows, or billions of elements
in a file of a few hundred bytes. Every stored element takes at least ``min_bytes`` bytes of the
checkpoint's files (its itemsize for raw and fixed-width values, one byte for a varint or a V2
string length, two for a V1 string field), so a shape needing more than the files hold is
refused before the output array exists: a file of N bytes never makes the reader allocate much
more than what N bytes can legitimately describe.
"""

from __future__ import annotations

import math

from ..errors import CheckpointError

__all__ = ["MAX_RANK", "check_declared"]

MAX_RANK = 32  # numpy's limit is 32 (numpy 1) or 64 (numpy 2); slim's tensors have rank <= 4
_MAX_EMPTY = 1 << 40  # an empty tensor's other dimensions: numpy rejects sizes near 2**63


def check_declared(shape: tuple[int, ...], min_bytes: int, available: int, what: str) -> int:
    """The element count of ``shape``, once it is known to fit in ``available`` file bytes.

    Raises:
        CheckpointError: naming ``what`` (file and variable), for a rank over ``MAX_RANK``, a
            negative dimension, or a shape needing more bytes than the files hold.
    """
    if len(shape) > MAX_RANK:
        raise CheckpointError(
            f"{what}: declared with rank {len(shape)}; a tensor has at most {MAX_RANK} "
            "dimensions here (slim's have 4 or fewer): corrupt or hostile checkpoint"
        )
    if any(d < 0 for d in shape):
        raise CheckpointError(f"{what}: declared shape {list(shape)} has a negative dimension")
    count = math.prod(shape)
    if count == 0:
        others = math.prod(d for d in shape if d)
        if others > _MAX_EMPTY:
            raise CheckpointError(
                f"{what}: declared as the empty shape {list(shape)}, whose other dimensions "
                f"multiply to {others} (over 2**40): corrupt or hostile checkpoint"
            )
        return 0
    if count * min_bytes > available:
        raise CheckpointError(
            f"{what}: declared shape {list(shape)} has {count} elements, which take at least "
            f"{count * min_bytes} bytes, but the checkpoint's files hold {available} bytes: "
            "corrupt or hostile checkpoint (truncated, or its shape was altered)"
        )
    return count
