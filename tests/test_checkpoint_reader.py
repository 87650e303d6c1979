"""zoo.open_checkpoint: the paths it accepts and the Mapping it returns."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pytest
from _checkpoints import (
    FIXTURES,
    assert_identical,
    fixture_expected,
    fixture_prefix,
    rewrite_index,
)

import zoo
from zoo.checkpoint import slices, write_v1, write_v2


@pytest.mark.parametrize(
    ("given", "fmt"),
    [
        ("v2_single/model.ckpt", "v2"),
        ("v2_single/model.ckpt.index", "v2"),
        ("v2_single/model.ckpt.data-00000-of-00001", "v2"),
        ("v2_sharded/model.ckpt.data-00001-of-00002", "v2"),
        ("v2_single", "v2"),
        ("v1_single/model.ckpt", "v1"),
        ("v1_single", "v1"),
    ],
)
def test_accepted_paths(given: str, fmt: str) -> None:
    fixture = given.split("/")[0]
    with zoo.open_checkpoint(str(FIXTURES / given)) as reader:  # str and Path both work
        assert reader.format == fmt
        assert list(reader) == sorted(fixture_expected(fixture)["variables"])
        assert reader.path == fixture_prefix(fixture)
        assert all(p.is_file() for p in reader.files)


def test_sharded_v1_files_are_merged(tmp_path) -> None:
    a, b = {"a/x": np.arange(3.0)}, {"b/y": np.ones((2, 2), np.int32), "b/z": np.float16(1)}
    write_v1(tmp_path / "model.ckpt-00000-of-00002", a)
    write_v1(tmp_path / "model.ckpt-00001-of-00002", b)
    for path in (tmp_path / "model.ckpt", tmp_path):
        with zoo.open_checkpoint(path) as reader:
            assert reader.format == "v1" and len(reader.files) == 2
            assert list(reader) == ["a/x", "b/y", "b/z"]
            for name, want in {**a, **b}.items():
                assert_identical(reader[name], np.asarray(want), name)


def test_directory_ignores_other_files(tmp_path) -> None:
    write_v2(tmp_path / "model.ckpt", {"x": np.ones(2)})
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt"\n')
    (tmp_path / "model.ckpt.meta").write_bytes(b"\x0a\x00")
    (tmp_path / "eval.graph").write_bytes(b"\x0a\x00")
    with zoo.open_checkpoint(tmp_path) as reader:
        assert list(reader) == ["x"] and reader.path == tmp_path / "model.ckpt"


def test_is_a_read_only_mapping() -> None:
    reader = zoo.open_checkpoint(fixture_prefix("v2_sharded"))
    assert isinstance(reader, Mapping)
    assert len(reader) == 16 and len(reader.keys()) == 16
    assert "part/embedding" in reader and 5 not in reader
    assert reader.get("part/embedding").shape == (10, 4)
    everything = dict(reader)
    assert sorted(everything) == list(reader)
    assert [k for k, _ in reader.items()] == list(reader)
    with pytest.raises(TypeError):
        reader["x"] = np.ones(1)  # type: ignore[index]
    assert "v2" in repr(reader) and "16 variables" in repr(reader)
    reader.close()


def test_metadata_without_reading_data(monkeypatch) -> None:
    read = []
    real_pread, real_preadv = os.pread, os.preadv
    monkeypatch.setattr(os, "pread", lambda fd, n, off: read.append(n) or real_pread(fd, n, off))
    monkeypatch.setattr(os, "preadv", lambda fd, b, off: read.append(-1) or real_preadv(fd, b, off))
    with zoo.open_checkpoint(fixture_prefix("v2_single")) as reader:
        index_reads = len(read)
        assert reader.shape("model/conv1/weights") == (3, 3, 64, 32)
        assert reader.dtype("model/conv1/weights") == np.float32
        assert reader.tf_dtype("model/block1/unit_1/bn/gamma") == "float16"
        assert reader.dtype("info/description") == np.dtype(object)
        assert len(read) == index_reads  # nothing read beyond the index
        reader["model/conv1/weights"]
        assert len(read) > index_reads


def test_returned_arrays_are_owned_and_writable() -> None:
    with zoo.open_checkpoint(fixture_prefix("v1_single")) as reader:
        a = reader["model/conv1/weights"]
        b = reader["model/conv1/weights"]
    assert a is not b and not np.shares_memory(a, b)
    a[...] = 0  # the caller may modify it
    assert np.any(b != 0)
    assert a.base is None or a.base.nbytes == a.nbytes  # no hidden larger buffer


def test_bfloat16_is_returned_as_exact_float32(tmp_path) -> None:
    """Without ml_dtypes: a bfloat16 entry written by hand (the raw bits are known)."""
    bits = np.array([0x3F80, 0xBF00, 0x7FC1, 0x0001], "<u2")
    prefix = write_v2(tmp_path / "model.ckpt", {"w": bits})
    rewrite_index(prefix, {"w": {"dtype": 14}})  # DT_BFLOAT16
    with zoo.open_checkpoint(prefix) as reader:
        assert reader.tf_dtype("w") == "bfloat16" and reader.dtype("w") == np.float32
        got = reader["w"]
    assert got.dtype == np.float32
    assert got.view(np.uint32).tolist() == [int(b) << 16 for b in bits]
    assert got[:2].tolist() == [1.0, -0.5]


def test_partitioned_variables_are_reassembled() -> None:
    with (
        zoo.open_checkpoint(fixture_prefix("v2_sharded")) as v2,
        zoo.open_checkpoint(fixture_prefix("v1_partitioned")) as v1,
    ):
        for name in ("part/embedding", "part/fc/weights"):
            assert_identical(v1[name], v2[name], name)
        assert not any(k.startswith("\0") for k in v2)  # the slices are not variables


def test_slice_keys_round_trip() -> None:
    cases = [
        ("a", slices.TensorSlice(())),
        ("part/embedding", slices.TensorSlice(((0, 4), (0, None)))),
        ("n\x00\xffame", slices.TensorSlice(((2**40, 7), (-1, 3), (0, None)))),
    ]
    for name, slc in cases:
        assert slices.decode_slice_key(slices.encode_slice_key(name, slc)) == (name, slc)
    # the key TF wrote for the full slice of a 1-d tensor (the first record of v1_float16)
    key = slices.encode_slice_key("model/block1/unit_1/bn/gamma", slices.TensorSlice.full(1))
    assert key in (FIXTURES / "v1_float16" / "model.ckpt").read_bytes()
    signed = [slices._signed_increasing(v) for v in (-(2**63), -65, -64, -1, 0, 63, 64, 2**62)]
    assert signed == sorted(signed)  # the point of "ordered" codes


@pytest.mark.parametrize("fixture", ["v1_partitioned", "v2_sharded", "v1_single"])
def test_one_reader_shared_by_threads(fixture: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with zoo.open_checkpoint(fixture_prefix(fixture)) as reader:
        names = list(reader) * 20
        with ThreadPoolExecutor(4) as pool:
            values = list(pool.map(reader.__getitem__, names))
        for name, value in zip(names, values):
            assert_identical(value, reader[name], name)


def test_big_endian_v2_bundle(tmp_path) -> None:
    """A bundle written on a big-endian machine (header endianness BIG): values are swapped."""
    from zoo.checkpoint import proto, sstable
    from zoo.checkpoint.source import FileSource

    tensors = {
        "f32": np.array([1.5, -0.0, np.inf], np.float32),
        "i64": np.array([[1, -2], [3, 2**40]], np.int64),
        "c64": np.array([1 + 2j], np.complex64),
        "u8": np.array([1, 2, 255], np.uint8),
    }
    # the bytes a big-endian machine writes, given to the writer as opaque little-endian data
    raw = {k: v.astype(v.dtype.newbyteorder(">")).view(v.dtype) for k, v in tensors.items()}
    prefix = write_v2(tmp_path / "model.ckpt", raw)
    index = prefix.with_name("model.ckpt.index")
    source = FileSource(index)
    items = list(sstable.Table(source).items())
    source.close()
    with open(index, "wb") as f:
        table = sstable.TableWriter(f)
        table.add(b"", proto.BundleHeader(1, 1, proto.VersionDef(1)).encode())
        for key, value in items[1:]:
            table.add(key, value)
        table.finish()
    with zoo.open_checkpoint(prefix) as reader:
        for name, want in tensors.items():
            assert_identical(reader[name], want, name)
