"""CPU inference speed of the Inception family: slimzoo vs the same slim graph in TensorFlow (same
weights) and vs timm's implementation of the same network (random init, same input size).

Every (network, implementation) pair runs in a fresh process (``run_isolated``) with the same
number of threads: ``torch.set_num_threads(n)`` for torch, ``intra_op_parallelism_threads=n`` and
``inter_op_parallelism_threads=1`` for TensorFlow (a torch forward has no inter-op parallelism).
TensorFlow runs with its default settings (oneDNN on). Networks are picked by name: those that
``zoo.list_models()`` does not have yet are left out; tf_slim from pip has Inception v1–v3 only.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._util import machine_info, markdown_table, measure, only_networks, run_isolated

# slimzoo name -> (input size, timm name or None)
NETWORKS = {
    "inception_v1": (224, None),
    "inception_v2": (224, None),
    "inception_v3": (299, "inception_v3"),
    "inception_v4": (299, "inception_v4"),
    "inception_resnet_v2": (299, "inception_resnet_v2"),
}
# networks that pip's tf_slim 1.1 has (module tf_slim.nets.<name>)
TF_SLIM_NETS = {"inception_v1", "inception_v2", "inception_v3"}


def _thread_counts() -> tuple[int, ...]:
    """1 thread, and the machine's cores up to 4 (both sides always get the same count)."""
    cores = max(1, min(4, os.cpu_count() or 1))
    return (1, cores) if cores > 1 else (1,)


def _write_weights(arch: str, path: Path) -> None:
    """Random TF-named weights for ``arch`` (He-normal convs, batch norm statistics of a trained
    net's magnitude, so activations keep their scale and no side meets denormals)."""
    import numpy as np

    from architectures import create_model, tf_mapping

    rng = np.random.default_rng(0)
    weights = {}
    for target in tf_mapping(create_model(arch)).values():
        leaf = target.name.rsplit("/", 1)[-1]
        shape = target.shape
        if leaf in ("weights", "pointwise_weights", "depthwise_weights"):
            fan_in = np.prod(shape[:2]) if leaf == "depthwise_weights" else np.prod(shape[:-1])
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif leaf == "moving_variance":
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf == "gamma":
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:  # biases, beta, moving_mean
            value = 0.1 * rng.standard_normal(shape)
        weights[target.name] = value.astype(np.float32)
    np.savez(path, **weights)


def _input(batch: int, size: int):
    import numpy as np

    return np.random.default_rng(1).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)


def time_ours(
    arch: str,
    weights: str,
    batch: int,
    size: int,
    threads: int,
    repeat: int,
    mode: str = "plain",
) -> dict:
    """(child process) slimzoo's network with ``weights``: median seconds and logits.

    ``mode``: ``"plain"``, ``zoo.load(arch)`` as it comes; ``"optimized"``, the model after
    ``zoo.optimize_for_inference``, and ``"compiled"``, the plain model through
    ``torch.compile`` with inductor's freezing, both in a process
    that called ``zoo.tune_cpu_allocator()``."""
    import numpy as np
    import torch

    import zoo

    if mode != "plain":
        assert zoo.tune_cpu_allocator()
    torch.set_num_threads(threads)
    optimized = mode == "optimized"
    model = zoo.load(arch, checkpoint=dict(np.load(weights)), optimize_for_inference=optimized)
    if mode == "compiled":
        # the README's recipe: inductor's freezing takes the weights as constants (batch norms
        # folded, oneDNN weights packed at compile time). It must be the global switch:
        # torch.compile(options={"freezing": True}) leaves part of it out (inception_v1 at
        # batch 1: 35 ms against 31.5 ms, eager 38 ms).
        import torch._inductor.config

        torch._inductor.config.freezing = True
        model = torch.compile(model, dynamic=False)  # one compilation per input shape
    x = torch.from_numpy(_input(batch, size)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        seconds = measure(lambda: model(x), repeat=repeat, warmup=2)
        logits = model(x)[:1].tolist()
    return {"seconds": seconds, "logits": logits}


def time_tf(arch: str, weights: str, batch: int, size: int, threads: int, repeat: int) -> dict:
    """(child process) the tf_slim network with the same weights: median seconds and logits."""
    import importlib

    import numpy as np

    from zoo._tensorflow import import_tensorflow

    tf, slim = import_tensorflow()
    nets = importlib.import_module(f"tf_slim.nets.{arch}")
    values = dict(np.load(weights))
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, (batch, size, size, 3))
        with slim.arg_scope(getattr(nets, f"{arch}_arg_scope")()):
            logits, _ = getattr(nets, arch)(images, num_classes=1001, is_training=False)
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads, inter_op_parallelism_threads=1
        )
        with tf.compat.v1.Session(graph=graph, config=config) as sess:
            for v in tf.compat.v1.global_variables():
                v.load(values[v.op.name], sess)
            feed = {images: _input(batch, size)}
            seconds = measure(lambda: sess.run(logits, feed), repeat=repeat)
            out = sess.run(logits, feed)[:1].tolist()
    return {"seconds": seconds, "logits": out}


