"""CPU inference speed of the Inception family: slimzoo vs the same slim graph in TensorFlow (same
weights) and vs timm's implementation of the same network (random init, same input size).

Every implementation of a network runs in a worker process of its own (set up once), and the
workers take turns on the machine (``paired_rounds``), all with the same number of threads:
``torch.set_num_threads(n)`` for torch, ``intra_op_parallelism_threads=n`` and
``inter_op_parallelism_threads=1`` for TensorFlow (a torch forward has no inter-op parallelism).
TensorFlow runs with its default settings (oneDNN on). Networks are picked by name: those that
``zoo.list_models()`` does not have yet are left out; tf_slim from pip has Inception v1–v3 only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._util import Worker, machine_info, markdown_table, only_networks, paired_rounds

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


def _torch_passes(
    model: Callable[[Any], Any], batches: tuple[int, ...], size: int
) -> tuple[dict[str, Callable[[], Any]], Any]:
    """One pass of ``model`` per batch size (NCHW input, under ``torch.inference_mode``), each
    run once here (a compiled model compiles now, not in a timed turn); and the last logits."""
    import torch

    def one_pass(x: torch.Tensor) -> Callable[[], Any]:
        def run() -> Any:
            with torch.inference_mode():
                return model(x)

        return run

    benches, logits = {}, None
    for batch in batches:
        x = torch.from_numpy(_input(batch, size)).permute(0, 3, 1, 2).contiguous()
        benches[str(batch)] = one_pass(x)
        logits = benches[str(batch)]()
    return benches, logits


def setup_ours(
    arch: str, weights: str, batches: tuple[int, ...], size: int, threads: int, mode: str
) -> tuple[dict[str, Callable[[], Any]], dict]:
    """(worker process) slimzoo's network with ``weights``: one pass per batch size, and the
    logits of the first.

    ``mode``: ``"plain"``, ``zoo.load(arch)`` as it comes; ``"optimized"``, the model after
    ``zoo.optimize_for_inference``; ``"compiled"``, the plain model through ``torch.compile``
    with inductor's freezing; and ``"aot"``, the plain model through ``torch.export`` and
    AOTInductor with freezing, loaded from its package (one per batch size and thread count,
    kept next to ``weights`` for the next worker). All but the plain one run in a process
    that called ``zoo.tune_cpu_allocator()``."""
    import numpy as np
    import torch

    import zoo

    if mode != "plain":
        assert zoo.tune_cpu_allocator()
    torch.set_num_threads(threads)
    optimized = mode == "optimized"
    model = zoo.load(
        arch, checkpoint=dict(np.load(weights)), optimize_for_inference=optimized
    ).eval()
    if mode in ("compiled", "aot"):
        # the README's recipe: inductor's freezing takes the weights as constants (batch norms
        # folded, oneDNN weights packed at compile time). It must be the global switch:
        # torch.compile(options={"freezing": True}) leaves part of it out (inception_v1 at
        # batch 1: 35 ms against 31.5 ms, eager 38 ms).
        import torch._inductor.config

        torch._inductor.config.freezing = True
    if mode == "compiled":
        model = torch.compile(model, dynamic=False)  # one compilation per input shape
    if mode == "aot":
        packages = Path(weights).with_suffix("") / f"threads{threads}"
        model = _aot_compiled(model, packages, batches, size)
    benches, logits = _torch_passes(model, batches, size)
    return benches, {"logits": logits[:1].tolist()}


def _aot_compiled(
    model: Any, folder: Path, batches: tuple[int, ...], size: int
) -> Callable[[Any], Any]:
    """``model`` compiled ahead of time by AOTInductor, one package per batch size (made once
    in ``folder``, loaded from there by later workers): a C++ runner with no guards and no
    Python between the kernels, which is what costs at batch 1. Inductor's C++ kernels keep
    the thread count of the process that compiled them, hence a folder per thread count."""
    import torch

    runners = {}
    folder.mkdir(parents=True, exist_ok=True)
    for batch in batches:
        package = folder / f"batch{batch}.pt2"
        if not package.exists():
            x = torch.from_numpy(_input(batch, size)).permute(0, 3, 1, 2).contiguous()
            with torch.no_grad():
                program = torch.export.export(model, (x,))
                torch._inductor.aoti_compile_and_package(program, package_path=str(package))
        runners[batch] = torch._inductor.aoti_load_package(str(package))
    return lambda x: runners[x.shape[0]](x)


def setup_timm(
    name: str, batches: tuple[int, ...], size: int, threads: int
) -> tuple[dict[str, Callable[[], Any]], dict]:
    """(worker process) timm's network of the same name, random init."""
    import timm
    import torch

    torch.set_num_threads(threads)
    model = timm.create_model(name, pretrained=False, num_classes=1001).eval()
    return _torch_passes(model, batches, size)[0], {}


