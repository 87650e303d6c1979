"""Where the time goes in the rows of ``bench_fast_default`` that miss their goal:
torch's profiler over the model as it comes (``zoo.load(name).eval()`` under
``torch.inference_mode()``) and over timm's model of the same network where timm is the
baseline; TF's own step trace (``RunOptions.FULL_TRACE``) over the tf_slim graph where TF-slim
is. At batch 16 also the page faults per pass, and the same model in a process whose glibc
allocator is tuned (``zoo.tune_cpu_allocator()``).

Per network: the wall time of a pass without tracing; under the trace, the ops a pass runs (for
torch the top-level ones: not called by another op; for TF the graph's nodes that compute), the
time spent inside them (convolutions and matrix products apart from the other ops), and the rest
of the pass (for torch Python: module calls, the fast path's cache check; for TF the executor).
Both tracers add their own cost to each op, so the shares and the time inside the heaviest ops
are the figures to compare, not the absolute times.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from typing import Any

from benchmarks._util import machine_info, markdown_table, run_isolated
from benchmarks.bench_fast_default import TF_BACKENDS

__all__ = ["CASES", "run"]

# (side, network for that side, input size, batch, threads); side "ours", "tf" or "timm".
# Ours and its baseline for each network with a missed row at batch 1; at batch 16 one network
# per family, with a third profile beside them: ours in a process whose glibc allocator is tuned
# (the batch-16 misses are page faults).
CASES: tuple[tuple[str, str, int, int, int], ...] = (
    ("ours", "inception_v1", 224, 1, 1),
    ("tf", "inception_v1", 224, 1, 1),
    ("ours", "inception_v2", 224, 1, 1),
    ("tf", "inception_v2", 224, 1, 1),
    ("ours", "inception_v3", 299, 1, 1),
    ("tf", "inception_v3", 299, 1, 1),
    ("ours", "resnet_v1_200", 224, 1, 1),
    ("tf", "resnet_v1_200", 224, 1, 1),
    ("ours", "resnet_v2_152", 224, 1, 1),
    ("tf", "resnet_v2_152", 224, 1, 1),
    *(
        case
        for name, size in (
            ("resnet_v1_50", 224),
            ("resnet_v2_50", 224),
            ("vgg_16", 224),
            ("inception_v1", 224),
            ("inception_v3", 299),
        )
        for case in (
            ("ours", name, size, 16, 1),
            ("ours, tuned allocator", name, size, 16, 1),
            ("tf", name, size, 16, 1),
        )
    ),
    ("ours", "inception_v4", 299, 1, 1),
    ("timm", "inception_v4", 299, 1, 1),
    ("ours", "inception_resnet_v2", 299, 1, 1),
    ("timm", "inception_resnet_v2", 299, 1, 1),
    ("ours", "mobilenet_v1", 224, 1, 1),
    ("timm", "mobilenetv1_100", 224, 1, 1),
    ("ours", "mobilenet_v2_035", 224, 1, 1),
    ("timm", "mobilenetv2_035", 224, 1, 1),
    ("ours", "mobilenet_v2_140", 224, 1, 1),
    ("timm", "mobilenetv2_140", 224, 1, 1),
    ("ours", "mobilenet_v3_large", 224, 1, 1),
    ("timm", "tf_mobilenetv3_large_100", 224, 1, 1),
    ("ours", "mobilenet_v3_large_minimalistic", 224, 1, 1),
    ("timm", "tf_mobilenetv3_large_minimal_100", 224, 1, 1),
    ("ours", "mobilenet_v3_small", 224, 1, 1),
    ("timm", "tf_mobilenetv3_small_100", 224, 1, 1),
)
QUICK = CASES[:2]
# batch -> (warm-up passes, timed passes untraced, traced passes); a batch-16 pass is long
# enough to need fewer
PASSES = {1: (3, 15, 5), 16: (1, 5, 2)}


# TF nodes that compute nothing (graph plumbing, variable reads): timed, not counted as ops
_TF_PLUMBING = {
    *("_SOURCE", "_Retval", "NoOp", "Const", "Identity", "Placeholder"),
    *("VariableV2", "VarHandleOp", "ReadVariableOp"),
}


def profile_tf(name: str, size: int, batch: int, threads: int) -> dict[str, Any]:
    """(process of its own) TF's step trace of the tf_slim network (random weights)."""
    import numpy as np

    from benchmarks._tf_slim import session
    from zoo._tensorflow import import_tensorflow

    tf, _ = import_tensorflow()
    sess, images, logits = session(name, batch, size, threads)
    feed = {images: np.random.default_rng(0).standard_normal(images.shape).astype(np.float32)}
    traced = PASSES[batch][2]
    timed = _timed(lambda: sess.run(logits, feed), batch)
    trace = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    by_op: Counter[str] = Counter()
    ops = profiled = 0.0
    for _ in range(traced):
        metadata = tf.compat.v1.RunMetadata()
        start = time.perf_counter()
        sess.run(logits, feed, options=trace, run_metadata=metadata)
        profiled += time.perf_counter() - start
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                op = node.timeline_label.partition(" = ")[2].partition("(")[0] or node.node_name
                by_op[op] += node.all_end_rel_micros
                ops += op not in _TF_PLUMBING
    return _figures(timed, profiled / traced, ops / traced, by_op, traced)


def _timed(one_pass: Any, batch: int) -> tuple[list[float], list[int]]:
    """Seconds and minor page faults of each timed pass after the warm-up ones (``PASSES``)."""
    import resource

    warmup, passes, _ = PASSES[batch]
    for _ in range(warmup):
        one_pass()
    times, faults = [], []
    for _ in range(passes):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        one_pass()
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return times, faults


