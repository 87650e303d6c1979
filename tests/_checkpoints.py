"""Helpers shared by the checkpoint tests: the format fixtures and a value-identity check."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
from conftest import REFERENCE

FIXTURES = REFERENCE / "ckpt_formats"


def fixture_names() -> list[str]:
    return sorted(p.name[: -len(".expected.json")] for p in FIXTURES.glob("*.expected.json"))


def fixture_expected(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.expected.json").read_text())


def fixture_prefix(name: str) -> Path:
    return FIXTURES / name / "model.ckpt"


def value_bytes(value: np.ndarray) -> bytes:
    """Little-endian C-order bytes of an array (the strings joined for object arrays)."""
    if value.dtype == object:
        return b"".join(value.reshape(-1).tolist())
    return np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes()


def sha256(value: np.ndarray) -> str:
    return hashlib.sha256(value_bytes(value)).hexdigest()


def assert_identical(got: np.ndarray, want: np.ndarray, name: str = "") -> None:
    """Same dtype, shape and bytes (so NaN payloads and signed zeros count)."""
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
    assert got.shape == want.shape, f"{name}: shape {got.shape}, expected {want.shape}"
    if want.dtype == object:
        assert got.reshape(-1).tolist() == want.reshape(-1).tolist(), name
    else:
        assert value_bytes(got) == value_bytes(want), f"{name}: values differ"


def rewrite_index(prefix: Path, change: dict[str, dict[str, Any]]) -> None:
    """Rewrite a V2 index with fields of some entries replaced (e.g. ``{"w": {"dtype": 99}}``)."""
    from zoo.checkpoint import proto, sstable
    from zoo.checkpoint.source import FileSource

    index = prefix.with_name(prefix.name + ".index")
    source = FileSource(index)
    items = list(sstable.Table(source).items())
    source.close()
    with open(index, "wb") as f:
        table = sstable.TableWriter(f)
        for key, value in items:
            name = key.decode("utf-8", "surrogateescape")
            if name in change:
                entry = proto.BundleEntry.decode(value)
                value = proto.BundleEntry(**{**entry.__dict__, **change[name]}).encode()
            table.add(key, value)
        table.finish()


def rewrite_v1_meta(path: Path, change: dict[str, dict[str, Any]]) -> None:
    """Rewrite a V1 file's table of contents with fields of some tensors replaced (e.g.
    ``{"w": {"shape": (2**40,)}}``); every block checksum stays valid."""
    from zoo.checkpoint import proto, sstable
    from zoo.checkpoint.source import FileSource

    source = FileSource(path)
    items = list(sstable.Table(source).items())
    source.close()
    tensors, versions = proto.decode_saved_meta(items[0][1])
    tensors = [
        proto.SavedSliceMeta(**{**t.__dict__, **change[t.name]}) if t.name in change else t
        for t in tensors
    ]
    items[0] = (b"", proto.encode_saved_meta(tensors, versions))
    with open(path, "wb") as f:
        table = sstable.TableWriter(f)
        for key, value in items:
            table.add(key, value)
        table.finish()


def write_partitioned_v2(prefix: Path, name: str, value: np.ndarray, parts: int) -> None:
    """A V2 checkpoint holding ``value`` as a variable partitioned along axis 0 into ``parts``
    slices (as ``tf.fixed_size_partitioner`` saves it: a full entry listing the slices, and an
    entry per slice under its slice key)."""
    from zoo.checkpoint import proto, sstable
    from zoo.checkpoint.crc import crc32c, mask
    from zoo.checkpoint.dtypes import from_numpy
    from zoo.checkpoint.slices import TensorSlice, encode_slice_key

    dtype = from_numpy(value.dtype).enum
    bounds = np.linspace(0, value.shape[0], parts + 1).astype(int)
    rest = ((0, None),) * (value.ndim - 1)
    slices = [TensorSlice(((int(a), int(b - a)), *rest)) for a, b in itertools.pairwise(bounds)]
    entries, offset = [], 0
    with open(prefix.with_name(prefix.name + ".data-00000-of-00001"), "wb") as data:
        for slc, a, b in zip(slices, bounds, bounds[1:]):
            raw = np.ascontiguousarray(value[a:b]).tobytes()
            data.write(raw)
            entry = proto.BundleEntry(dtype, (int(b - a), *value.shape[1:]), 0, offset, len(raw))
            entries.append(
                (
                    encode_slice_key(name, slc),
                    entry.__class__(**{**entry.__dict__, "crc32c": mask(crc32c(raw))}),
                )
            )
            offset += len(raw)
    full = proto.BundleEntry(dtype, value.shape, slices=tuple(slices))
    header = proto.BundleHeader(1, 0, proto.VersionDef(1, 0))
    with open(prefix.with_name(prefix.name + ".index"), "wb") as f:
        table = sstable.TableWriter(f)
        table.add(b"", header.encode())
        for key, entry in sorted(entries):
            table.add(key, entry.encode())
        table.add(name.encode(), full.encode())
        table.finish()
