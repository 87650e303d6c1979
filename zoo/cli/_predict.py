"""``slimzoo predict``: classify (or embed) files, folders and globs in batches, on one process
or under ``torchrun`` (see :mod:`zoo.predict`)."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    PROG,
    UsageError,
    add_command,
    check_writable,
    existing,
    load_model,
    table,
)

__all__ = ["add_predict"]


def add_predict(commands: Any, cache: argparse.ArgumentParser) -> None:
    p = add_command(
        commands,
        "predict",
        _cmd_predict,
        "classify images: files, folders, globs",
        "Run NAME on every image of PATH... (files; folders, searched recursively for image "
        "files; glob patterns such as 'photos/**/*.jpg') with slim's exact evaluation "
        "preprocessing (zoo.get_transform), in batches read by DataLoader worker processes, and "
        "print the top classes with their softmax probabilities (a table, --json lines or "
        "--csv), or with --features write the pooled pre-logits features. A file that is no "
        "readable image is reported by name and skipped; the exit status is then 1. Under "
        "torchrun the images are shared among the ranks, each rank writes its part to --parts "
        "and rank 0 merges them and writes the result, the same as one process's. The "
        "published weights are used (downloaded on first use) unless "
        "--checkpoint or --weights is given.",
        parents=[cache],
        epilog="examples: slimzoo predict inception_v3 cat.jpg photos/ 'more/**/*.png'; "
        "torchrun --nproc-per-node 4 -m zoo predict inception_v3 photos/ --csv -o out.csv",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", nargs="+", metavar="PATH", help="image files, folders or globs")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="CKPT", help="a TF checkpoint of the network")
    source.add_argument(
        "--weights", metavar="W", help="a .safetensors / .pt weights file (slimzoo convert)"
    )
    p.add_argument("-k", "--top", type=int, default=5, metavar="K", help="classes shown (5)")
    p.add_argument("--labels", metavar="FILE", help="class names, one a line (fine-tuned models)")
    p.add_argument(
        "--drop-background",
        action="store_true",
        help="1000 ImageNet classes in torchvision's numbering (1001-class models)",
    )
    p.add_argument("--batch-size", type=int, default=32, metavar="B", help="images per batch (32)")
    p.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        metavar="N",
        help="DataLoader processes reading images (default min(4, CPUs); 0: none)",
    )
    p.add_argument(
        "--device", metavar="DEV", help="cpu, cuda, cuda:1 (default: cuda:LOCAL_RANK if any)"
    )
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object per image (JSON lines)")
    form.add_argument(
        "--csv", action="store_true", help="CSV: image, rank, probability, index, label"
    )
    form.add_argument(
        "--features",
        metavar="FILE",
        help="write the pooled pre-logits features and the image paths to FILE (.npz: arrays "
        "'features' (N, D) float32 and 'paths') instead of classes",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the table/JSON/CSV to FILE")
    p.add_argument(
        "--parts",
        metavar="DIR",
        help="under torchrun: the folder where each rank writes its part for rank 0 to merge "
        "(default: the output file's name + '.parts'; on several nodes, a shared file system)",
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: on a terminal, for more than one batch)",
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    from .._model_facts import model_facts
    from ..predict import find_images, predict_files
    from ..predict_parts import rank_and_world
    from ..transforms import get_transform

    if args.top < 1 or args.batch_size < 1 or args.workers < 0:
        raise UsageError("--top and --batch-size must be at least 1, --workers at least 0")
    features_file = Path(args.features) if args.features else None
    if features_file is not None and features_file.suffix != ".npz":
        raise UsageError(f"--features writes a .npz file: name it *.npz, not {features_file.name}")
    output = features_file or (Path(args.output) if args.output else None)
    for out in (features_file, Path(args.output) if args.output else None):
        if out is not None:
            check_writable(out, overwrite=True)
    parts = _parts_folder(args, output)
    paths, problems = find_images(args.images)
    if not paths:
        raise FileNotFoundError("; ".join(f"{p.reason}: {p.path}" for p in problems))
    model_facts(args.name)  # an unknown name fails here, before any download
    transform = get_transform(args.name)
    model = load_model(args, checkpoint=args.checkpoint, drop_background=args.drop_background)
    model.eval()
    if _device_type(args.device) == "cpu":
        # This process is ours and runs batch after batch: let glibc keep the freed
        # activations for the next batch instead of faulting fresh pages in (page faults are
        # a tenth to a quarter of a batch's time on CPU; benchmarks/RESULTS.md).
        from ..allocator import tune_cpu_allocator

        tune_cpu_allocator()
    labels = _labels(args, int(model.num_classes)) if features_file is None else []
    outcome = predict_files(
        model,
        paths,
        transform,
        top_k=args.top,
        features=features_file is not None,
        batch_size=args.batch_size,
        workers=args.workers,
        device=args.device,
        progress=args.progress,
        parts=parts,
    )
    problems += outcome.problems
    rank, _world = rank_and_world()
    if rank == 0:  # rank 0 holds the merged outcome and writes it
        for problem in problems:
            print(f"{PROG}: skipped {problem.path}: {problem.reason}", file=sys.stderr)
        if features_file is not None:
            _write_features(features_file, outcome)
            print(
                f"wrote {features_file}: {len(outcome.paths)} images x "
                f"{outcome.features.shape[-1]} features"
            )
        else:
            _write_classes(args, outcome, labels)
    return EXIT_FAILURE if problems else EXIT_OK


def _device_type(device: str | None) -> str:
    import torch

    from ..predict import default_device

    return (torch.device(device) if device else default_device()).type


def _parts_folder(args: argparse.Namespace, output: Path | None) -> Path | None:
    """Where each rank writes its part under torchrun (None in one process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if args.parts:
        return Path(args.parts)
    if output is None:
        raise UsageError(
            "under torchrun, give -o FILE (the parts go to FILE.parts) or --parts DIR: each "
            "rank writes its part there for rank 0 to merge"
        )
    return output.with_name(output.name + ".parts")


def _labels(args: argparse.Namespace, classes: int) -> list[str]:
    from ..labels import imagenet_labels

    if args.labels:
        labels = Path(existing(args.labels, "labels file")).read_text().splitlines()
        if len(labels) != classes:
            raise UsageError(f"{args.labels} has {len(labels)} lines, the model {classes} classes")
        return labels
    if classes in (1000, 1001):
        return imagenet_labels(classes)
    return [f"class {i}" for i in range(classes)]


def _write_classes(args: argparse.Namespace, outcome: Any, labels: list[str]) -> None:
    stream = open(args.output, "w", newline="") if args.output else sys.stdout
    try:
        if args.json:
            for path, top in zip(outcome.paths, outcome.top):
                ranked = [{"index": i, "label": labels[i], "probability": p} for i, p in top]
                stream.write(json.dumps({"image": path, "top": ranked}) + "\n")
        elif args.csv:
            writer = csv.writer(stream)
            writer.writerow(["image", "rank", "probability", "index", "label"])
            for path, top in zip(outcome.paths, outcome.top):
                for rank, (i, p) in enumerate(top, 1):
                    writer.writerow([path, rank, f"{p:.6f}", i, labels[i]])
        else:
            rows = [("image", "rank", "probability", "index", "label")]
            for path, top in zip(outcome.paths, outcome.top):
                for rank, (i, p) in enumerate(top, 1):
                    rows.append((path, str(rank), f"{p:.4f}", str(i), labels[i]))
            if len(rows) > 1:
                stream.write(table(rows) + "\n")
    finally:
        if stream is not sys.stdout:
            stream.close()


def _write_features(path: Path, outcome: Any) -> None:
    """``paths`` and ``features`` arrays in one ``.npz``, written under a temporary name."""
    import numpy as np

    from ..predict_parts import save_npz_atomically

    arrays = {"features": outcome.features.astype(np.float32), "paths": np.array(outcome.paths)}
    save_npz_atomically(path, arrays)