def _worker(name: str, function: str, *args: Any) -> Worker:
    call = f"{function}({', '.join(repr(a) for a in args)})"
    code = (
        "from benchmarks.bench_inference_inception import *\n"
        "from benchmarks._tf_slim import setup_tf\n"
        f"benches, result = {call}\n"
    )
    # TensorFlow's own default (zoo._tensorflow turns oneDNN off for bit-stable tests)
    return Worker(name, code, env={"TF_ENABLE_ONEDNN_OPTS": "1"})


def _timm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("timm") is not None


_BATCH1_REPEAT, _BATCH1_ROUNDS = 11, 5

MODES = ("plain", "optimized", "compiled", "aot")
# AOTInductor is measured where TF-slim is (its 1-thread batch-1 rows are where per-call
# overhead decides); against timm alone the turns would take a quarter longer for little news
AOT_NETS = TF_SLIM_NETS


def _measure_rows(
    arch: str,
    weights: str,
    batches: tuple[int, ...],
    threads: int,
    plan: dict[int, tuple[int, int]],
) -> tuple[list[list], float | None]:
    """The table rows of ``arch`` at ``threads`` (one per batch size): every implementation, in
    a worker process of its own, timed in turns (:func:`~benchmarks._util.paired_rounds`); and
    the largest |logits difference| between slimzoo and TF (None without TF). ``plan``: the
    (timed passes per turn, rounds) of each batch size."""
    import numpy as np

    size, timm_name = NETWORKS[arch]
    with_tf = arch in TF_SLIM_NETS
    with_timm = bool(timm_name) and _timm_available()
    modes = [m for m in MODES if m != "aot" or arch in AOT_NETS]
    workers = [
        _worker(mode, "setup_ours", arch, weights, batches, size, threads, mode) for mode in modes
    ]
    if with_tf:
        workers.append(_worker("tf", "setup_tf", arch, weights, batches, size, threads))
    if with_timm:
        workers.append(_worker("timm", "setup_timm", timm_name, batches, size, threads))

    def per_mode(values: dict[str, Any]) -> list:
        return [values.get(mode, "n/a") for mode in MODES]

    rows = []
    try:
        for batch in batches:
            repeat, rounds = plan[batch]
            medians = paired_rounds(workers, str(batch), rounds=rounds, repeat=repeat)
            mine = dict(zip(modes, medians))
            row = [arch, f"{size}x{size}", batch, threads]
            row += per_mode({m: 1000 * statistics.median(t) for m, t in mine.items()})
            others = iter(medians[len(modes) :])
            for present in (with_tf, with_timm):
                if not present:
                    row += ["n/a"] * (1 + len(MODES))
                    continue
                theirs = next(others)
                row.append(1000 * statistics.median(theirs))
                # paired: each round's time over the other's time in the same round
                ratios = {
                    m: statistics.median(a / b for a, b in zip(t, theirs)) for m, t in mine.items()
                }
                row += per_mode(ratios)
            rows.append(row)
        results = [w.close() for w in workers]
    finally:
        for w in workers:
            w.kill()
    diff = None
    if with_tf:
        tf_logits = np.array(results[len(modes)]["logits"])
        diff = max(
            float(np.abs(np.array(r["logits"]) - tf_logits).max()) for r in results[: len(modes)]
        )
    return rows, diff


