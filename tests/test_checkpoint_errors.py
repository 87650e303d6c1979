"""Damaged and unusual checkpoints: every failure is a CheckpointError naming file and variable.

Damaged files are made from copies of the reference fixtures in tmp_path (tests/reference is
never modified).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from _checkpoints import FIXTURES, fixture_expected, fixture_prefix, rewrite_index, sha256

import zoo
from zoo.checkpoint import proto, snappy, sstable, write_v1, write_v2
from zoo.checkpoint.crc import crc32c, mask
from zoo.checkpoint.source import FileSource
from zoo.errors import CheckpointError, CheckpointKeyError, ChecksumError


def copy_fixture(name: str, tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / name, tmp_path / name)
    return tmp_path / name / "model.ckpt"


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def assert_reads_as_expected(reader: zoo.checkpoint.CheckpointReader, fixture: str, name: str):
    assert sha256(reader[name]) == fixture_expected(fixture)["variables"][name]["sha256"], name


# ----------------------------------------------------------------------------- damaged data


def test_v2_flipped_bit_fails_only_its_tensor() -> None:
    fixture = "v2_corrupt_flipped"
    damaged = fixture_expected(fixture)["corruption"]["inside_variable"]
    with zoo.open_checkpoint(fixture_prefix(fixture)) as reader:
        with pytest.raises(ChecksumError) as info:
            reader[damaged]
        message = str(info.value)
        assert "model.ckpt.data-00000-of-00001" in message and repr(damaged) in message
        assert "crc32c" in message
        for name in reader:
            if name != damaged:
                assert_reads_as_expected(reader, fixture, name)


def test_v2_truncated_data_fails_where_tf_fails() -> None:
    fixture = "v2_truncated"
    results = fixture_expected(fixture)["tensorflow_read_result"]
    with zoo.open_checkpoint(fixture_prefix(fixture)) as reader:
        for name, result in results.items():
            if result == "ok":
                assert_reads_as_expected(reader, fixture, name)
                continue
            with pytest.raises(CheckpointError, match="truncated") as info:
                reader[name]
            assert repr(name) in str(info.value) and "data-00000-of-00001" in str(info.value)


def test_v2_corrupt_index_block(tmp_path) -> None:
    prefix = copy_fixture("v2_single", tmp_path)
    flip_byte(prefix.with_name("model.ckpt.index"), 40)  # inside the first data block
    with pytest.raises(ChecksumError, match=r"model\.ckpt\.index.*crc32c"):
        zoo.open_checkpoint(prefix)


def test_v1_flipped_bit_fails_its_block(tmp_path) -> None:
    """V1 records have no checksum of their own: the crc32c of their table block catches the
    damage. This small file is one block (table of contents included), so opening fails."""
    path = copy_fixture("v1_single", tmp_path)
    data = path.read_bytes()
    flip_byte(path, data.rindex(b"model/conv1/weights\x12") + 2000)  # inside its values
    with pytest.raises(ChecksumError) as info:
        zoo.open_checkpoint(path)
    assert str(path) in str(info.value) and "block at bytes 0.." in str(info.value)


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_large_record_corruption_is_detected(tmp_path, fmt: str) -> None:
    """A tensor in a block too big to cache is checked against the bytes actually read."""
    big = np.arange(600_000, dtype=np.float32)
    path = (write_v1 if fmt == "v1" else write_v2)(tmp_path / "m.ckpt", {"big": big, "x": big[:3]})
    target = path if fmt == "v1" else path.with_name("m.ckpt.data-00000-of-00001")
    flip_byte(target, target.stat().st_size // 2)
    with zoo.open_checkpoint(path) as reader:
        assert reader["x"].tolist() == [0, 1, 2]
        with pytest.raises(ChecksumError, match="'big'"):
            reader["big"]


def test_v1_truncated(tmp_path) -> None:
    path = copy_fixture("v1_single", tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{path}.*magic"):
        zoo.open_checkpoint(path)


@pytest.mark.parametrize("fixture", ["v1_single", "v2_single"])
def test_wrong_magic(tmp_path, fixture: str) -> None:
    path = copy_fixture(fixture, tmp_path)
    table = path if fixture.startswith("v1") else path.with_name("model.ckpt.index")
    flip_byte(table, table.stat().st_size - 1)
    with pytest.raises(CheckpointError) as info:
        zoo.open_checkpoint(path)
    message = str(info.value)
    assert (
        str(table) in message
        and "0xdb4775248b80fb57" in message
        and "0xda4775248b80fb57" in message
    )


def test_not_a_checkpoint(tmp_path) -> None:
    path = tmp_path / "notes.ckpt"
    path.write_text("hello " * 20)
    with pytest.raises(CheckpointError, match="not a TF checkpoint"):
        zoo.open_checkpoint(path)
    tiny = tmp_path / "tiny.ckpt"
    tiny.write_bytes(b"\0")
    with pytest.raises(CheckpointError, match="fewer than the 48-byte"):
        zoo.open_checkpoint(tiny)


def test_v2_index_opened_as_v1_is_explained(tmp_path) -> None:
    prefix = copy_fixture("v2_single", tmp_path)
    renamed = prefix.with_name("model.idx")
    prefix.with_name("model.ckpt.index").rename(renamed)
    with pytest.raises(CheckpointError, match=r"not a V1 checkpoint.*prefix"):
        zoo.open_checkpoint(renamed)


# ----------------------------------------------------------------------------- missing files


def test_missing_shard(tmp_path) -> None:
    prefix = copy_fixture("v2_sharded", tmp_path)
    missing = prefix.with_name("model.ckpt.data-00001-of-00002")
    missing.unlink()
    with pytest.raises(CheckpointError) as info:
        zoo.open_checkpoint(prefix)
    assert str(missing) in str(info.value) and "2 shards" in str(info.value)


def test_data_file_without_index(tmp_path) -> None:
    prefix = copy_fixture("v2_single", tmp_path)
    prefix.with_name("model.ckpt.index").unlink()
    data = prefix.with_name("model.ckpt.data-00000-of-00001")
    with pytest.raises(CheckpointError, match=r"index model\.ckpt\.index is missing"):
        zoo.open_checkpoint(data)


def test_nonexistent_path(tmp_path) -> None:
    path = tmp_path / "nowhere" / "model.ckpt"
    with pytest.raises(CheckpointError) as info:
        zoo.open_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "model.ckpt.index" in message and "does not exist" in message


def test_directory_without_checkpoint(tmp_path) -> None:
    (tmp_path / "README.txt").write_text("no weights here")
    (tmp_path / "eval.graph").write_bytes(b"\x0a\x00")
    with pytest.raises(CheckpointError) as info:
        zoo.open_checkpoint(tmp_path)
    assert "no TF checkpoint" in str(info.value) and "README.txt" in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="found nothing"):
        zoo.open_checkpoint(empty)


def test_directory_with_two_checkpoints(tmp_path) -> None:
    write_v2(tmp_path / "model.ckpt-1000", {"x": np.ones(1)})
    write_v1(tmp_path / "vgg_16.ckpt", {"x": np.ones(1)})
    with pytest.raises(CheckpointError) as info:
        zoo.open_checkpoint(tmp_path)
    message = str(info.value)
    assert "2 checkpoints" in message and "model.ckpt-1000" in message and "vgg_16.ckpt" in message


def test_missing_v1_shard(tmp_path) -> None:
    write_v1(tmp_path / "model.ckpt-00000-of-00003", {"a": np.ones(1)})
    write_v1(tmp_path / "model.ckpt-00002-of-00003", {"b": np.ones(1)})
    with pytest.raises(CheckpointError, match=r"missing.*model\.ckpt-00001-of-00003"):
        zoo.open_checkpoint(tmp_path / "model.ckpt")


# ----------------------------------------------------------------------------- dtypes, keys


@pytest.mark.parametrize(("enum", "message"), [(99, "unknown dtype"), (21, "variant")])
def test_unreadable_dtype(tmp_path, enum: int, message: str) -> None:
    prefix = copy_fixture("v2_single", tmp_path)
    rewrite_index(prefix, {"model/conv1/biases": {"dtype": enum}})
    with zoo.open_checkpoint(prefix) as reader:
        assert "model/conv1/biases" in reader
        assert reader.shape("model/conv1/biases") == (32,)
        for read in (reader.dtype, reader.tf_dtype, reader.__getitem__):
            with pytest.raises(CheckpointError, match=message) as info:
                read("model/conv1/biases")
            assert "model.ckpt.index" in str(info.value)
            assert "'model/conv1/biases'" in str(info.value)
        assert_reads_as_expected(reader, "v2_single", "model/conv1/weights")


def test_index_size_disagrees_with_shape(tmp_path) -> None:
    prefix = copy_fixture("v2_single", tmp_path)
    rewrite_index(prefix, {"model/conv1/biases": {"shape": (33,)}})
    with zoo.open_checkpoint(prefix) as reader:
        with pytest.raises(CheckpointError, match=r"'model/conv1/biases'.*needs 132"):
            reader["model/conv1/biases"]


def test_unknown_name_is_a_key_error_with_suggestions() -> None:
    with zoo.open_checkpoint(fixture_prefix("v2_single")) as reader:
        with pytest.raises(KeyError) as info:
            reader["model/conv1/weight"]
        assert isinstance(info.value, CheckpointKeyError)
        assert isinstance(info.value, CheckpointError)
        assert "Did you mean: 'model/conv1/weights'" in str(info.value)
        with pytest.raises(CheckpointKeyError):
            reader.shape("nope")
        assert reader.get("nope") is None
        assert "nope" not in reader


def test_closed_reader() -> None:
    reader = zoo.open_checkpoint(fixture_prefix("v1_single"))
    value = reader["global_step"]
    reader.close()
    reader.close()  # idempotent
    assert value.tolist() == 123456789012
    assert "closed" in repr(reader)
    with pytest.raises(CheckpointError, match="closed"):
        reader["global_step"]


# ----------------------------------------------------------------------------- snappy


def test_snappy_decoder() -> None:
    assert snappy.decompress(b"\x05\x10hello") == b"hello"
    # literal "abc", then a copy of 7 bytes from 3 back (overlapping its own output)
    assert snappy.decompress(b"\x0a\x08abc\x0d\x03") == b"abcabcabca"
    # 2-byte-offset copy, and a literal with a 1-byte length
    assert snappy.decompress(b"\x48\xf0\x3f" + b"x" * 64 + b"\x1e\x40\x00") == b"x" * 72
    with pytest.raises(snappy.SnappyError):
        snappy.decompress(b"\x05\x0d\x09")


def _snappy_literals(data: bytes) -> bytes:
    """A valid Snappy stream made of literals only (enough to test the reader)."""
    out = bytearray(proto.encode_varint(len(data)))
    for i in range(0, len(data), 60):
        chunk = data[i : i + 60]
        out += bytes([(len(chunk) - 1) << 2]) + chunk
    return bytes(out)


class SnappyTableWriter(sstable.TableWriter):
    """Writes every block Snappy-compressed (type 1), as TF 1.1 may have done for indexes."""

    def _write_block(self, block) -> sstable.BlockHandle:
        data = _snappy_literals(b"".join(bytes(sstable._raw(p)) for p in block.finish()))
        crc = crc32c(b"\x01", crc32c(data))
        self.file.write(data + b"\x01" + mask(crc).to_bytes(4, "little"))
        handle = sstable.BlockHandle(self.offset, len(data))
        self.offset += len(data) + sstable.TRAILER_SIZE
        return handle


def test_snappy_compressed_index_is_read(tmp_path) -> None:
    prefix = copy_fixture("v2_single", tmp_path)
    index = prefix.with_name("model.ckpt.index")
    items = list(sstable.Table(FileSource(index)).items())
    with open(index, "wb") as f:
        table = SnappyTableWriter(f)
        for key, value in items:
            table.add(key, value)
        table.finish()
    assert index.read_bytes() != (FIXTURES / "v2_single" / "model.ckpt.index").read_bytes()
    with zoo.open_checkpoint(prefix) as reader:
        assert len(reader) == len(items) - 1
        for name in reader:
            assert_reads_as_expected(reader, "v2_single", name)