def _is_conv(op: str) -> bool:
    """Whether a torch op or TF node is a convolution or a matrix product (the kernels both
    sides take from oneDNN, so equal work should take equal time there)."""
    op = op.lower()
    return any(word in op for word in ("conv", "matmul", "linear", "addmm")) or op == "aten::mm"


def _figures(
    timed: tuple[list[float], list[int]],
    profiled: float,
    ops: float,
    by_op: Counter[str],
    traced: int,
) -> dict:
    """One row's figures: ``profiled`` and ``ops`` per traced pass, ``by_op`` µs per op name
    summed over ``traced`` passes."""
    times, faults = timed
    per_pass = {op: us / 1e6 / traced for op, us in by_op.items()}
    inside = sum(per_pass.values())
    heaviest = [f"{op} {100 * t / inside:.0f}%" for op, t in Counter(per_pass).most_common(3)]
    return {
        "wall": statistics.median(times),
        "faults": statistics.median(faults),
        "profiled": profiled,
        "ops": ops,
        "inside": inside,
        "conv": sum(t for op, t in per_pass.items() if _is_conv(op)),
        "heaviest": heaviest,
    }


def profile(side: str, name: str, size: int, batch: int, threads: int) -> dict[str, Any]:
    """(process of its own) the profile of one network; returns the figures of one table row."""
    if side == "tf":
        return profile_tf(name, size, batch, threads)
    import torch

    if side == "ours, tuned allocator":
        import zoo

        assert zoo.tune_cpu_allocator()

    torch.set_num_threads(threads)
    if side.startswith("ours"):
        import zoo

        model = zoo.load(name).eval()
    else:
        import timm

        model = timm.create_model(name).eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))

    def one_pass() -> None:
        with torch.inference_mode():
            model(x)

    timed = _timed(one_pass, batch)
    traced = PASSES[batch][2]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(traced):
            one_pass()
        profiled = time.perf_counter() - start
    top = [e for e in prof.events() if e.cpu_parent is None]
    by_op: Counter[str] = Counter()
    for e in top:
        by_op[e.name] += e.cpu_time_total
    return _figures(timed, profiled / traced, len(top) / traced, by_op, traced)


def run(quick: bool = False) -> str:
    """Measure and return the Markdown section."""
    rows = []
    for side, name, size, batch, threads in QUICK if quick else CASES:
        code = (
            "from benchmarks.bench_fast_default_profile import profile\n"
            f"result = profile{(side, name, size, batch, threads)!r}\n"
        )
        backend = ""
        if side == "tf":  # the back end bench_fast_default would pick: the faster one
            profiles = {
                b: run_isolated(code, env={"TF_ENABLE_ONEDNN_OPTS": "1" if on else "0"})
                for b, on in TF_BACKENDS.items()
            }
            backend = min(profiles, key=lambda b: profiles[b]["wall"])
            r = profiles[backend]
        else:
            r = run_isolated(code)
        outside = r["profiled"] - r["inside"]
        label = {"timm": f"timm `{name}`", "tf": f"TF-slim ({backend}) {name}"}.get(side, name)
        label += ", tuned allocator" if "tuned" in side else ""
        row = [label, f"{size}x{size}", batch, threads]
        row += [1000 * r["wall"], round(r["faults"]), round(r["ops"])]
        row += [1000 * r["profiled"], 1000 * r["inside"], 1000 * r["conv"]]
        row += [1000 * (r["inside"] - r["conv"]), 1000 * outside]
        row += [r["inside"] / r["profiled"], 1e6 * outside / r["ops"]]
        row.append(", ".join(r["heaviest"]))
        rows.append(row)
        print(" | ".join(str(v) for v in row), file=sys.stderr, flush=True)
    header = ["network", "input", "batch", "threads", "pass ms", "page faults/pass", "ops/pass"]
    header += ["profiled pass ms", "inside ops ms", "conv & matmul ms", "other ops ms"]
    header += ["outside ops ms", "share inside ops"]
    header += ["outside µs per op", "heaviest ops (share of inside)"]
    info = machine_info()
    passes = "; ".join(
        f"batch {b}: {w} warm-up passes, then {n} timed untraced (pass ms: median) and {t} traced"
        for b, (w, n, t) in PASSES.items()
    )
    return "\n".join(
        [
            "### Where the time goes: profiles of the model as it comes",
            "",
            "torch's profiler (CPU) over passes of `zoo.load(name).eval()` under "
            "`torch.inference_mode()` (random weights; the fast path by default) and of timm's "
            "model where timm is the baseline; TF's step trace (`RunOptions.FULL_TRACE`) over "
            "the tf_slim graph (intra-op threads as listed, inter-op 1) where TF-slim is, on "
            "the faster of TF's CPU back ends (oneDNN, Eigen; both profiled, the faster by "
            f"pass ms shown). Each network in a fresh process: {passes}. Ops: for torch the "
            "top-level ops (not called by another op: a fused conv, a pool, a concat, ...), for "
            "TF the graph nodes that compute (constants, identities and variables timed but not "
            "counted); inside ops: the time spent in them per traced pass, split into "
            "convolutions and matrix products (oneDNN's kernels on both sides) and the other "
            "ops (pools, concats, pads, batch norms, activations not fused); outside: the rest "
            "of a traced pass (torch: Python module calls and the fast path's cache check; TF: "
            "its executor). Tracing adds its own "
            "cost to each op, so compare shares and the heaviest ops, not absolute times. "
            "Page faults/pass: minor faults of an untraced pass (median). Tuned allocator: the "
            "process called `zoo.tune_cpu_allocator()` first.",
            "",
            markdown_table(header, rows),
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="inception_v1 only (ours and TF-slim)")
    args = parser.parse_args()
    print(run(quick=args.quick))
