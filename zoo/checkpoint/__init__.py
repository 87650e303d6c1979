"""TensorFlow checkpoints (V1 TensorSlice tables and V2 tensor bundles), without TensorFlow.

* :func:`open_checkpoint` returns a lazy read-only ``{name: numpy array}`` mapping
  (:class:`CheckpointReader`).
* :func:`write_v2` and :func:`write_v1` write checkpoints that TensorFlow reads.

Modules: ``crc`` (masked crc32c), ``proto`` (protobuf wire format and messages), ``sstable``
(the table container), ``slices`` (partitioned variables and slice keys), ``dtypes``, ``v1``,
``v2``, ``reader``, ``writer``.
"""

from __future__ import annotations

from ..errors import CheckpointError, CheckpointKeyError, ChecksumError
from .reader import CheckpointReader, open_checkpoint
from .writer import write_v1, write_v2

__all__ = [
    "CheckpointError",
    "CheckpointKeyError",
    "CheckpointReader",
    "ChecksumError",
    "open_checkpoint",
    "write_v1",
    "write_v2",
]
