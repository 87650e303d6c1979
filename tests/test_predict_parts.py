"""The part files of a prediction under ``torchrun``: what each rank writes and rank 0's merge,
including the parts that must be refused (missing, from another run, from a rank that saw
other files, overlapping, incomplete). The merge under a real ``torchrun`` is tested in
test_predict.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo import PartsError  # public, as the README and the error messages name it
from zoo.predict_parts import part_path, read_parts, write_part

REPO = Path(__file__).resolve().parents[1]
PATHS = [f"img/{i}.png" for i in range(7)]
TOKEN = "run-1"


def _top(i: int) -> list[tuple[int, float]]:
    # float32 probabilities, as predict_files makes them
    return [(i, float(np.float32(1 / (i + 3)))), (i + 1, float(np.float32(1 / (i + 7))))]


def _write_shares(folder, *, features=False, token=TOKEN, paths=PATHS, shares=((0, 4), (4, 7))):
    for rank, (start, stop) in enumerate(shares):
        indices = range(start, stop)
        done = {i: (np.full(3, i, np.float32) if features else _top(i)) for i in indices if i != 5}
        failed = {5: "not an image file PIL can read"} if 5 in indices else {}
        write_part(
            folder,
            rank=rank,
            world=len(shares),
            token=token,
            paths=paths,
            done=done,
            failed=failed,
            features=features,
        )


def test_the_merge_gives_every_rank_s_results_in_input_order_and_removes_the_parts(tmp_path):
    folder = tmp_path / "out.jsonl.parts"
    _write_shares(folder)
    assert sorted(p.name for p in folder.iterdir()) == [
        "rank-00000-of-00002.npz",
        "rank-00001-of-00002.npz",
    ]
    done, failed = read_parts(folder, world=2, token=TOKEN, paths=PATHS, features=False)
    assert sorted(done) == [0, 1, 2, 3, 4, 6]
    assert all(done[i] == _top(i) for i in done)  # the very same floats
    assert failed == {5: "not an image file PIL can read"}
    assert not folder.exists()  # parts and folder removed after the merge


def test_features_merge_exactly(tmp_path):
    _write_shares(tmp_path / "p", features=True)
    done, _ = read_parts(tmp_path / "p", world=2, token=TOKEN, paths=PATHS, features=True)
    assert sorted(done) == [0, 1, 2, 3, 4, 6]
    for i, row in done.items():
        assert row.dtype == np.float32 and np.array_equal(row, np.full(3, i, np.float32))


def test_a_missing_part_is_named(tmp_path):
    _write_shares(tmp_path)
    part_path(tmp_path, 1, 2).unlink()
    with pytest.raises(PartsError, match=r"rank 1's part .*rank-00001-of-00002.npz is missing"):
        read_parts(tmp_path, world=2, token=TOKEN, paths=PATHS, features=False)
    assert part_path(tmp_path, 0, 2).exists()  # nothing removed when the merge fails


def test_a_part_from_another_run_is_refused(tmp_path):
    _write_shares(tmp_path)
    _write_shares(tmp_path, token="run-0", shares=((0, 0), (0, 7)))  # overwrites both
    with pytest.raises(PartsError, match="belongs to another run"):
        read_parts(tmp_path, world=2, token=TOKEN, paths=PATHS, features=False)


def test_a_rank_that_saw_other_files_is_refused(tmp_path):
    _write_shares(tmp_path, paths=[*PATHS[:-1], "img/other.png"])
    with pytest.raises(PartsError, match="found other image files than rank 0"):
        read_parts(tmp_path, world=2, token=TOKEN, paths=PATHS, features=False)


def test_overlapping_or_incomplete_parts_are_refused(tmp_path):
    _write_shares(tmp_path / "overlap", shares=((0, 4), (3, 7)))
    with pytest.raises(PartsError, match=r"repeats images another part has \(e.g. #3\)"):
        read_parts(tmp_path / "overlap", world=2, token=TOKEN, paths=PATHS, features=False)
    _write_shares(tmp_path / "gap", shares=((0, 3), (4, 7)))
    with pytest.raises(PartsError, match=r"leave out 1 image\(s\), e.g. img/3.png"):
        read_parts(tmp_path / "gap", world=2, token=TOKEN, paths=PATHS, features=False)


def test_the_cli_under_torchrun_needs_a_place_for_the_parts(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    env.update(WORLD_SIZE="2", RANK="0", ZOO_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "zoo", "predict", "mobilenet_v1", str(tmp_path / "a.png")],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "under torchrun, give -o FILE (the parts go to FILE.parts) or --parts DIR" in (
        proc.stderr
    )
