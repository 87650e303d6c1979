"""What the inference options buy on CPU: ``fuse_bn=True``, channels-last input,
``optimize_for_inference``, ``torch.compile``.

One network per family (random weights, batch-norm statistics randomised), its default input
size, batch 1 and 32, ``torch.inference_mode``, eval mode, one process with a fixed thread
count. The baseline is ``zoo.load(name)`` called on a contiguous NCHW batch, as a user would;
each variant is timed in alternating rounds with it (best round's median each), and its logits
are checked against the baseline's (max |diff| reported). ``torch.compile`` (inductor, default
mode) is timed after its compilation, whose one-off cost is reported separately.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

import zoo
from benchmarks._util import machine_info, markdown_table, measure, random_model

__all__ = ["run"]

NETWORKS = ("resnet_v1_50", "inception_v3", "mobilenet_v2", "nasnet_mobile")
COMPILED = ("resnet_v1_50", "mobilenet_v2")  # compile takes minutes per network on few cores


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _size(name: str) -> int:
    import zoo

    return zoo.model_info(name).input_size[-1]


def run(quick: bool = False, threads: int | None = None) -> str:
    threads = threads or _threads()
    torch.set_num_threads(threads)
    names = NETWORKS[:1] if quick else NETWORKS
    batches = (1, 8) if quick else (1, 16)
    rounds = 2 if quick else 3
    repeats = {1: 5, 8: 2, 16: 3}
    rows = []
    for name in names:
        plain, fused = random_model(name), random_model(name, fuse_bn=True)
        optimized = zoo.optimize_for_inference(random_model(name))
        variants: dict[str, tuple[torch.nn.Module, bool]] = {
            "fuse_bn": (fused, False),
            "channels_last input": (plain, True),
            "fuse_bn + channels_last input": (fused, True),
            "optimize_for_inference": (optimized, False),
        }
        compile_seconds = None
        if name in COMPILED and not quick:
            compiled = torch.compile(fused)
            start = time.perf_counter()
            with torch.inference_mode():
                compiled(torch.randn(batches[0], 3, _size(name), _size(name)))
            compile_seconds = time.perf_counter() - start
            variants["fuse_bn + torch.compile"] = (compiled, False)
        for batch in batches:
            x = torch.randn(batch, 3, _size(name), _size(name))
            x_last = x.contiguous(memory_format=torch.channels_last)
            calls: dict[str, Callable[[], torch.Tensor]] = {"baseline": lambda m=plain, xi=x: m(xi)}
            for label, (model, last) in variants.items():
                calls[label] = lambda m=model, xi=(x_last if last else x): m(xi)
            best = {label: float("inf") for label in calls}
            with torch.inference_mode():
                want = calls["baseline"]()
                errors = {label: float((c() - want).abs().max()) for label, c in calls.items()}
                for _ in range(rounds):
                    for label, call in calls.items():
                        best[label] = min(best[label], measure(call, repeat=repeats[batch]))
            for label in variants:
                note = ""
                if label.endswith("compile") and compile_seconds is not None:
                    note = f"compiled in {compile_seconds:.0f} s"
                ms, base = best[label] * 1e3, best["baseline"] * 1e3
                rows.append([name, batch, label, base, ms, ms / base, errors[label], note])
    info = machine_info()
    header = ["network", "batch", "variant", "baseline ms", "variant ms", "ratio", "max |diff|", ""]
    return "\n".join(
        [
            "### Inference options on CPU: fuse_bn, channels-last, optimize_for_inference, "
            "torch.compile",
            "",
            f"Random weights with randomised batch-norm statistics, default input size, "
            f"{threads} torch threads, `torch.inference_mode`; best of {rounds} alternating rounds "
            "of a median. Baseline: `zoo.load(name)` on a contiguous NCHW batch. ratio = variant "
            "/ baseline (below 1: the option is faster); max |diff| = largest logit difference "
            "from the baseline.",
            "",
            markdown_table(header, rows),
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one network, batch 1 and 8")
    parser.add_argument("--threads", type=int, help=f"torch threads (default {_threads()})")
    args = parser.parse_args()
    print(run(quick=args.quick, threads=args.threads))
