"""The model as it comes, on CPU: ``zoo.load(name).eval()`` under ``torch.inference_mode()``
against TF-slim for every network pip's tf_slim has, and against timm for the rest.

This is the figure most users meet: no ``optimize_for_inference``, no ``torch.compile``, just
eval mode with autograd off, where slimzoo runs its fast path by default (batch norm folded into
cached oneDNN-packed weights; bias, ReLU/ReLU6/hard-swish and the residual add fused).

Each side is a worker process of its own, set up once, and the sides take turns on the machine
(``paired_rounds``), with the same thread count: ``torch.set_num_threads(n)``, and for TF
``intra_op_parallelism_threads=n, inter_op_parallelism_threads=1``. TF-slim runs the same
weights (random, He-scaled, exported through our mapping) in a TF1 graph session, on whichever
of TF's CPU back ends (oneDNN, Eigen) is faster for the row; timm runs its model of the same
network with its own random init (the figures do not depend on the values). Goals (issue 26): at
most 1.0x TF-slim's time and 0.7x timm's in every row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._util import Worker, machine_info, markdown_table, only_networks, paired_rounds

__all__ = ["NETWORKS", "run"]

# slimzoo name -> (input size, baseline, the baseline's name for it). "tf": pip's tf_slim has
# the network; "timm": timm's model of it (the TF port where timm has one: tf_mobilenetv3_*
# pad like TF 'SAME', as ours do); None: neither has it.
NETWORKS: dict[str, tuple[int, str | None, str | None]] = {
    **{f"resnet_v1_{d}": (224, "tf", f"resnet_v1_{d}") for d in (50, 101, 152, 200)},
    **{f"resnet_v2_{d}": (224, "tf", f"resnet_v2_{d}") for d in (50, 101, 152, 200)},
    "vgg_16": (224, "tf", "vgg_16"),
    "vgg_19": (224, "tf", "vgg_19"),
    "inception_v1": (224, "tf", "inception_v1"),
    "inception_v2": (224, "tf", "inception_v2"),
    "inception_v3": (299, "tf", "inception_v3"),
    "inception_v4": (299, "timm", "inception_v4"),
    "inception_resnet_v2": (299, "timm", "inception_resnet_v2"),
    "mobilenet_v1": (224, "timm", "mobilenetv1_100"),
    "mobilenet_v2": (224, "timm", "mobilenetv2_100"),
    "mobilenet_v2_035": (224, "timm", "mobilenetv2_035"),
    "mobilenet_v2_140": (224, "timm", "mobilenetv2_140"),
    "mobilenet_v3_large": (224, "timm", "tf_mobilenetv3_large_100"),
    "mobilenet_v3_large_minimalistic": (224, "timm", "tf_mobilenetv3_large_minimal_100"),
    "mobilenet_v3_small": (224, "timm", "tf_mobilenetv3_small_100"),
    "nasnet_large": (331, "timm", "nasnetalarge"),
    "pnasnet_large": (331, "timm", "pnasnet5large"),
}
QUICK = ("resnet_v2_50", "inception_v3", "mobilenet_v2")
# networks with neither baseline (named in the section so nobody wonders where they are)
WITHOUT_BASELINE = (
    "mobilenet_v1_025/050/075 and mobilenet_v2_130 (timm has no such width), nasnet_mobile "
    "and pnasnet_mobile (timm has only the large ones)"
)
GOAL = {"tf": 1.0, "timm": 0.7}
TUNED_FROM_BATCH = 16


# Counts the page faults of each timed pass (a worker's ``result["faults"][key]``): freed
# activations that glibc handed back to the OS come back as fresh pages on the next pass.
_COUNT_FAULTS = """
import resource as _resource

def _counting(key, fn):
    def run():
        before = _resource.getrusage(_resource.RUSAGE_SELF).ru_minflt
        out = fn()
        result.setdefault("faults", {}).setdefault(key, []).append(
            _resource.getrusage(_resource.RUSAGE_SELF).ru_minflt - before)
        return out
    return run

