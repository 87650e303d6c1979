"""Helpers shared by the checkpoint tests: the format fixtures and a value-identity check."""

from __future__ import annotations

import hashlib
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
