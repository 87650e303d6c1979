"""TF ``DataType`` enum values (``framework/types.proto``) and how each is stored and returned.

Numeric tensors are stored little-endian, in C order, with numpy's layout for the same type, so
they are read straight into numpy arrays. Two exceptions:

* ``bfloat16`` has no numpy type. It is stored as the upper 16 bits of a float32, so it is
  returned as float32, exactly (``CheckpointReader.tf_dtype`` still reports 'bfloat16'). The
  writers accept arrays whose dtype is named 'bfloat16' (``ml_dtypes.bfloat16``, as shipped
  with TensorFlow and JAX) without importing that package.
* ``string`` tensors are returned as numpy object arrays of ``bytes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError

__all__ = ["DType", "from_enum", "from_numpy"]


@dataclass(frozen=True)
class DType:
    """One TF dtype: its enum value, TF name and the little-endian numpy type of its bytes."""

    enum: int
    name: str
    storage: np.dtype | None  # None for strings

    @property
    def numpy(self) -> np.dtype:
        """The dtype of the arrays the reader returns."""
        if self.name == "bfloat16":
            return np.dtype(np.float32)
        return self.storage if self.storage is not None else np.dtype(object)

    @property
    def is_string(self) -> bool:
        return self.storage is None

    def to_numpy(self, stored: np.ndarray) -> np.ndarray:
        """Stored values (storage dtype, native byte order) as the returned dtype."""
        if self.name == "bfloat16":
            return (stored.astype(np.uint32) << 16).view(np.float32)
        return stored


_SUPPORTED = [
    DType(1, "float32", np.dtype("<f4")),
    DType(2, "float64", np.dtype("<f8")),
    DType(3, "int32", np.dtype("<i4")),
    DType(4, "uint8", np.dtype("u1")),
    DType(5, "int16", np.dtype("<i2")),
    DType(6, "int8", np.dtype("i1")),
    DType(7, "string", None),
    DType(8, "complex64", np.dtype("<c8")),
    DType(9, "int64", np.dtype("<i8")),
    DType(10, "bool", np.dtype("?")),
    DType(14, "bfloat16", np.dtype("<u2")),
    DType(17, "uint16", np.dtype("<u2")),
    DType(18, "complex128", np.dtype("<c16")),
    DType(19, "float16", np.dtype("<f2")),
    DType(22, "uint32", np.dtype("<u4")),
    DType(23, "uint64", np.dtype("<u8")),
]
BY_ENUM = {d.enum: d for d in _SUPPORTED}
BY_NAME = {d.name: d for d in _SUPPORTED}

# Known to TF but not readable into plain numpy arrays.
_UNSUPPORTED = {
    0: "invalid",
    11: "qint8",
    12: "quint8",
    13: "qint32",
    15: "qint16",
    16: "quint16",
    20: "resource",
    21: "variant",
    24: "float8_e5m2",
    25: "float8_e4m3fn",
    26: "float8_e4m3fnuz",
    27: "float8_e4m3b11fnuz",
    28: "float8_e5m2fnuz",
    29: "int4",
    30: "uint4",
}
_REF_OFFSET = 100  # DT_FLOAT_REF = 101 etc.: reference types of graph variables


def from_enum(value: int, what: str) -> DType:
    """The dtype of enum ``value``; CheckpointError naming ``what`` when it is not readable."""
    if value in BY_ENUM:
        return BY_ENUM[value]
    if value - _REF_OFFSET in BY_ENUM:
        return BY_ENUM[value - _REF_OFFSET]
    if value in _UNSUPPORTED:
        raise CheckpointError(
            f"{what}: dtype {_UNSUPPORTED[value]} (TF enum {value}) is not supported; readable "
            f"dtypes are {', '.join(BY_NAME)}"
        )
    raise CheckpointError(
        f"{what}: unknown dtype (TF enum {value}); the file is corrupt or was written by a "
        "TensorFlow newer than this reader"
    )


def from_numpy(dtype: np.dtype) -> DType:
    """The TF dtype a writer stores an array of numpy ``dtype`` as."""
    dtype = np.dtype(dtype)
    if dtype.name == "bfloat16" and dtype.itemsize == 2:
        return BY_NAME["bfloat16"]
    if dtype.kind in "OUS":
        return BY_NAME["string"]
    name = np.dtype(dtype.newbyteorder("=")).name if dtype.byteorder != "|" else dtype.name
    if name in BY_NAME and dtype.kind in "fiubc":
        return BY_NAME[name]
    raise TypeError(
        f"cannot store numpy dtype {dtype} in a TF checkpoint; supported: {', '.join(BY_NAME)}"
    )
