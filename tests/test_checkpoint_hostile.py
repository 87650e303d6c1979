"""Checkpoints with valid checksums but hostile metadata: every one is a CheckpointError naming
file and variable, raised before the reader allocates what the metadata claims.

Each file is written small and honest, then its index (V2) or table of contents (V1) is
rewritten with a hostile shape, every block checksum kept valid. Memory is measured with
tracemalloc (numpy reports its allocations to it), so a claimed 512 MB array shows up even when
it fails half-way.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _checkpoints import rewrite_index, rewrite_v1_meta, write_partitioned_v2

import zoo
from zoo.checkpoint import write_v1, write_v2
from zoo.checkpoint.slices import TensorSlice, check_cover
from zoo.errors import CheckpointError

MB = 1 << 20
TESTS = Path(__file__).resolve().parent


def write(fmt: str, tmp_path: Path, tensors: dict[str, np.ndarray]) -> Path:
    writer = write_v1 if fmt == "v1" else write_v2
    return writer(tmp_path / "model.ckpt", tensors)


def make_hostile(fmt: str, path: Path, name: str, **change) -> None:
    (rewrite_v1_meta if fmt == "v1" else rewrite_index)(path, {name: change})


def read_fails(path: Path, name: str, match: str) -> int:
    """Read ``name``, expecting a CheckpointError; the peak bytes allocated on the way."""
    with zoo.open_checkpoint(path) as reader:
        tracemalloc.start()
        try:
            with pytest.raises(CheckpointError, match=match) as info:
                reader[name]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        message = str(info.value)
        assert repr(name) in message, message
        assert "model.ckpt" in message, message
        assert "\n" not in message
    return peak


@pytest.mark.parametrize("fmt", ["v1", "v2"])
@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((1,) * 70, "rank 70"),
        ((0, 2**62), "empty shape"),
        ((2**40,), "1099511627776 elements|is truncated"),  # v1|v2
        ((2**20, 2**20, 2**20), "elements|is truncated"),
    ],
)
def test_hostile_numeric_shape(tmp_path, fmt: str, shape: tuple[int, ...], match: str) -> None:
    path = write(fmt, tmp_path, {"w": np.ones(1, np.float32), "ok": np.arange(3.0)})
    itemsize = 4
    size = min(int(np.prod(shape, dtype=object)) * itemsize, 2**63 - 1)
    extra = {"size": size} if fmt == "v2" else {"slices": (TensorSlice.full(len(shape)),)}
    make_hostile(fmt, path, "w", shape=shape, **extra)
    assert read_fails(path, "w", match) < MB
    with zoo.open_checkpoint(path) as reader:  # the other variables still read
        assert reader["ok"].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("fmt", ["v1", "v2"])
@pytest.mark.parametrize("count", [2**26, 2**34])
def test_hostile_string_tensor_in_a_tiny_file(tmp_path, fmt: str, count: int) -> None:
    """Before: a (2**26,) string tensor in a file under 1 KB made the reader fill 290-800 MB."""
    path = write(fmt, tmp_path, {"s": np.array([b"abc"], object)})
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 1024
    extra = {} if fmt == "v2" else {"slices": (TensorSlice.full(1),)}
    make_hostile(fmt, path, "s", shape=(count,), **extra)
    assert read_fails(path, "s", f"{count} elements") < MB


def test_hostile_partitioned_variable(tmp_path) -> None:
    """A partitioned variable declared (2**40,) whose one slice claims the whole of it."""
    prefix = tmp_path / "model.ckpt"
    write_partitioned_v2(prefix, "part/w", np.arange(4, dtype=np.float32), parts=1)
    rewrite_index(prefix, {"part/w": {"shape": (2**40,), "slices": (TensorSlice.full(1),)}})
    assert read_fails(prefix, "part/w", "1099511627776 elements") < MB


def test_string_lengths_that_wrap_around(tmp_path) -> None:
    """Two uint64 lengths whose sum wraps to the real text size must not pass as valid."""
    from zoo.checkpoint import proto
    from zoo.checkpoint.crc import crc32c, mask

    prefix = tmp_path / "model.ckpt"
    text = b"abcdef"
    lengths = np.array([2**64 - 1, len(text) + 1], np.uint64)
    head = proto.encode_packed_varints(lengths).tobytes()
    lengths_crc = 0
    for n in lengths.tolist():  # as TF checksums them: uint32, or uint64 when too large
        lengths_crc = crc32c(np.array(n, "<u4" if n < 2**32 else "<u8"), lengths_crc)
    body = head + mask(lengths_crc).to_bytes(4, "little") + text
    write_v2(prefix, {"s": np.array([b"x", b"y"], object)})
    data = prefix.with_name("model.ckpt.data-00000-of-00001")
    data.write_bytes(body)
    crc = crc32c(text, crc32c(body[len(head) : len(head) + 4], lengths_crc))
    rewrite_index(prefix, {"s": {"size": len(body), "crc32c": mask(crc)}})
    read_fails(prefix, "s", "lengths add up to more")


def test_many_slices_are_read(tmp_path) -> None:
    """20,000 one-row slices (the cover check compared every pair: over 30 s; now a sort)."""
    prefix = tmp_path / "model.ckpt"
    value = np.arange(20_000 * 2, dtype=np.float32).reshape(20_000, 2)
    write_partitioned_v2(prefix, "part/embedding", value, parts=20_000)
    with zoo.open_checkpoint(prefix) as reader:
        np.testing.assert_array_equal(reader["part/embedding"], value)


def box_slices(boxes: list[tuple[tuple[int, int], ...]]) -> list[TensorSlice]:
    return [TensorSlice(tuple((a, b - a) for a, b in box)) for box in boxes]


@pytest.mark.parametrize(
    ("boxes", "problem"),
    [
        ([((0, 2), (0, 4)), ((2, 4), (0, 4))], None),  # rows
        ([((0, 2), (0, 2)), ((0, 2), (2, 4)), ((2, 4), (0, 2)), ((2, 4), (2, 4))], None),  # grid
        ([((0, 1), (0, 4)), ((1, 4), (0, 1)), ((1, 4), (1, 4))], None),  # not a grid
        ([((0, 1), (0, 4)), ((1, 4), (0, 2)), ((1, 4), (2, 3)), ((0, 4), (3, 4))], "overlap"),
        ([((0, 2), (0, 4)), ((0, 2), (0, 4)), ((2, 4), (0, 4))], "overlap"),  # a duplicate
        ([((0, 2), (0, 4)), ((1, 3), (0, 4)), ((3, 4), (0, 4))], "overlap"),
        ([((0, 2), (0, 4)), ((3, 4), (0, 4))], "cover 12 of the 16"),
        ([((0, 2), (0, 4)), ((2, 4), (0, 4)), ((2, 2), (0, 4))], None),  # an empty slice
    ],
)
def test_cover_check(boxes, problem: str | None) -> None:
    slices = box_slices(boxes)
    if problem is None:
        check_cover((4, 4), slices, "v")
    else:
        with pytest.raises(CheckpointError, match=problem):
            check_cover((4, 4), slices, "v")


def test_cover_check_brick_wall() -> None:
    """Staggered rows (no grid): the sweep finds the one overlap among many slices."""
    boxes = []
    for row in range(40):
        shift = row % 2
        edges = [0, *range(1 + shift, 80, 2), 80]
        boxes += [((row, row + 1), (a, b)) for a, b in itertools.pairwise(edges)]
    check_cover((40, 80), box_slices(boxes), "v")
    boxes[-1] = ((39, 40), (boxes[-1][1][0] - 1, 80))
    with pytest.raises(CheckpointError, match="overlap"):
        check_cover((40, 80), box_slices(boxes), "v")


def test_fuzzed_fixtures_raise_only_zoo_errors() -> None:
    """300 seeded mutations of the format fixtures (tests/_fuzz.py; its docstring gives the
    10,000-case command), in a fresh process whose peak memory is reported."""
    run = subprocess.run(
        [sys.executable, str(TESTS / "_fuzz.py"), "--count", "300", "--seed", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.stdout, run.stderr
    report = json.loads(run.stdout.splitlines()[-1])
    assert report["findings"] == [], report["findings"]
    assert run.returncode == 0
    assert sum(report["outcomes"].values()) == 300
    assert report["outcomes"].get("ok", 0) > 0  # some mutations leave a readable checkpoint
    assert report["peak_rss_above_baseline_mb"] < 64, report