# Found by hand with ONEDNN_VERBOSE, torch.profiler and perf (not measured by this script).
_WHERE_TF_LEADS = (
    "Where the time goes at 1 thread (measured by hand on 2026-12-04 with ONEDNN_VERBOSE, "
    "torch.profiler and perf): not in the convs. With the same weights, inductor's oneDNN convs "
    "execute in 26.0-27.1 ms of inception_v1's pass at batch 1 against TF's 28.0-31.5 ms, and "
    "in 581-586 ms of inception_v2's at batch 16 against 557-595 ms (per conv shape ours are "
    "equal or faster; v2's stem depthwise conv, channel multiplier 8, was the exception while "
    "its asymmetric 'SAME' padding was an 8x8 kernel, 13.1 ms against 10.8: it now pads its "
    "input instead and takes 9.8 ms). What TF-slim saves is the cost around each call: "
    "torch's oneDNN conv op spends about 35 us per call outside the kernel (a 1x1 conv on a "
    "7x7 map: 70 us against 35 us in oneDNN), and a compiled model adds its guards (0.7 ms "
    "per pass) and a Python wrapper between the kernels. AOTInductor removes the last two: "
    "0.94 of the compiled model's time for inception_v1 at batch 1 (20 paired rounds), no "
    "change at batch 16. Two more ideas, tried on the compiled model in paired rounds, are not "
    "used: merging a block's sibling 1x1 convs into one conv (0.99 at batch 1, 1.0 at 16) and "
    "folding the batch norms into the convs before inductor sees them (1.02 at batch 1, 0.99 "
    "at 16: the bias and ReLU then run inside every conv instead of inside the concatenation "
    "or pool that follows). Batch 16 on one thread, where the convs are nearly the whole pass and "
    "a round's ratio moves by up to 6% either way, measured again in 15 rounds of turns "
    "(compiled, AOT and TF only, 2026-12-04 14:00 UTC): AOT / TF 0.984 for inception_v1 (13 "
    "rounds of 15 under 1), 0.965 for inception_v2 (14 of 15), 0.990 for inception_v3 (10 of "
    "15); compiled / TF 0.998, 0.984, 0.991."
)


def run(quick: bool = False, networks: list[str] | None = None, rounds: int | None = None) -> str:
    """Measure and return the Markdown section."""
    import zoo

    repeat = 2 if quick else 3
    rounds = rounds or (2 if quick else 3)
    batches = (1,) if quick else (1, 16)
    # A batch-1 pass is short and jitters most (one slow pass among 3 moves a median by
    # several %), so batch 1 gets more passes per turn and more rounds, at little cost.
    plan = {b: (repeat, rounds) for b in batches}
    if not quick:
        plan[1] = (max(repeat, _BATCH1_REPEAT), max(rounds, _BATCH1_ROUNDS))
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
            for threads in thread_counts:
                arch_rows, diff = _measure_rows(arch, weights, batches, threads, plan)
                rows += arch_rows
                if diff is not None:
                    max_diff[arch] = max(max_diff.get(arch, 0.0), diff)
    rows.sort(key=lambda row: (list(NETWORKS).index(row[0]), row[2], row[3]))

    names = ("slimzoo", "optimized", "compiled", "AOT")  # the columns of MODES
    header = ["network", "input", "batch", "threads", *(f"{n} ms" for n in names)]
    for other in ("TF-slim", "timm"):
        header += [f"{other} ms", *(f"{n} / {other}" for n in names)]
    table = markdown_table(header, rows)
    info = machine_info()
    checks = ", ".join(f"{a} {d:.1e}" for a, d in max_diff.items()) or "none"
    return "\n".join(
        [
            "### Inference speed: Inception v1–v3 (and v4, Inception-ResNet v2) on CPU",
            "",
            "One forward pass (eval) with the same number of threads on each side. Each "
            "implementation runs in a process of its own, set up (and compiled) once; they take "
            "turns on the machine, in rounds (the order rotating), each turn a warm-up pass "
            "and the median of several timed passes: "
            + "; ".join(f"batch {b}: {n} rounds of {r} passes" for b, (r, n) in plan.items())
            + ". ms: an implementation's median over "
            "the rounds; ratio: the median over the rounds of slimzoo's time / the other's "
            "time in the same round. "
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
            "weights packed at compile time); AOT: the same model and freezing through "
            "`torch.export.export` and AOTInductor (`torch._inductor.aoti_compile_and_package`, "
            "run from `aoti_load_package`: no guards, no Python between the kernels), measured "
            "for the networks TF-slim has. All but the first in a process that called "
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
            "",
            _WHERE_TF_LEADS,
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="v3 only, batch 1, 1 thread")
    parser.add_argument("--networks", nargs="+", help="only these (default: all)")
    parser.add_argument("--rounds", type=int, help="rounds of turns (default 3)")
    args = parser.parse_args()
    print(run(quick=args.quick, networks=args.networks, rounds=args.rounds))