benches = {key: _counting(key, fn) for key, fn in benches.items()}
"""


def _worker(name: str, call: str, *, tuned: bool = False, onednn: bool = True) -> Worker:
    code = (
        "from benchmarks.bench_inference_inception import setup_ours, setup_timm\n"
        "from benchmarks._tf_slim import setup_tf\n"
        + ("import zoo\nassert zoo.tune_cpu_allocator()\n" if tuned else "")
        + f"benches, result = {call}\n"
        + _COUNT_FAULTS
    )
    # set either way: zoo._tensorflow turns oneDNN off unless told (for bit-stable tests)
    return Worker(name, code, env={"TF_ENABLE_ONEDNN_OPTS": "1" if onednn else "0"})


# TF's two CPU back ends; which is faster depends on the CPU and the batch size. TF turns oneDNN
# on by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on an AVX2 CPU (AMD EPYC Zen 3) its
# oneDNN kernels took 17x Eigen's time for resnet_v1_50 at batch 1 and 0.8x at batch 16.
TF_BACKENDS = {"oneDNN": True, "Eigen": False}
PROBE = (1, 2)  # (warm-up, timed) passes per back end to pick the faster one for a row


def _faster_tf(tf_workers: dict[str, Worker], key: str) -> str:
    """The back end (a key of ``tf_workers``) whose passes of ``key`` are faster."""
    warmup, repeat = PROBE
    times = {
        backend: statistics.median(worker.time(key, repeat=repeat, warmup=warmup))
        for backend, worker in tf_workers.items()
    }
    return min(times, key=times.__getitem__)


def _args(*args: Any) -> str:
    return ", ".join(repr(a) for a in args)


def _measure(
    arch: str, weights: str, threads: int, plan: dict[int, tuple[int, int, int]]
) -> tuple[list[list], float | None]:
    """The rows of ``arch`` at ``threads`` (one per batch size) and, against TF, the largest
    |logits difference| (None against timm)."""
    import numpy as np

    size, baseline, other = NETWORKS[arch]
    batches = tuple(plan)
    ours_call = f"setup_ours({_args(arch, weights, batches, size, threads, 'plain')})"
    ours_worker = _worker("ours", ours_call)
    tf_workers: dict[str, Worker] = {}
    if baseline == "tf":
        tf_call = f"setup_tf({_args(arch, weights, batches, size, threads)})"
        tf_workers = {b: _worker(f"tf {b}", tf_call, onednn=on) for b, on in TF_BACKENDS.items()}
        baselines = list(tf_workers.values())
    else:
        baselines = [_worker("timm", f"setup_timm({_args(other, batches, size, threads)})")]
    # the same model in a process with zoo.tune_cpu_allocator(), for the large batches only
    # (where glibc's returning freed activations to the OS costs page faults on every pass)
    tuned = _worker("ours, tuned allocator", ours_call, tuned=True)
    everyone = (ours_worker, *baselines, tuned)
    rows = []
    try:
        for batch in batches:
            repeat, rounds, warmup = plan[batch]
            label = f"timm `{other}`"
            against = baselines[0]
            if tf_workers:
                backend = _faster_tf(tf_workers, str(batch))
                label, against = f"TF-slim ({backend})", tf_workers[backend]
            sides = [ours_worker, against] + ([tuned] if batch >= TUNED_FROM_BATCH else [])
            times = paired_rounds(sides, str(batch), rounds=rounds, repeat=repeat, warmup=warmup)
            ours, theirs = times[:2]
            per_round = [a / b for a, b in zip(ours, theirs)]  # paired by round
            ratio = statistics.median(per_round)
            met = "yes" if ratio <= GOAL[baseline] else "**no**"
            row = [arch, f"{size}x{size}", batch, threads, label]
            row += [1000 * statistics.median(ours), 1000 * statistics.median(theirs), ratio]
            row.append(f"{min(per_round):.2f}-{max(per_round):.2f}")
            row += [f"{GOAL[baseline]:.1f}", met]
            if len(times) > 2:
                row.append(statistics.median(a / b for a, b in zip(times[2], theirs)))
            else:
                row.append("-")
            rows.append(row)
            print(" | ".join(str(v) for v in row), file=sys.stderr, flush=True)
        results = [w.close() for w in everyone]
    finally:
        for w in everyone:
            w.kill()
    for row in rows:  # page faults per pass of ours, median over its timed passes
        row.insert(6, statistics.median(results[0]["faults"][str(row[2])][1:]))
    if baseline != "tf":
        return rows, None
    mine = np.array(results[0]["logits"]).reshape(-1)
    # relative to the largest logit: random weights give logits of any scale (both back ends)
    return rows, max(
        float(np.abs(mine - theirs).max() / np.abs(theirs).max())
        for theirs in (np.array(r["logits"]).reshape(-1) for r in results[1:-1])
    )


def run(
    quick: bool = False, networks: list[str] | None = None, threads: list[int] | None = None
) -> str:
    """Measure and return the Markdown section."""
    from benchmarks.bench_inference_inception import _write_weights

    archs = list(QUICK if quick else NETWORKS)
    if networks:
        archs = only_networks(list(NETWORKS), networks)
    cores = os.cpu_count() or 1
    thread_counts = threads or ([1] if quick else sorted({1, min(2, cores)}))
    # batch -> (timed passes per turn, rounds, warm-up passes per turn). A batch-1 pass is short
    # and jitters most, so it gets more passes; a batch-16 pass lasts long enough that the
    # caches another process left cold cost little of it.
    plan = {1: (7, 5, 1)} if quick else {1: (7, 5, 1), 16: (2, 3, 0)}
    rows, diffs = [], {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            weights = str(Path(tmp) / f"{arch}.npz")
            _write_weights(arch, Path(weights))
            for n in thread_counts:
                arch_rows, diff = _measure(arch, weights, n, plan)
                rows += arch_rows
                if diff is not None:
                    diffs[arch] = max(diffs.get(arch, 0.0), diff)
    rows.sort(key=lambda row: (archs.index(row[0]), row[2], row[3]))
    header = ["network", "input", "batch", "threads", "baseline", "ours ms", "ours faults/pass"]
    header += ["baseline ms", "ours / baseline", "range over rounds", "goal", "met"]
    header.append("tuned allocator / baseline")
    # by the header's names, not positions: a column added above cannot shift what is read
    ratio_at, met_at = header.index("ours / baseline"), header.index("met")
    missed = [
        f"{r[0]} batch {r[2]}, {r[3]} thread(s) ({r[ratio_at]:.2f})"
        for r in rows
        if r[met_at] != "yes"
    ]
    info = machine_info()
    checks = ", ".join(f"{a} {d:.1e}" for a, d in diffs.items()) or "none"
    passes = "; ".join(
        f"batch {b}: {n} rounds of {w} warm-up and {r} timed passes"
        for b, (r, n, w) in plan.items()
    )
    return "\n".join(
        [
            "### The model as it comes (fast by default) vs TF-slim and timm, CPU",
            "",
            "ours: `zoo.load(name).eval()` called under `torch.inference_mode()` on a contiguous "
            "NCHW batch, no other option: the fast path by default (batch norm folded into "
            "cached oneDNN-packed weights, bias, ReLU/ReLU6/hard-swish and residual add fused). "
            "TF-slim: the same network from pip's tf_slim with the same weights in a TF1 graph "
            "session (intra-op threads as listed, inter-op 1), for every network tf_slim "
            "has, on the faster of TF's two CPU back ends for the row (oneDNN or Eigen, "
            f"picked by {PROBE[1]} timed passes of each after {PROBE[0]} warm-up; named in "
            "the baseline column); timm: its model of the same network (random init) for the "
            "rest. "
            "Each side in a process of its own, set up once; the sides take turns, the order "
            f"rotating ({passes}). ms: a side's median over the rounds; ours / baseline: the "
            "median over the rounds of the two times measured in the same round (below 1: "
            "ours faster); range over rounds: the lowest and highest of those per-round ratios "
            "(how far one row can be trusted on this machine). Goal: at most 1.0x TF-slim, "
            "0.7x timm. ours faults/pass: minor page faults in one of our timed passes "
            "(median): freed activations glibc returned to the OS and that come back as fresh "
            "zeroed pages. tuned allocator / baseline (batch "
            f"{TUNED_FROM_BATCH}): ours in a process that called `zoo.tune_cpu_allocator()` "
            "(opt-in and process-wide, so not part of the model as it comes), taking turns "
            "with the other two. Largest |logits difference| against TF-slim relative to the "
            f"largest |logit| (batch 1): {checks}. Without a baseline: {WITHOUT_BASELINE}.",
            "",
            markdown_table(header, rows),
            "",
            "Rows that miss the goal: " + ("; ".join(missed) if missed else "none") + ".",
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}; 1-minute "
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three networks, batch 1, 1 thread")
    parser.add_argument("--networks", nargs="+", help="only these (default: all)")
    parser.add_argument("--threads", nargs="+", type=int, help="thread counts (default 1 and 2)")
    args = parser.parse_args()
    print(run(quick=args.quick, networks=args.networks, threads=args.threads))
