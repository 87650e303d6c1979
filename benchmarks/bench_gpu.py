"""GPU throughput of every architecture (fp32 and bf16 autocast) and parity of its GPU logits
with the CPU logits of the same weights.

Runs unchanged on any CUDA machine; on a machine without one it reports that nothing was
measured (CI has no GPU). Throughput is images per second at batch 64 and 256 (``--quick``:
batch 16, three networks), model in eval mode under ``torch.inference_mode`` in channels-last
memory format, timed with CUDA synchronisation after warm-up calls. The baseline of each ratio
is the same network in fp32: ``bf16 / fp32`` is the speed-up of autocast.

Parity: the network with seeded random weights (batch-norm statistics randomised too, so every
layer matters) runs on the CPU in float64 (the reference) and on the GPU in fp32 (TF32 matmuls
off) and in bf16 autocast; the tables give max |GPU - CPU| over the logits relative to
max |CPU logits|. Stated tolerances: fp32 1e-4 (the parity tests' tolerance), bf16 5e-2.
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks._util import machine_info, markdown_table, random_model

__all__ = ["run"]

QUICK_ARCHS = ("resnet_v1_50", "inception_v3", "mobilenet_v2")
TOLERANCE = {"fp32": 1e-4, "bf16": 5e-2}


def _input_size(name: str) -> int:
    import zoo

    try:
        return zoo.model_info(name).input_size[-1]
    except Exception:  # no registry facts: slim's default sizes
        return 331 if "large" in name else 224


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _images_per_second(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> float:
    device = x.device.type

    def call() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            model(x)

    with torch.inference_mode():
        for _ in range(3):
            call()
        _synchronize(device)
        calls, start = 0, time.perf_counter()
        while calls < 5 or time.perf_counter() - start < 2.0:
            call()
            calls += 1
        _synchronize(device)
    return calls * x.shape[0] / (time.perf_counter() - start)


def _parity(model: torch.nn.Module, size: int, device: str) -> dict[str, float]:
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = model.double()(x.double()).float()
        model.float().to(device, memory_format=torch.channels_last)
        xg = x.to(device).contiguous(memory_format=torch.channels_last)
        fp32 = model(xg).float().cpu()
        with torch.autocast(device, dtype=torch.bfloat16):
            bf16 = model(xg).float().cpu()
    scale = float(want.abs().max())
    return {
        "fp32": float((fp32 - want).abs().max()) / scale,
        "bf16": float((bf16 - want).abs().max()) / scale,
    }


def run(quick: bool = False, device: str = "cuda") -> str:
    """The report; ``device="cpu"`` runs the same code on the CPU (a smoke test of the suite)."""
    import zoo

    title = "### GPU throughput (fp32, bf16 autocast) and GPU-vs-CPU parity"
    if device == "cuda" and not torch.cuda.is_available():
        return "\n".join(
            [
                title,
                "",
                "Not measured: no CUDA device on this machine. Run `python -m benchmarks` "
                "on a CUDA machine; this section then fills in unchanged.",
            ]
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    names = QUICK_ARCHS if quick else tuple(zoo.list_models())
    batches = (16,) if quick else (64, 256)
    speed_rows, parity_rows = [], []
    for name in names:
        size = _input_size(name)
        model = random_model(name)
        errors = _parity(model, size, device)
        within = "yes" if all(errors[k] <= TOLERANCE[k] for k in errors) else "NO"
        parity_rows.append([name, size, errors["fp32"], errors["bf16"], within])
        for batch in batches:
            x = torch.randn(batch, 3, size, size, device=device)
            x = x.contiguous(memory_format=torch.channels_last)
            try:
                fp32 = _images_per_second(model, x, bf16=False)
                bf16 = _images_per_second(model, x, bf16=True)
            except torch.cuda.OutOfMemoryError:
                speed_rows.append([name, size, batch, "out of memory", "", ""])
                torch.cuda.empty_cache()
                continue
            speed_rows.append([name, size, batch, fp32, bf16, bf16 / fp32])
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    info = machine_info()
    where = info.get("gpu", "unknown GPU") if device == "cuda" else info["cpu"]
    return "\n".join(
        [
            title,
            "",
            f"Device: {where}, torch {info['torch']}. Channels-last, "
            "eval mode, `torch.inference_mode`, random weights; images/s over at least 2 s after "
            "3 warm-up calls. ratio = bf16 / fp32 (above 1: autocast faster).",
            "",
            markdown_table(
                ["network", "size", "batch", "fp32 img/s", "bf16 img/s", "ratio"], speed_rows
            ),
            "",
            "Parity of the GPU logits with the CPU float64 logits of the same weights (batch 4), "
            f"max |diff| / max |logit|; tolerance fp32 {TOLERANCE['fp32']:g} (TF32 off), "
            f"bf16 {TOLERANCE['bf16']:g}.",
            "",
            markdown_table(
                ["network", "size", "fp32 rel. error", "bf16 rel. error", "within"], parity_rows
            ),
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three networks, batch 16")
    parser.add_argument("--device", default="cuda", help="cpu: smoke-test this script")
    args = parser.parse_args()
    print(run(quick=args.quick, device=args.device))
