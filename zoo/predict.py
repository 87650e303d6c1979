"""Batch prediction over many image files: what ``slimzoo predict`` runs.

Inputs are files, folders (searched recursively for image files) and glob patterns; images are
read and preprocessed with slim's exact transform (:func:`zoo.get_transform`) in ``DataLoader``
worker processes and classified in batches. An unreadable or non-image file is reported by name
and skipped. Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) every rank takes a
contiguous share of whole batches on its own device (``cuda:LOCAL_RANK`` when there is a GPU),
writes its own part file, and rank 0 merges the parts in input order (:mod:`zoo.predict_parts`):
the same batches as one process runs, hence the same numbers.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from architectures import natural_key

from .predict_parts import barrier, rank_and_world, read_parts, run_token, write_part

__all__ = ["IMAGE_SUFFIXES", "Outcome", "Problem", "find_images", "predict_files"]

# what a folder search picks up (a file named explicitly is tried whatever its name)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


@dataclass(frozen=True)
class Problem:
    """An input that gave no prediction, and why."""

    path: str
    reason: str


@dataclass
class Outcome:
    """The result of :func:`predict_files`, in input order.

    ``top[i]`` is ``[(class index, probability), ...]`` of ``paths[i]`` (classification), or
    ``features`` is an ``(N, D)`` array of pooled pre-logits features (``features=True``).
    """

    paths: list[str] = field(default_factory=list)
    top: list[list[tuple[int, float]]] = field(default_factory=list)
    features: np.ndarray | None = None
    problems: list[Problem] = field(default_factory=list)


def find_images(inputs: Sequence[str]) -> tuple[list[str], list[Problem]]:
    """The image files named by ``inputs`` (files, folders searched recursively, glob patterns
    such as ``'photos/**/*.jpg'``), in a stable order without repeats, and the inputs that
    named nothing."""
    found: list[str] = []
    problems: list[Problem] = []
    for item in inputs:
        if os.path.isdir(item):
            files = _images_under(item)
            if not files:
                problems.append(Problem(item, f"a folder without image files ({_suffixes()})"))
            found += files
        elif os.path.exists(item):
            found.append(item)
        elif any(c in item for c in "*?["):
            matches = sorted(glob.glob(item, recursive=True), key=natural_key)
            files = [f for m in matches for f in (_images_under(m) if os.path.isdir(m) else [m])]
            if not files:
                problems.append(Problem(item, "no file matches this pattern"))
            found += files
        else:
            problems.append(Problem(item, "no image at this path (no such file or folder)"))
    return list(dict.fromkeys(found)), problems


def _images_under(folder: str) -> list[str]:
    files = (p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted((str(p) for p in files if p.is_file()), key=natural_key)


def _suffixes() -> str:
    return " ".join(IMAGE_SUFFIXES)


class ImageFiles(Dataset):
    """``(index, CHW tensor or None, problem)`` for each path: read in a worker process."""

    def __init__(self, paths: Sequence[str], indices: Sequence[int], transform: Callable) -> None:
        self.paths, self.indices, self.transform = list(paths), list(indices), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as image:
                pixels = image.convert("RGB")
        except UnidentifiedImageError:
            return self.indices[i], None, "not an image file PIL can read"
        except OSError as exc:  # unreadable, truncated, a folder, ...
            return self.indices[i], None, f"cannot read it: {exc.strerror or exc}"
        return self.indices[i], self.transform(pixels), ""


def _collate(items: list[tuple[int, torch.Tensor | None, str]]) -> dict[str, Any]:
    good = [(i, t) for i, t, _ in items if t is not None]
    return {
        "indices": [i for i, _ in good],
        "images": torch.stack([t for _, t in good]) if good else None,
        "failed": [(i, why) for i, t, why in items if t is None],
    }


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def predict_files(
    model: nn.Module,
    paths: Sequence[str],
    transform: Callable,
    *,
    top_k: int = 5,
    features: bool = False,
    batch_size: int = 32,
    workers: int = 2,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    parts: str | os.PathLike[str] | None = None,
) -> Outcome:
    """Classify (or embed, with ``features=True``) the images ``paths`` in batches.

    ``workers`` ``DataLoader`` processes read and preprocess (0: in this process). ``progress``:
    a bar on stderr (``None``: when stderr is a terminal and there is more than one batch).
    Under ``torchrun`` the batches are shared among the ranks: each rank writes its part to the
    folder ``parts`` (required there; across nodes on a shared file system), and rank 0 merges
    them and returns the whole outcome, the other ranks their own share.
    """
    rank, world = rank_and_world()
    if world > 1 and parts is None:
        raise ValueError(
            f"under torchrun ({world} ranks) predict_files needs parts=FOLDER: where each rank "
            "writes its part for rank 0 to merge (on several nodes, a shared file system)"
        )
    token = run_token() if world > 1 else ""
    device = torch.device(device) if device is not None else default_device()
    model = model.eval().to(device)
    batches = [
        list(range(s, min(s + batch_size, len(paths)))) for s in range(0, len(paths), batch_size)
    ]
    mine = batches[rank * len(batches) // world : (rank + 1) * len(batches) // world]
    indices = [i for batch in mine for i in batch]
    dataset = ImageFiles([paths[i] for i in indices], indices, transform)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=device.type == "cuda",
    )
    if progress is None:
        progress = sys.stderr.isatty() and len(batches) > 1
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(indices), unit="img", disable=not (progress and rank == 0), file=sys.stderr
    )
    done: dict[int, Any] = {}
    failed: dict[int, str] = {}
    with torch.inference_mode():
        for batch in loader:
            failed.update(batch["failed"])
            if batch["images"] is not None:
                x = batch["images"].to(device, non_blocking=True)
                if features:  # what the classifier sees: pooled, before dropout and logits
                    pooled = model.forward_head(model.forward_features(x), pre_logits=True)
                    rows = list(pooled.float().cpu().numpy())
                else:
                    probabilities = torch.softmax(model(x).float(), dim=-1)
                    top = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
                    rows = [
                        list(zip(i.tolist(), v.tolist()))
                        for v, i in zip(top.values.cpu(), top.indices.cpu())
                    ]
                done.update(zip(batch["indices"], rows))
            bar.update(len(batch["indices"]) + len(batch["failed"]))
    bar.close()
    if world > 1:
        assert parts is not None
        common = {"world": world, "token": token, "paths": paths, "features": features}
        write_part(parts, rank=rank, done=done, failed=failed, **common)
        barrier()  # every part is written
        if rank == 0:
            done, failed = read_parts(parts, **common)
    return _outcome(paths, done, failed, features)


def _outcome(paths: Sequence[str], done: dict, failed: dict, features: bool) -> Outcome:
    order = sorted(done)
    outcome = Outcome(
        paths=[paths[i] for i in order],
        problems=[Problem(paths[i], failed[i]) for i in sorted(failed)],
    )
    if features:
        outcome.features = (
            np.stack([done[i] for i in order]) if order else np.zeros((0, 0), np.float32)
        )
    else:
        outcome.top = [done[i] for i in order]
    return outcome
