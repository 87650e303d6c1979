"""Batch prediction over a folder: ``zoo.predict.predict_files`` (what ``slimzoo predict``
runs: DataLoader worker processes reading and preprocessing, batches through the model) against
a plain loop (open, preprocess and classify one image after the other, as a first script would).

A folder of JPEG photos-sized images (500x375, smooth content plus noise), mobilenet_v1 with
random weights (batch-norm statistics randomised), eval mode, ``torch.inference_mode``. The two
ways alternate over the rounds; the figure is images per second (median round) and the ratio
against the plain loop (above 1: the batch pipeline is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import zoo
from benchmarks._util import machine_info, markdown_table, random_model
from zoo.predict import find_images, predict_files

__all__ = ["run"]

NETWORK = "mobilenet_v1"


def _folder(root: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    for i in range(count):
        small = rng.uniform(0, 255, (26, 34, 3)).astype(np.uint8)
        big = np.asarray(Image.fromarray(small).resize((500, 375), Image.BICUBIC), np.float32)
        big = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        Image.fromarray(big).save(root / f"photo_{i:04d}.jpg", quality=90)
    return find_images([str(root)])[0]


def _plain_loop(model: torch.nn.Module, paths: list[str], transform) -> None:
    with torch.inference_mode():
        for path in paths:
            with Image.open(path) as image:
                x = transform(image.convert("RGB"))[None]
            model(x).softmax(-1).topk(5)


def run(quick: bool = False) -> str:
    threads = max(1, min(4, os.cpu_count() or 1))
    torch.set_num_threads(threads)
    count = 64 if quick else 256
    rounds = 2 if quick else 3
    workers = min(4, os.cpu_count() or 1)
    model = random_model(NETWORK).eval()
    transform = zoo.get_transform(NETWORK)
    times: dict[str, list[float]] = {"plain loop": [], "predict_files": []}
    with tempfile.TemporaryDirectory() as tmp:
        paths = _folder(Path(tmp), count)
        for _ in range(rounds):
            start = time.perf_counter()
            _plain_loop(model, paths, transform)
            times["plain loop"].append(time.perf_counter() - start)
            start = time.perf_counter()
            predict_files(model, paths, transform, batch_size=32, workers=workers, progress=False)
            times["predict_files"].append(time.perf_counter() - start)
    base = statistics.median(times["plain loop"])
    rows = []
    for way, label in (
        ("plain loop", "plain loop (open, transform, model per image)"),
        ("predict_files", f"predict_files (batch 32, {workers} DataLoader workers)"),
    ):
        seconds = statistics.median(times[way])
        rows.append((label, f"{count / seconds:.1f}", f"{base / seconds:.2f}"))
    info = machine_info()
    return (
        "### Batch prediction over a folder (`slimzoo predict`)\n\n"
        f"{count} JPEG images of 500x375, {NETWORK} (random weights) at 224, {threads} torch "
        f"threads, median of {rounds} alternating rounds. Machine: {info['cpu']}, Python "
        f"{info['python']}, load average {os.getloadavg()[0]:.1f} at the end (other work on "
        "the machine slows batch-1 inference most).\n\n"
        + markdown_table(("way", "images/s", "× plain loop"), rows)
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick))
