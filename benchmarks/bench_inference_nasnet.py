"""CPU inference speed of NASNet-A Large and PNASNet-5 Large: slimzoo vs timm's ``nasnetalarge``
and ``pnasnet5large`` (the same networks, ported from Cadene's pretrainedmodels).

Both get the same random weights recipe (He-normal convs, batch norm statistics of a trained
net's magnitude; see :func:`init_like_trained`) so neither runs into denormals, the same
331x331 input and the same thread count (``torch.set_num_threads``); each measurement runs in a
fresh process. Rows for both memory formats: the default NCHW, and channels-last (model and
input converted with ``memory_format=torch.channels_last``), which both implementations speed
up the same way. pip's tf_slim has no NASNet, so there is no TensorFlow column.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from benchmarks._util import machine_info, markdown_table, measure, run_isolated

# slimzoo name -> (input size, timm name)
NETWORKS = {
    "nasnet_large": (331, "nasnetalarge"),
    "pnasnet_large": (331, "pnasnet5large"),
}


def _threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def init_like_trained(model: Any, seed: int = 0) -> None:
    """Fill any torch network with well-scaled random weights: convs and linears He-normal over
    their fan-in, batch norm gamma ≈ 1, beta/mean ≈ 0, variance in [0.5, 1.5]."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                w = module.weight
                fan_in = w[0].numel()
                w.copy_(torch.randn(w.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                if module.weight is not None:
                    module.weight.copy_(1.0 + 0.1 * torch.randn(n, generator=generator))
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(n, generator=generator))


def time_model(
    impl: str, name: str, batch: int, size: int, threads: int, repeat: int, channels_last: bool
) -> dict:
    """(child process) median seconds of one eval forward of slimzoo's or timm's ``name``."""
    import torch

    torch.set_num_threads(threads)
    if impl == "slimzoo":
        import zoo

        model = zoo.load(name).eval()
    else:
        import timm

        model = timm.create_model(name, pretrained=False, num_classes=1001)
    model.eval()
    init_like_trained(model)
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        seconds = measure(lambda: model(x), repeat=repeat)
        finite = bool(torch.isfinite(model(x)).all())
    return {"seconds": seconds, "finite": finite}


def _child(*args: Any) -> dict:
    call = f"time_model({', '.join(repr(a) for a in args)})"
    code = f"from benchmarks.bench_inference_nasnet import *\nresult = {call}\n"
    result = run_isolated(code)
    if not result["finite"]:
        raise RuntimeError(f"{call} gave non-finite logits: the timing would not be meaningful")
    return result


def run(quick: bool = False, threads: int | None = None) -> str:
    """Measure and return the Markdown section (``threads``: default min(4, cores))."""
    import zoo

    threads = threads or _threads()
    batches = (1,) if quick else (1, 8)
    formats = (False,) if quick else (False, True)
    archs = [a for a in NETWORKS if a in zoo.list_models()]

    rows = []
    for arch in archs:
        size, timm_name = NETWORKS[arch]
        for batch in batches:
            repeat = 2 if quick else (5 if batch == 1 else 3)
            for channels_last in formats:
                ours = _child("slimzoo", arch, batch, size, threads, repeat, channels_last)
                timm = _child("timm", timm_name, batch, size, threads, repeat, channels_last)
                rows.append(
                    [
                        f"{arch} / {timm_name}",
                        f"{size}x{size}",
                        batch,
                        "channels-last" if channels_last else "NCHW",
                        1000 * ours["seconds"],
                        1000 * timm["seconds"],
                        ours["seconds"] / timm["seconds"],
                    ]
                )

    header = ["network (slimzoo / timm)", "input", "batch", "memory format"]
    header += ["slimzoo ms", "timm ms", "slimzoo / timm"]
    table = markdown_table(header, rows)
    info = machine_info()
    return "\n".join(
        [
            "### Inference speed: NASNet-A Large and PNASNet-5 Large on CPU",
            "",
            "Median wall time of one forward pass (eval, after a warm-up), "
            f"{threads} thread{'s' if threads > 1 else ''} on each side "
            "(`torch.set_num_threads`), each measurement in a fresh process; both networks with "
            "the same well-scaled random weights. timm: `nasnetalarge` / `pnasnet5large`. "
            "Ratios below 1 mean slimzoo is faster. "
            "Channels-last: model and input converted to `torch.channels_last` on both sides.",
            "",
            table,
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}.",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1, NCHW only")
    parser.add_argument("--threads", type=int, help="torch threads on both sides")
    args = parser.parse_args()
    print(run(quick=args.quick, threads=args.threads))
