"""MobileNet v3 specifics beyond the generic parity tests (which cover large, small and both
minimalistic nets at 224 and 225 with slim's reference data): slim's exact hard-swish and
hard-sigmoid, the final pooling rule on non-square maps, and the 0.75 networks (no reference
data) against the published sizes of the same checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import reference_weights

import zoo
from architectures import create_model
from architectures.mobilenet_v3 import HardSigmoid, HardSwish


def test_hard_swish_is_slims_float32_formula_bit_for_bit():
    x = np.linspace(-5, 5, 100_001, dtype=np.float32)
    # slim: x * tf.nn.relu6(x + np.float32(3)) * np.float32(1. / 6.), left to right in float32
    want = x * np.clip(x + np.float32(3), 0, 6) * np.float32(1.0 / 6.0)
    got = HardSwish()(torch.from_numpy(x)).numpy()
    assert got.dtype == np.float32 and np.array_equal(got, want)
    # torch's own hardswish divides by 6: not always the same float
    assert not np.array_equal(F.hardswish(torch.from_numpy(x)).numpy(), want)


def test_hard_sigmoid_uses_slims_literal():
    x = torch.tensor([-4.0, 0.0, 3.0, 10.0])
    got = HardSigmoid()(x)
    # relu6(x + 3) * 0.16667: 0.50001 at 0 and 1.00002 saturated, not 0.5 and 1
    assert got.tolist() == pytest.approx([0.0, 0.50001, 1.00002, 1.00002], abs=1e-7)
    assert got[2].item() == np.float32(6.0) * np.float32(0.16667)


@pytest.mark.parametrize("arch", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_a_non_square_final_map_is_pooled_by_7x7_windows(arch):
    """slim's reduce_to_1x1: a 9x8 final map (input 288x256) gives a 3x2 map to Conv_2, and
    global_pool averages the Conv_2 outputs (not Conv_2 of the map's mean)."""
    model = zoo.load(arch, checkpoint=reference_weights(arch)).eval()
    x = torch.randn(1, 3, 288, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        points = model.end_points(x)
        features = model.forward_features(x)
        pooled = [
            features[:, :, i : i + 7, j : j + 7].mean((2, 3), keepdim=True)
            for i in range(3)
            for j in range(2)
        ]
        want = torch.cat([model.Conv_2(p) for p in pooled], dim=2).mean((2, 3))
        logits = model(x)
    last = len(model.block_names) + 3  # layer_18 (large) / layer_14 (small)
    assert tuple(features.shape[-2:]) == (9, 8)
    assert tuple(points[f"layer_{last}"].shape[-2:]) == (3, 2)
    assert tuple(points[f"layer_{last + 1}"].shape[-2:]) == (3, 2)
    torch.testing.assert_close(points["global_pool"].flatten(1), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits, model.Logits.Conv2d_1c_1x1(want), rtol=1e-5, atol=1e-5)


def test_a_square_final_map_is_averaged_whole():
    model = create_model("mobilenet_v3_small").eval()
    x = torch.randn(1, 3, 224, 200)  # final map ceil(224/32) x ceil(200/32) = 7x7
    with torch.no_grad():
        assert tuple(model.end_points(x)["layer_14"].shape[-2:]) == (1, 1)
        assert model(x).shape == (1, 1001)


def test_a_map_too_small_for_the_7x7_window_is_a_clear_error():
    model = create_model("mobilenet_v3_large").eval()
    with pytest.raises(ValueError, match=r"fixed 7x7 window.*5x4 map"):
        model(torch.randn(1, 3, 160, 128))


# timm's ports of the six released float checkpoints (tf_mobilenetv3_*, 1000 classes): published
# parameter counts (timm's model index: 5.48M, 3.99M, 3.92M, 2.54M, 2.04M, 2.04M)
PUBLISHED_MILLIONS = {
    "mobilenet_v3_large": 5.48,
    "mobilenet_v3_large_075": 3.99,
    "mobilenet_v3_large_minimalistic": 3.92,
    "mobilenet_v3_small": 2.54,
    "mobilenet_v3_small_075": 2.04,
    "mobilenet_v3_small_minimalistic": 2.04,
}


@pytest.mark.parametrize("arch", sorted(PUBLISHED_MILLIONS))
def test_sizes_are_the_published_ones(arch):
    model = create_model(arch, num_classes=1000)
    count = sum(p.numel() for p in model.parameters())
    assert round(count / 1e6, 2) == PUBLISHED_MILLIONS[arch]


@pytest.mark.parametrize(("arch", "head"), [("large", 1280), ("small", 1024)])
def test_075_keeps_the_last_conv_with_finegrain_mode(arch, head):
    model = create_model(f"mobilenet_v3_{arch}_075")
    full = create_model(f"mobilenet_v3_{arch}")
    assert model.num_features == model.Conv_2.conv.out_channels == head
    assert model.Conv.conv.out_channels == 16  # _make_divisible(16 * 0.75 = 12, 8)
    assert model.Conv_1.conv.out_channels < full.Conv_1.conv.out_channels
    plain = create_model(f"mobilenet_v3_{arch}_075", finegrain_classification_mode=False)
    assert plain.num_features == head * 3 // 4
