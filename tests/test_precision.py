"""Lower precision and channels-last on CPU, against float32 NCHW logits.

Parity bounds, as the README states them (``max|diff| / max(1, max|logit|)``):
channels-last 1e-5 (the same arithmetic in another memory order); ``torch.autocast("cpu",
torch.bfloat16)`` and a model cast with ``.to(torch.bfloat16)`` 2e-2; ``.to(torch.float16)``
1e-2 (float16 keeps 3 more mantissa bits than bfloat16). Measured with the reference weights:
at most 0.009 (bfloat16), 0.008 (autocast), 0.007 (float16) over the families.
"""

from __future__ import annotations

import pytest
import torch
from conftest import ONE_PER_FAMILY, reference_weights

import zoo

SMALLEST = {"vgg_16": 224, "inception_v1": 224, "inception_v3": 75, "inception_v4": 75}
SMALLEST["inception_resnet_v2"] = 75
# residual + BN, VALID stem, depthwise + ReLU6, separable cells
LOW_PRECISION = ("resnet_v1_50", "inception_v3", "mobilenet_v2", "pnasnet_mobile")
FLOAT16 = ("resnet_v1_50", "inception_v3")  # CPU float16 convs are slow reference kernels

BOUNDS = {"channels_last": 1e-5, "autocast": 2e-2, torch.bfloat16: 2e-2, torch.float16: 1e-2}


def _setup(arch: str) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    model = zoo.load(arch, checkpoint=reference_weights(arch)).eval()
    size = SMALLEST.get(arch, 64)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        return model, x, model(x)


def _error(got: torch.Tensor, want: torch.Tensor) -> float:
    assert got.shape == want.shape
    return float((got.float() - want).abs().max()) / max(1.0, float(want.abs().max()))


@pytest.mark.parametrize("arch", ONE_PER_FAMILY)
def test_channels_last_model_and_input(arch):
    model, x, want = _setup(arch)
    model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        got = model(x.contiguous(memory_format=torch.channels_last))
    assert _error(got, want) <= BOUNDS["channels_last"]


@pytest.mark.parametrize("arch", LOW_PRECISION)
def test_bfloat16_autocast_and_bfloat16_weights(arch):
    model, x, want = _setup(arch)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model(x)
    assert mixed.dtype == torch.bfloat16
    assert 0 < _error(mixed, want) <= BOUNDS["autocast"]  # > 0: it did run in bfloat16
    model = model.to(torch.bfloat16)
    with torch.inference_mode():
        cast = model(x.to(torch.bfloat16))
    assert cast.dtype == torch.bfloat16
    assert 0 < _error(cast, want) <= BOUNDS[torch.bfloat16]


@pytest.mark.parametrize("arch", FLOAT16)
def test_float16_weights(arch):
    model, x, want = _setup(arch)
    model = model.to(torch.float16)
    with torch.inference_mode():
        got = model(x.to(torch.float16))
    assert got.dtype == torch.float16
    assert 0 < _error(got, want) <= BOUNDS[torch.float16]
