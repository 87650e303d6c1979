"""Seeded mutation fuzzing of the checkpoint reader over the format fixtures.

Each case copies one fixture of ``REFERENCE / "ckpt_formats"`` to a scratch directory, applies
one mutation drawn from a seeded generator, then opens the result and asks every variable for
its shape, dtype and value. The reader may succeed or raise a ``zoo.ZooError``; anything else
(numpy's ``ValueError``, ``MemoryError``, ``OverflowError``, ...) is a finding.

Mutations: raw ones (a flipped byte, a truncation, appended or overwritten bytes; mostly caught
by crc32c) and structure-aware ones that keep every checksum valid, so the hostile metadata
reaches the parsers: V2 index entries with hostile dtype, shape, offset, size, shard or slices,
V1 tables of contents with hostile shapes, dtypes and slices, and table blocks edited and
re-checksummed.

The normal suite runs a few hundred cases (``tests/test_checkpoint_fuzz.py``). The long run:

    python tests/_fuzz.py --count 10000 --seed 1

prints one JSON line: cases per outcome, the findings, the slowest case and the peak resident
memory (``ru_maxrss``) above what the process held after its imports; it exits 1 on a finding.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # conftest, _checkpoints
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's zoo

import numpy as np
from _checkpoints import FIXTURES, fixture_names

import zoo
from zoo.checkpoint import proto, sstable
from zoo.checkpoint.crc import crc32c, mask
from zoo.checkpoint.slices import TensorSlice
from zoo.checkpoint.source import FileSource

INTERESTING = [
    0, 1, 2, 3, 7, 255, 256, 4096, 2**16, 2**26, 2**31 - 1, 2**31, 2**32, 2**34, 2**40,
    2**62, 2**63 - 1, -1, -2, -(2**31), -(2**63),
]  # fmt: skip
RANKS = [0, 1, 2, 4, 8, 33, 65, 70]


def hostile_int(rng: random.Random) -> int:
    return rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(-1000, 1 << 20)


def hostile_shape(rng: random.Random) -> tuple[int, ...]:
    rank = rng.choice(RANKS)
    return tuple(rng.choice([0, 1, 2, 3, 2**20, 2**26, 2**34, 2**40, 2**62]) for _ in range(rank))


def hostile_slices(rng: random.Random, rank: int) -> tuple[TensorSlice, ...]:
    out = []
    for _ in range(rng.choice([1, 2, 3, 5])):
        extents = []
        for _ in range(rank if rng.random() < 0.8 else rng.choice(RANKS)):
            if rng.random() < 0.4:
                extents.append((0, None))
            else:
                extents.append((rng.choice([0, 1, 2, -1, 2**40]), rng.choice([0, 1, 2, 2**40])))
        out.append(TensorSlice(tuple(extents)))
    return tuple(out)


# ----------------------------------------------------------------------------- table editing


def read_table(path: Path) -> list[tuple[bytes, bytes]]:
    source = FileSource(path)
    try:
        return list(sstable.Table(source).items())
    finally:
        source.close()


def write_table(path: Path, items: list[tuple[bytes, bytes]]) -> None:
    with open(path, "wb") as f:
        table = sstable.TableWriter(f)
        for key, value in items:
            table.add(key, value)
        table.finish()


def table_files(prefix: Path) -> list[Path]:
    index = prefix.with_name(prefix.name + ".index")
    return [index] if index.is_file() else [prefix]


def mutate_v2_entry(rng: random.Random, prefix: Path) -> str:
    index = prefix.with_name(prefix.name + ".index")
    items = read_table(index)
    i = rng.randrange(1, len(items))  # item 0 is the header
    key, value = items[i]
    entry = proto.BundleEntry.decode(value)
    field = rng.choice(
        ["dtype", "shape", "shard_id", "offset", "size", "slices", "shape+size", "consistent"]
    )
    change: dict = {}
    if field == "dtype":
        change["dtype"] = rng.choice([0, 2, 3, 7, 9, 10, 14, 19, 21, 101, 99, hostile_int(rng)])
    elif field == "shape":
        change["shape"] = hostile_shape(rng)
    elif field == "slices":
        change["slices"] = hostile_slices(rng, len(entry.shape))
    elif field == "shape+size":
        change["shape"] = hostile_shape(rng)
        change["size"] = hostile_int(rng)
    elif field == "consistent":  # a shape whose byte count matches the recorded size
        change["shape"] = hostile_shape(rng) if rng.random() < 0.5 else (1,) * rng.choice(RANKS)
        change["dtype"] = rng.choice([1, 7, 9, 10])
        itemsize = {1: 4, 7: 1, 9: 8, 10: 1}[change["dtype"]]
        change["size"] = min(math.prod(change["shape"]) * itemsize, 2**63 - 1)
    else:
        change[field] = hostile_int(rng)
    change = {k: v for k, v in change.items() if not isinstance(v, int) or v < 2**63}
    items[i] = (key, proto.BundleEntry(**{**entry.__dict__, **change}).encode())
    write_table(index, items)
    return f"v2 entry {key[:40]!r}: {change}"


def mutate_v1_meta(rng: random.Random, prefix: Path) -> str:
    items = read_table(prefix)
    tensors, versions = proto.decode_saved_meta(items[0][1])
    i = rng.randrange(len(tensors))
    meta = tensors[i]
    field = rng.choice(["shape", "dtype", "slices", "all"])
    shape, dtype, slices = meta.shape, meta.dtype, meta.slices
    if field in ("shape", "all"):
        shape = hostile_shape(rng)
    if field in ("dtype", "all"):
        dtype = rng.choice([1, 2, 3, 7, 9, 10, 14, 19, 21, 99, 2**31])
    if field in ("slices", "all"):
        slices = hostile_slices(rng, len(shape))
    tensors[i] = proto.SavedSliceMeta(meta.name, shape, dtype, slices)
    items[0] = (b"", proto.encode_saved_meta(tensors, versions))
    write_table(prefix, items)
    return f"v1 meta {meta.name!r}: shape {shape}, dtype {dtype}, slices {slices}"


def mutate_block(rng: random.Random, path: Path) -> str:
    """Overwrite bytes inside one block of a table and fix that block's crc32c."""
    source = FileSource(path)
    try:
        table = sstable.Table(source)
        footer = source.read(source.size - sstable.FOOTER_SIZE, sstable.FOOTER_SIZE)
        _, pos = sstable._decode_handle(footer, 0)
        index_handle, _ = sstable._decode_handle(footer, pos)
        handles = [*table._index_handles, index_handle]
    finally:
        source.close()
    handle = rng.choice(handles)
    if handle.size == 0:
        return "empty block"
    data = bytearray(path.read_bytes())
    for _ in range(rng.choice([1, 1, 2, 4])):
        at = handle.offset + rng.randrange(handle.size)
        data[at] = rng.choice([0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    block = bytes(data[handle.offset : handle.offset + handle.size])
    kind = data[handle.offset + handle.size]
    crc = mask(crc32c(bytes([kind]), crc32c(block)))
    end = handle.offset + handle.size
    data[end + 1 : end + 5] = crc.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return f"block at {handle.offset} of {path.name} edited and re-checksummed"


def mutate_raw(rng: random.Random, directory: Path) -> str:
    path = rng.choice(sorted(directory.iterdir()))
    data = bytearray(path.read_bytes())
    how = rng.choice(["flip", "truncate", "append", "overwrite"])
    if how == "flip" and data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        del data[rng.randrange(len(data) + 1) :]
    elif how == "append":
        data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif data:
        at = rng.randrange(len(data))
        data[at : at + 8] = bytes(rng.choice([0, 0xFF, rng.randrange(256)]) for _ in range(8))
    path.write_bytes(bytes(data))
    return f"{how} {path.name}"


def mutate(rng: random.Random, prefix: Path) -> str:
    v2 = prefix.with_name(prefix.name + ".index").is_file()
    choice = rng.random()
    if choice < 0.2:
        return mutate_raw(rng, prefix.parent)
    if choice < 0.45:
        return mutate_block(rng, rng.choice(table_files(prefix)))
    return mutate_v2_entry(rng, prefix) if v2 else mutate_v1_meta(rng, prefix)


# ----------------------------------------------------------------------------- running


def exercise(prefix: Path) -> str:
    """Read everything; the outcome: 'ok', or the name of the ZooError raised first."""
    outcome = "ok"
    try:
        with zoo.open_checkpoint(prefix) as reader:
            for name in reader:
                try:
                    reader.shape(name)
                    reader.dtype(name)
                    value = reader[name]
                    assert isinstance(value, np.ndarray)
                except zoo.ZooError as exc:
                    outcome = type(exc).__name__ if outcome == "ok" else outcome
    except zoo.ZooError as exc:
        outcome = type(exc).__name__
    return outcome


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(count: int, seed: int) -> dict:
    names = fixture_names()
    baseline = peak_rss_mb()
    outcomes: dict[str, int] = {}
    findings: list[str] = []
    slowest = (0.0, "")
    with tempfile.TemporaryDirectory(prefix="zoo-fuzz-") as tmp:
        for case in range(count):
            rng = random.Random(seed * 1_000_003 + case)
            fixture = rng.choice(names)
            directory = Path(tmp) / f"case{case}"
            shutil.copytree(FIXTURES / fixture, directory)
            for path in directory.iterdir():
                path.chmod(0o644)
            prefix = directory / "model.ckpt"
            what = f"case {case} ({fixture})"
            try:
                what += ": " + mutate(rng, prefix)
                start = time.perf_counter()
                outcome = exercise(prefix)
                elapsed = time.perf_counter() - start
                slowest = max(slowest, (elapsed, what))
            except Exception as exc:
                outcome = "finding"
                tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
                findings.append(f"{what}: {tail[:300]}")
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            shutil.rmtree(directory)
    return {
        "cases": count,
        "seed": seed,
        "outcomes": outcomes,
        "findings": findings[:50],
        "findings_total": len(findings),
        "slowest_s": round(slowest[0], 4),
        "slowest_case": slowest[1][:300],
        "peak_rss_above_baseline_mb": round(peak_rss_mb() - baseline, 1),
        "baseline_rss_mb": round(baseline, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = run(args.count, args.seed)
    print(json.dumps(report))
    return 1 if report["findings_total"] else 0


if __name__ == "__main__":
    sys.exit(main())
