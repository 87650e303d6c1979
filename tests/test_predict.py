"""``slimzoo predict`` over files, folders and globs, in DataLoader workers, as a table, JSON
lines, CSV or pooled features; and under ``torchrun`` with 2 CPU processes (gloo), which must
give exactly what one process gives. Real processes on this worktree, real image files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import reference_weights
from PIL import Image
from safetensors.torch import save_file

import zoo
from zoo.predict import find_images

pytestmark = pytest.mark.slow  # real processes (torchrun, DataLoader workers)

REPO = Path(__file__).resolve().parents[1]
ARCH = "mobilenet_v1"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    model = zoo.load(ARCH, checkpoint=reference_weights(ARCH, gain=2**0.5)).eval()
    save_file(model.state_dict(), root / "model.safetensors")
    rng = np.random.default_rng(0)
    photos = root / "photos"
    (photos / "b" / "c").mkdir(parents=True)
    names = ["a1.png", "a10.jpg", "a2.png", "b/b1.png", "b/c/c1.png", "b/c/c2.JPG", "b/b2.png"]
    for i, name in enumerate(names):
        pixels = rng.integers(0, 256, (90 + 7 * i, 120, 3), dtype=np.uint8)
        pixels[: 40 + 5 * i] //= i + 1  # images that differ in content
        Image.fromarray(pixels).save(
            photos / name, format="PNG" if name.endswith("png") else "JPEG"
        )
    (photos / "notes.txt").write_text("not an image, skipped by the folder search")
    (photos / "b" / "broken.png").write_bytes(b"\x89PNG but not really")
    return root, model


def run(*args, cwd=None, env=None, launcher=None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ZOO_")}
    environment.update(
        PYTHONPATH=os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")]),
        ZOO_OFFLINE="1",
        OMP_NUM_THREADS="1",  # torchrun sets it too: the same arithmetic in every run
        **(env or {}),
    )
    command = [*(launcher or [sys.executable, "-m", "zoo"]), *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
    )


def in_process(model, path):
    with Image.open(path) as image, torch.no_grad():
        x = zoo.get_transform(ARCH)(image.convert("RGB"))[None]
        return torch.softmax(model(x), -1)[0], model.forward_head(
            model.forward_features(x), pre_logits=True
        )[0]


def test_find_images_takes_files_folders_and_globs(work):
    root, _ = work
    photos = root / "photos"
    found, problems = find_images(
        [str(photos / "b"), str(photos / "a1*"), str(photos / "notes.txt"), str(root / "nope*")]
    )
    relative = [str(Path(p).relative_to(photos)) for p in found]
    # folders recursively (image suffixes only, any case), natural order; globs; files as given
    assert relative == [
        "b/b1.png", "b/b2.png", "b/broken.png", "b/c/c1.png", "b/c/c2.JPG", "a1.png", "a10.jpg",
        "notes.txt",
    ]  # fmt: skip
    assert [(Path(p.path).name, p.reason) for p in problems] == [
        ("nope*", "no file matches this pattern")
    ]


def test_a_folder_in_json_lines_matches_the_model_in_process_and_reports_bad_files(work):
    root, model = work
    result = run(
        "predict", ARCH, root / "photos", root / "photos" / "notes.txt", "--json", "-k", "3",
        "--weights", root / "model.safetensors", "--workers", "2", "--batch-size", "3",
    )  # fmt: skip
    assert result.returncode == 1  # some inputs failed, the others were predicted
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2
    assert any("broken.png: not an image file" in line for line in skipped)
    assert any("notes.txt: not an image file" in line for line in skipped)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 7 and all(not r["image"].endswith(("broken.png", "txt")) for r in rows)
    labels = zoo.imagenet_labels(ARCH)
    tops = set()
    for row in rows:
        probabilities, _ = in_process(model, row["image"])
        want = probabilities.topk(3)
        assert [t["index"] for t in row["top"]] == want.indices.tolist()
        assert [t["label"] for t in row["top"]] == [labels[i] for i in want.indices.tolist()]
        got = [t["probability"] for t in row["top"]]
        np.testing.assert_allclose(got, want.values.numpy(), atol=1e-5)
        tops.add(tuple(got))
    assert len(tops) == 7  # each image its own answer


def test_table_and_csv_say_the_same(work, tmp_path):
    root, _ = work
    common = ("predict", ARCH, root / "photos" / "b" / "c", "--weights", root / "model.safetensors")
    table = run(*common, "-k", "2", "--workers", "0")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["image", "rank", "probability", "index", "label"]
    assert len(lines) == 1 + 2 * 2
    out = tmp_path / "top.csv"
    assert run(*common, "-k", "2", "--csv", "-o", out).returncode == 0
    records = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["rank"] for r in records] == ["1", "2", "1", "2"]
    for line, record in zip(lines[1:], records):
        assert line.startswith(record["image"])
        assert record["label"] in line and f"{float(record['probability']):.4f}" in line


def test_features_are_the_pooled_pre_logits_with_the_paths(work, tmp_path):
    root, model = work
    out = tmp_path / "embeddings.npz"
    result = run(
        "predict", ARCH, root / "photos" / "b", "--features", out,
        "--weights", root / "model.safetensors", "--progress",
    )  # fmt: skip
    assert result.returncode == 1  # broken.png
    assert "img" in result.stderr  # the progress bar, asked for
    stored = np.load(out)
    paths = [str(p) for p in stored["paths"]]
    assert [Path(p).name for p in paths] == ["b1.png", "b2.png", "c1.png", "c2.JPG"]
    assert stored["features"].shape == (4, 1024) and stored["features"].dtype == np.float32
    for path, row in zip(paths, stored["features"]):
        _, want = in_process(model, path)
        np.testing.assert_allclose(row, want.numpy(), atol=1e-5)


def test_torchrun_with_two_processes_equals_one_process(work, tmp_path):
    root, _ = work
    args = (
        "predict", ARCH, root / "photos", "--weights", root / "model.safetensors",
        "--batch-size", "2", "--workers", "1",
    )  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launcher += ["--nproc-per-node", "2", "-m", "zoo"]
    single = run(*args, "--json", "-o", tmp_path / "one.jsonl")
    double = run(*args, "--json", "-o", tmp_path / "two.jsonl", launcher=launcher)
    assert single.returncode == 1 and double.returncode != 0  # broken.png, on every rank
    one = (tmp_path / "one.jsonl").read_text()
    assert len(one.splitlines()) == 7
    assert (tmp_path / "two.jsonl").read_text() == one  # the same bytes, in input order
    assert double.stderr.count("skipped") == 1  # reported once, by rank 0
    assert not (tmp_path / "two.jsonl.parts").exists()  # each rank's part, merged and removed
    run(*args, "--features", tmp_path / "one.npz")
    parts = tmp_path / "shared" / "parts"
    run(*args, "--features", tmp_path / "two.npz", "--parts", parts, launcher=launcher)
    assert not parts.exists()
    one_f, two_f = np.load(tmp_path / "one.npz"), np.load(tmp_path / "two.npz")
    assert list(one_f["paths"]) == list(two_f["paths"])
    assert np.array_equal(one_f["features"], two_f["features"])
