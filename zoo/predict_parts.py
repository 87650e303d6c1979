"""Prediction under ``torchrun``: which share each rank takes, the part file each rank writes,
and rank 0's merge of the parts in input order.

Every rank finds the same image list (the search is sorted) and takes a contiguous share of
whole batches, so the batches are those of one process and the numbers the same. Each rank
writes its part to a folder (``rank-00001-of-00004.npz``: plain arrays, no pickle), written
under a temporary name and renamed, and after a barrier rank 0 reads every part and merges
them. A part says which run it belongs to (a token rank 0 draws and broadcasts) and which
image list it was computed from, so a part left from an earlier run, or from a rank that saw
other files (a node without the shared file system), is an error naming the file instead of a
silently wrong result. Across nodes the folder must be on a file system every rank can write
and rank 0 can read. The process group carries only the token and the barrier.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import PartsError

__all__ = [
    "barrier",
    "part_path",
    "rank_and_world",
    "read_parts",
    "run_token",
    "save_npz_atomically",
    "write_part",
]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size; initialises the process group under torchrun
    (NCCL where there is a GPU, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def run_token() -> str:
    """A token rank 0 draws for this run, the same on every rank."""
    import torch.distributed as dist

    box = [uuid.uuid4().hex if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def barrier() -> None:
    """Wait until every rank has got here (NCCL needs to be told the device)."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def part_path(folder: str | os.PathLike[str], rank: int, world: int) -> Path:
    return Path(folder) / f"rank-{rank:05d}-of-{world:05d}.npz"


def _fingerprint(paths: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(paths).encode()).hexdigest()


def write_part(
    folder: str | os.PathLike[str],
    *,
    rank: int,
    world: int,
    token: str,
    paths: Sequence[str],
    done: dict[int, Any],
    failed: dict[int, str],
    features: bool,
) -> Path:
    """Write this rank's results (``done``: index -> top list or feature row; ``failed``:
    index -> reason) to its part file; returns its path."""
    path = part_path(folder, rank, world)
    path.parent.mkdir(parents=True, exist_ok=True)
    order = sorted(done)
    arrays: dict[str, np.ndarray] = {
        "token": np.array(token),
        "fingerprint": np.array(_fingerprint(paths)),
        "indices": np.array(order, dtype=np.int64),
        "failed_indices": np.array(sorted(failed), dtype=np.int64),
        "failed_reasons": np.array([failed[i] for i in sorted(failed)], dtype=str),
    }
    if features:
        rows = [done[i] for i in order]
        arrays["features"] = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    else:
        k = len(done[order[0]]) if order else 0
        arrays["top_indices"] = np.array(
            [[c for c, _ in done[i]] for i in order], dtype=np.int64
        ).reshape(len(order), k)
        # float64 holds the float32 probabilities exactly: the merged output is byte-equal
        arrays["top_probabilities"] = np.array(
            [[p for _, p in done[i]] for i in order], dtype=np.float64
        ).reshape(len(order), k)
    save_npz_atomically(path, arrays)
    return path


def save_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` under a temporary name, then renamed: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_parts(
    folder: str | os.PathLike[str],
    *,
    world: int,
    token: str,
    paths: Sequence[str],
    features: bool,
    remove: bool = True,
) -> tuple[dict[int, Any], dict[int, str]]:
    """Every rank's part, merged: (index -> result, index -> reason), checked to belong to this
    run and this image list and to cover every image exactly once. ``remove``: delete the part
    files (and the folder, once empty) after a successful merge."""
    done: dict[int, Any] = {}
    failed: dict[int, str] = {}
    files = [part_path(folder, rank, world) for rank in range(world)]
    for rank, file in enumerate(files):
        if not file.is_file():
            raise PartsError(
                f"rank {rank}'s part {file} is missing: every rank must write to a folder rank 0 "
                "can read (across nodes, put --parts on a shared file system)"
            )
        with np.load(file, allow_pickle=False) as part:
            if str(part["token"]) != token:
                raise PartsError(
                    f"{file} belongs to another run (a part left from an earlier run, or a rank "
                    "that wrote elsewhere); remove it and run again"
                )
            if str(part["fingerprint"]) != _fingerprint(paths):
                raise PartsError(
                    f"rank {rank} found other image files than rank 0 ({file}): every rank must "
                    "see the same inputs (across nodes, on a shared file system)"
                )
            indices = part["indices"].tolist()
            if features:
                rows = list(part["features"])
            else:
                rows = [
                    list(zip(i, p))
                    for i, p in zip(
                        part["top_indices"].tolist(), part["top_probabilities"].tolist()
                    )
                ]
            clash = (set(indices) | set(part["failed_indices"].tolist())) & (
                set(done) | set(failed)
            )
            if clash:
                raise PartsError(f"{file} repeats images another part has (e.g. #{min(clash)})")
            done.update(zip(indices, rows))
            failed.update(zip(part["failed_indices"].tolist(), part["failed_reasons"].tolist()))
    missing = set(range(len(paths))) - set(done) - set(failed)
    if missing:
        raise PartsError(
            f"the parts in {folder} leave out {len(missing)} image(s), e.g. {paths[min(missing)]}"
        )
    if remove:
        for file in files:
            file.unlink(missing_ok=True)
        try:
            Path(folder).rmdir()
        except OSError:  # not empty (the user's own files) or already gone
            pass
    return done, failed
