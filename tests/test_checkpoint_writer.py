"""write_v2 / write_v1 → zoo.open_checkpoint round trips (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest
from _checkpoints import assert_identical, fixture_prefix

import zoo
from zoo.checkpoint import sstable, write_v1, write_v2

WRITERS = {"v1": write_v1, "v2": write_v2}


def all_dtypes(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One tensor per dtype, with the values that break careless readers."""
    f32 = np.array([0.0, -0.0, np.inf, -np.inf, 1e-45, 3.4e38], np.float32)
    nan = np.array([0x7FC00001, 0xFFBFFFFF], np.uint32).view(np.float32)  # NaN payloads
    ints = {
        t: np.array([np.iinfo(t).min, -1 if np.iinfo(t).min else 1, 0, np.iinfo(t).max], t)
        for t in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
    }
    return {
        "f/float32": np.concatenate([f32, nan]).reshape(2, 4),
        "f/float16": rng.standard_normal((3, 1, 2)).astype(np.float16),
        "f/float16_special": np.array([65504, -0.0, 6e-8, np.inf], np.float16),
        "f/float64": np.array([np.pi, -0.0, 5e-324, np.nan]),
        "c/complex64": (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(np.complex64),
        "c/complex128": np.array([[1 - 2j, np.nan + 0j]]),
        **{f"i/{np.dtype(t).name}": v for t, v in ints.items()},
        "b/bool": np.array([[True, False, True]]),
        "s/scalar_f32": np.float32(-2.5),
        "s/scalar_i64": np.int64(123456789012),
        "s/scalar_bool": np.bool_(True),
        "e/empty_2x0": np.zeros((2, 0), np.float32),
        "e/empty_int": np.zeros((0,), np.int32),
        "e/zero_dims": np.zeros((0, 3, 0), np.float64),
        "a/b/c/d/deeply/nested/scope": rng.standard_normal((1, 1, 1, 1, 1)).astype(np.float32),
    }


def strings() -> dict[str, np.ndarray]:
    return {
        "t/scalar": np.array(b"tf-slim \xc3\xa9", object),
        "t/vector": np.array([b"", b"a", b"\x00\xff binary", b"x" * 300], object),
        "t/from_str": np.array([["caf\u00e9", "b"], ["", "long " * 50]]),
        "t/empty": np.zeros((0, 2), object),
    }


def big() -> dict[str, np.ndarray]:
    # > 2 * 256 KiB: its own table block in V1 (TF's rule), read lazily and checked in place
    rng = np.random.default_rng(1)
    return {
        "big/weights": rng.standard_normal((64, 3, 3, 1200)).astype(np.float32),
        "big/bias": rng.standard_normal(1200).astype(np.float32),
        "small/after": np.arange(7, dtype=np.int32),
    }


def round_trip(tmp_path, fmt: str, tensors: dict[str, np.ndarray]) -> None:
    path = WRITERS[fmt](tmp_path / "model.ckpt", tensors)
    with zoo.open_checkpoint(path) as reader:
        assert reader.format == fmt
        assert list(reader) == sorted(tensors)
        for name, want in tensors.items():
            want = np.asarray(want)
            if want.dtype.kind in "US":
                want = np.vectorize(
                    lambda s: s.encode() if isinstance(s, str) else s, otypes=[object]
                )(want)
            assert reader.shape(name) == want.shape
            assert reader.dtype(name) == want.dtype
            assert_identical(reader[name], want, name)


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_round_trip_all_dtypes(tmp_path, fmt: str) -> None:
    round_trip(tmp_path, fmt, all_dtypes(np.random.default_rng(0)))


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_round_trip_strings(tmp_path, fmt: str) -> None:
    round_trip(tmp_path, fmt, strings())


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_round_trip_large_tensor(tmp_path, fmt: str) -> None:
    round_trip(tmp_path, fmt, big())


def test_big_v1_record_gets_its_own_block(tmp_path) -> None:
    path = write_v1(tmp_path / "model.ckpt", big())
    with zoo.open_checkpoint(path) as reader:
        table = sstable.Table(reader._backend._sources[0])
        sizes = [h.size for h in table._index_handles]
    assert len(sizes) == 3  # meta + bias | weights | small record
    assert max(sizes) > big()["big/weights"].nbytes > 4 * sstable.BLOCK_SIZE


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_rewrite_of_a_read_checkpoint_is_byte_identical(tmp_path, fmt: str) -> None:
    """The TF-written fixtures, read and written back, give the same bytes."""
    fixture = fixture_prefix(f"{fmt}_single")
    with zoo.open_checkpoint(fixture) as reader:
        tensors = dict(reader.items())
    out = WRITERS[fmt](tmp_path / "model.ckpt", tensors)
    suffixes = [".index", ".data-00000-of-00001"] if fmt == "v2" else [""]
    for suffix in suffixes:
        mine = out.with_name(out.name + suffix).read_bytes()
        theirs = fixture.with_name(fixture.name + suffix).read_bytes()
        assert mine == theirs, suffix


def test_v1_float16_rewrite_is_byte_identical(tmp_path) -> None:
    fixture = fixture_prefix("v1_float16")
    with zoo.open_checkpoint(fixture) as reader:
        out = write_v1(tmp_path / "model.ckpt", dict(reader.items()))
    assert out.read_bytes() == fixture.read_bytes()


@pytest.mark.tf
@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_round_trip_bfloat16(tmp_path, fmt: str, tensorflow) -> None:
    import ml_dtypes  # shipped with TensorFlow

    bits = np.array([0x3F80, 0x8000, 0x7F80, 0x0001, 0xC2F7], np.uint16)  # 1, -0, inf, tiny, ..
    value = bits.view(ml_dtypes.bfloat16).reshape(1, 5)
    path = WRITERS[fmt](tmp_path / "model.ckpt", {"bf16": value})
    with zoo.open_checkpoint(path) as reader:
        assert reader.tf_dtype("bf16") == "bfloat16"
        assert reader.dtype("bf16") == np.float32
        got = reader["bf16"]
    want = (bits.astype(np.uint32) << 16).view(np.float32).reshape(1, 5)
    assert_identical(got, want)


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_refuses_to_overwrite(tmp_path, fmt: str) -> None:
    first = {"x": np.ones(3, np.float32)}
    second = {"y": np.zeros(2, np.int64)}
    path = WRITERS[fmt](tmp_path / "model.ckpt", first)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        WRITERS[fmt](tmp_path / "model.ckpt", second)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    WRITERS[fmt](tmp_path / "model.ckpt", second, overwrite=True)
    with zoo.open_checkpoint(path) as reader:
        assert list(reader) == ["y"]
    assert len(list(tmp_path.iterdir())) == len(before)


def test_overwrite_removes_stale_shards(tmp_path) -> None:
    stale = tmp_path / "model.ckpt.data-00001-of-00002"
    stale.write_bytes(b"old")
    (tmp_path / "model.ckpt.data-00000-of-00002").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_v2(tmp_path / "model.ckpt", {"x": np.ones(1)})
    write_v2(tmp_path / "model.ckpt", {"x": np.ones(1)}, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.ckpt.data-00000-of-00001",
        "model.ckpt.index",
    ]


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_failed_write_leaves_nothing(tmp_path, fmt: str, monkeypatch) -> None:
    def fail(self):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(sstable.TableWriter, "finish", fail)
    with pytest.raises(OSError, match="disk full"):
        WRITERS[fmt](tmp_path / "sub" / "model.ckpt", big())
    assert list((tmp_path / "sub").iterdir()) == []


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_rejects_unstorable_values(tmp_path, fmt: str) -> None:
    with pytest.raises(TypeError, match="datetime64"):
        WRITERS[fmt](tmp_path / "a.ckpt", {"t": np.array(["2020-01-01"], "datetime64[D]")})
    with pytest.raises(TypeError, match="bytes or str"):
        WRITERS[fmt](tmp_path / "b.ckpt", {"t": np.array([1, "a"], object)})
    with pytest.raises(ValueError, match="non-empty"):
        WRITERS[fmt](tmp_path / "c.ckpt", {"": np.ones(1)})
    assert list(tmp_path.iterdir()) == []


def test_v1_blocks_of_many_records(tmp_path) -> None:
    """Blocks of many small records (256 KiB each): found through their restart points."""
    rng = np.random.default_rng(5)
    tensors = {
        f"layer_{i:03d}/beta": rng.standard_normal(300).astype(np.float32) for i in range(600)
    }
    path = write_v1(tmp_path / "model.ckpt", tensors)
    with zoo.open_checkpoint(path) as reader:
        blocks = sstable.Table(reader._backend._sources[0])._index_handles
        assert len(blocks) >= 3 and min(b.size for b in blocks) > 200_000
        for name in reversed(list(tensors)):  # out of order: every lookup searches its block
            assert_identical(reader[name], tensors[name], name)
