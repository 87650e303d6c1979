"""CPU inference speed of Inception v4 and Inception-ResNet v2: slimzoo vs timm's implementation
of the same network (random init, same 299x299 input, same batch, same torch threads).

Both models live in one process and are timed in alternating rounds (one ``measure`` call each
per round, the median over rounds is reported), so a change in machine load hits both sides
alike. Both run in eval mode under ``torch.inference_mode``: first with NCHW inputs and weights
(the default, as a user would call them), then (full run only) both converted to
``torch.channels_last``, which oneDNN runs faster on CPU. Denormal flushing is switched on for
both: randomly initialised deep nets drift towards denormal activations, which would time the
CPU's slow path instead of the network.
"""

from __future__ import annotations

import argparse
import itertools
import os

from benchmarks._util import machine_info, markdown_table, measure

# slimzoo name -> timm name
NETWORKS = {"inception_v4": "inception_v4", "inception_resnet_v2": "inception_resnet_v2"}
SIZE = 299


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _time_pair(ours, theirs, x, rounds: int) -> tuple[float, float]:
    """Median seconds per forward of ``ours`` and ``theirs`` on ``x``, timed alternately."""
    import statistics

    import torch

    ours_s, theirs_s = [], []
    with torch.inference_mode():
        ours(x), theirs(x)  # warm-up: oneDNN primitive creation, allocator
        for _ in range(rounds):
            ours_s.append(measure(lambda: ours(x), repeat=1, warmup=0))
            theirs_s.append(measure(lambda: theirs(x), repeat=1, warmup=0))
    return statistics.median(ours_s), statistics.median(theirs_s)


def run(quick: bool = False) -> str:
    """Time both networks at batch 1 and 16 (8 with ``quick``); return a Markdown section."""
    import timm
    import torch

    import zoo

    threads = _threads()
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    batches = (1, 8) if quick else (1, 16)
    layouts = (
        (torch.contiguous_format,) if quick else (torch.contiguous_format, torch.channels_last)
    )
    rounds = 3 if quick else 7

    rows = []
    for ours_name, timm_name in NETWORKS.items():
        ours = zoo.load(ours_name).eval()
        theirs = timm.create_model(timm_name, pretrained=False, num_classes=1001).eval()
        for layout, batch in itertools.product(layouts, batches):
            ours, theirs = ours.to(memory_format=layout), theirs.to(memory_format=layout)
            x = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
            ours_s, theirs_s = _time_pair(ours, theirs, x.contiguous(memory_format=layout), rounds)
            rows.append(
                [
                    ours_name,
                    "NCHW" if layout == torch.contiguous_format else "channels_last",
                    batch,
                    round(ours_s * 1e3),
                    round(theirs_s * 1e3),
                    ours_s / theirs_s,
                    batch / ours_s,
                    batch / theirs_s,
                ]
            )
        del ours, theirs

    info = machine_info()
    header = [
        "network",
        "layout",
        "batch",
        "slimzoo ms",
        "timm ms",
        "slimzoo / timm (time)",
        "slimzoo img/s",
        "timm img/s",
    ]
    return "\n".join(
        [
            "### Inference speed: Inception v4 and Inception-ResNet v2 vs timm (CPU)",
            "",
            f"Forward pass at {SIZE}x{SIZE}, eval mode, `torch.inference_mode`, "
            f"{threads} torch threads on both sides, median of {rounds} alternating rounds "
            f"per cell; timm {timm.__version__} with random init and 1001 classes. Layout: "
            "weights and input of both models in NCHW (the default) or both converted to "
            "`torch.channels_last`. A time ratio below 1 means slimzoo is faster.",
            "",
            markdown_table(header, rows),
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
            f"python {info['python']}.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="batch 8 instead of 16, 3 rounds, NCHW only"
    )
    print(run(quick=parser.parse_args().quick))
