"""CPU inference speed of the MobileNets: slimzoo vs timm's PyTorch-native implementation of the
same network (``mobilenetv1_100``, ``mobilenetv2_100``, ``mobilenetv2_140``), both with random
weights, 224x224 input, batch 1 and 32.

Both run in one process with the same ``torch.set_num_threads(n)``, under ``torch.inference_mode``
in eval mode. The two sides are timed in alternating rounds and each keeps its best round's median,
so load from other processes on the machine does not favour the side that happened to run in a
quiet moment. Each pair is timed in the default (contiguous NCHW) memory format and with model and
input in ``channels_last``.

Not quite the same arithmetic on both sides: slimzoo pads like TF 'SAME' (one extra row/column at
the bottom/right of the stride-2 layers at 224x224: an ``F.pad`` copy of the input for the stem
conv, a zero tap in the kernel of the depthwise convs), timm pads symmetrically (not
TF-compatible). The layer widths, depths and op types are otherwise the same.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from benchmarks._util import machine_info, markdown_table, measure

# slimzoo name -> timm name
PAIRS = {
    "mobilenet_v1": "mobilenetv1_100",
    "mobilenet_v2": "mobilenetv2_100",
    "mobilenet_v2_140": "mobilenetv2_140",
}


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _best_of_rounds(
    models: dict[str, nn.Module], x: torch.Tensor, rounds: int, repeat: int
) -> dict[str, float]:
    """Best median (seconds) of ``model(x)`` per model, timing the models in alternating rounds."""
    best = {name: float("inf") for name in models}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, model in models.items():
                best[name] = min(best[name], measure(lambda m=model: m(x), repeat=repeat))
    return best


def run(quick: bool = False, threads: int | None = None) -> str:
    import timm

    import zoo

    threads = threads or _threads()
    torch.set_num_threads(threads)
    batches = (1, 8) if quick else (1, 32)
    formats = {"contiguous": torch.contiguous_format}
    if not quick:
        formats["channels_last"] = torch.channels_last
    rounds = 2 if quick else 5
    repeats = {1: 5, 8: 2} if quick else {1: 10, 32: 3}  # calls per median, by batch

    rows = []
    for ours_name, timm_name in PAIRS.items():
        models = {
            "ours": zoo.load(ours_name).eval(),
            "timm": timm.create_model(timm_name, pretrained=False).eval(),
        }
        for fmt, memory_format in formats.items():
            models = {k: m.to(memory_format=memory_format) for k, m in models.items()}
            for batch in batches:
                x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=memory_format)
                t = _best_of_rounds(models, x, rounds, repeats[batch])
                ms_ours, ms_timm = t["ours"] * 1e3, t["timm"] * 1e3
                rows.append([ours_name, timm_name, fmt, batch, ms_ours, ms_timm, ms_ours / ms_timm])

    info = machine_info()
    calls = " / ".join(map(str, repeats.values()))
    sizes = " / ".join(map(str, repeats))
    header = ["slimzoo", "timm", "memory format", "batch", "slimzoo ms", "timm ms", "ratio"]
    return "\n".join(
        [
            "### MobileNet v1/v2 inference on CPU: slimzoo vs timm",
            "",
            f"Random weights, 224x224, eval mode, `torch.inference_mode`, {threads} torch threads "
            f"on both sides, same process; times are the best of {rounds} alternating rounds of "
            f"a median over {calls} calls (batch {sizes}). ratio = slimzoo / timm (below 1: "
            "slimzoo faster). slimzoo pads its stride-2 layers like TF 'SAME' (one extra pixel "
            "at the bottom/right at 224: a padded copy of the input image for the stem, a zero "
            "kernel tap for the depthwise convs), timm symmetrically (not TF-compatible).",
            "",
            markdown_table(header, rows),
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
            f"timm {timm.__version__}.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1 and 8, 2 rounds (smoke)")
    parser.add_argument("--threads", type=int, help=f"torch threads (default {_threads()})")
    args = parser.parse_args()
    print(run(quick=args.quick, threads=args.threads))