def time_timm(name: str, batch: int, size: int, threads: int, repeat: int) -> dict:
    """(child process) timm's network of the same name, random init: median seconds."""
    import timm
    import torch

    torch.set_num_threads(threads)
    model = timm.create_model(name, pretrained=False, num_classes=1001).eval()
    x = torch.from_numpy(_input(batch, size)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        seconds = measure(lambda: model(x), repeat=repeat)
    return {"seconds": seconds}


def _child(function: str, *args: Any) -> dict:
    call = f"{function}({', '.join(repr(a) for a in args)})"
    code = f"from benchmarks.bench_inference_inception import *\nresult = {call}\n"
    # TensorFlow's own default (zoo._tensorflow turns oneDNN off for bit-stable tests)
    return run_isolated(code, env={"TF_ENABLE_ONEDNN_OPTS": "1"})


def _timm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("timm") is not None


def _measure_row(
    arch: str, weights: str, batch: int, threads: int, repeat: int, rounds: int
) -> tuple:
    """One table row: every implementation of ``arch`` at one batch size and thread count, and
    the largest |logits difference| between slimzoo and TF (None without TF).

    The implementations take turns, ``rounds`` times (each time in a fresh process), and each
    keeps its best median: a burst of load from elsewhere on the machine then slows one
    process, not one implementation's every measurement."""
    import numpy as np

    size, timm_name = NETWORKS[arch]
    with_tf = arch in TF_SLIM_NETS
    with_timm = bool(timm_name) and _timm_available()
    runs: dict[str, list[dict]] = {"ours": [], "fast": [], "compiled": [], "tf": [], "timm": []}
    for _ in range(rounds):
        for key, mode in (("ours", "plain"), ("fast", "optimized"), ("compiled", "compiled")):
            args = (arch, weights, batch, size, threads, repeat, mode)
            runs[key].append(_child("time_ours", *args))
        if with_tf:
            runs["tf"].append(_child("time_tf", arch, weights, batch, size, threads, repeat))
        if with_timm:
            runs["timm"].append(_child("time_timm", timm_name, batch, size, threads, repeat))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items() if v}
    mine = [best["ours"], best["fast"], best["compiled"]]
    row = [arch, f"{size}x{size}", batch, threads, *(1000 * r["seconds"] for r in mine)]
    diff = None
    for other, present in (("tf", with_tf), ("timm", with_timm)):
        if present:
            row += [1000 * best[other]["seconds"]]
            row += [r["seconds"] / best[other]["seconds"] for r in mine]
        else:
            row += ["n/a"] * 4
    if with_tf:
        diff = max(
            float(np.abs(np.array(r["logits"]) - np.array(best["tf"]["logits"])).max())
            for r in mine
        )
    return row, diff


def run(quick: bool = False, networks: list[str] | None = None, rounds: int | None = None) -> str:
    """Measure and return the Markdown section."""
    import zoo

    repeat = 2 if quick else 3
    rounds = rounds or (1 if quick else 2)
    batches = (1,) if quick else (1, 16)
    thread_counts = (1,) if quick else _thread_counts()
    archs = [a for a in NETWORKS if a in zoo.list_models()]
    if quick:  # the one network with all three implementations
        archs = [a for a in archs if a == "inception_v3"]
    if networks:
        archs = [a for a in only_networks(list(NETWORKS), networks) if a in archs]

    rows, max_diff = [], {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            weights = str(Path(tmp) / f"{arch}.npz")
            _write_weights(arch, Path(weights))
            for batch in batches:
                for threads in thread_counts:
                    row, diff = _measure_row(arch, weights, batch, threads, repeat, rounds)
                    rows.append(row)
                    if diff is not None:
                        max_diff[arch] = max(max_diff.get(arch, 0.0), diff)

    header = ["network", "input", "batch", "threads", "slimzoo ms", "optimized ms", "compiled ms"]
    for other in ("TF-slim", "timm"):
        header += [f"{other} ms", *(f"{m} / {other}" for m in ("slimzoo", "optimized", "compiled"))]
    table = markdown_table(header, rows)
    info = machine_info()
    checks = ", ".join(f"{a} {d:.1e}" for a, d in max_diff.items()) or "none"
    return "\n".join(
        [
            "### Inference speed: Inception v1–v3 (and v4, Inception-ResNet v2) on CPU",
            "",
            f"Median wall time of one forward pass (eval, {repeat} runs after a warm-up) with the "
            "same number of threads on each side, each measurement in a fresh process; the "
            f"implementations take turns, {rounds} round(s), and each keeps its best median. "
            "TF-slim: "
            "the same network from pip's tf_slim with the same weights, in a TF1 session "
            "(intra-op threads as listed, inter-op 1, oneDNN on); timm: its model of the same "
            "name with random weights, NCHW input as given (no timm model for v1/v2; tf_slim "
            "has no v4 or Inception-ResNet v2). slimzoo: `zoo.load(name)` as it comes; optimized: "
            "`zoo.load(name, optimize_for_inference=True)` (batch norms folded, convs on packed "
            "oneDNN weights with the bias and ReLU fused) and compiled: "
            "`torch.compile(zoo.load(name), dynamic=False)` with "
            "`torch._inductor.config.freezing = True` "
            "(inductor with the weights frozen as constants: batch norms folded, oneDNN "
            "weights packed at compile time), each in a process that called "
            "`zoo.tune_cpu_allocator()`. Ratios below 1 mean slimzoo is faster. Largest "
            f"|logits difference| slimzoo (any) vs TF on the benchmark input: {checks}.",
            "",
            table,
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}; 1-minute "
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after. Other "
            "processes on the cores (a load above the core count) slow PyTorch's OpenMP "
            "threads far more than TensorFlow's thread pool: compare multi-thread rows only "
            "from a quiet machine.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="v3 only, batch 1, 1 thread")
    parser.add_argument("--networks", nargs="+", help="only these (default: all)")
    parser.add_argument("--rounds", type=int, help="turns per implementation (default 2)")
    args = parser.parse_args()
    print(run(quick=args.quick, networks=args.networks, rounds=args.rounds))
