"""ResNet V1/V2 beyond the stored reference runs: ``output_stride`` (atrous convolution),
``global_pool=False`` score maps and fine-tuned class counts, checked against tf_slim's own
networks in TensorFlow, plus the structure slim's ``stack_blocks_dense`` prescribes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _slim import slim_logits
from conftest import reference_input, reference_weights, tolerance

import zoo
from architectures import create_model

# (arch, input H x W, model kwargs): odd and even sizes, both strides, both pooling modes
TF_CASES = [
    ("resnet_v1_50", (97, 113), {"output_stride": 8, "global_pool": True}),
    ("resnet_v1_50", (128, 128), {"output_stride": 16, "global_pool": False}),
    ("resnet_v2_50", (97, 113), {"output_stride": 16, "global_pool": True}),
    ("resnet_v2_50", (128, 128), {"output_stride": 8, "global_pool": False}),
]


def _tf_logits_nhwc(tensorflow, arch, weights, x, num_classes, **kwargs) -> np.ndarray:
    """tf_slim's logits; pip tf_slim does not squeeze them, so a pooled result is [N, 1, 1, K]."""
    nhwc = x.permute(0, 2, 3, 1).numpy()
    return slim_logits(tensorflow, arch, weights, nhwc, num_classes=num_classes, **kwargs)


def _ours_nhwc(model, x) -> np.ndarray:
    with torch.no_grad():
        out = model(x)
    if out.dim() == 2:  # slim's spatial squeeze of a 1x1 map
        return out[:, None, None, :].numpy()
    return out.permute(0, 2, 3, 1).numpy()


@pytest.mark.tf
@pytest.mark.parametrize(
    ("arch", "hw", "kwargs"), TF_CASES, ids=[f"{a}-{h}x{w}-{k}" for a, (h, w), k in TF_CASES]
)
def test_output_stride_and_pooling_match_tensorflow(tensorflow, arch, hw, kwargs):
    weights = reference_weights(arch)
    x = reference_input(arch, hw)
    model = zoo.load(arch, checkpoint=weights, **kwargs).eval()
    want = _tf_logits_nhwc(tensorflow, arch, weights, x, model.num_classes, **kwargs)
    got = _ours_nhwc(model, x)

    stride = kwargs["output_stride"]
    if not kwargs["global_pool"]:  # a score map at the requested density
        assert want.shape[1:3] == (math.ceil(hw[0] / stride), math.ceil(hw[1] / stride))
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want)))
    assert err <= tolerance(want), f"max|diff| {err:.3g} > {tolerance(want):.3g}"


@pytest.mark.tf
@pytest.mark.parametrize("arch", ["resnet_v1_50", "resnet_v2_50"])
def test_fine_tuned_class_count_matches_tensorflow(tensorflow, arch):
    """A checkpoint with a 10-class ``logits`` layer builds a 10-class model that equals TF."""
    weights = reference_weights(arch)
    rng = np.random.default_rng(7)
    weights[f"{arch}/logits/weights"] = rng.standard_normal((1, 1, 2048, 10)).astype(np.float32)
    weights[f"{arch}/logits/biases"] = rng.standard_normal(10).astype(np.float32)
    x = reference_input(arch, (65, 80))

    model = zoo.load(arch, checkpoint=weights).eval()
    assert model.num_classes == 10
    assert tuple(model.get_classifier().weight.shape) == (10, 2048)
    want = _tf_logits_nhwc(tensorflow, arch, weights, x, 10)
    got = _ours_nhwc(model, x)
    assert got.shape == want.shape == (2, 1, 1, 10)
    assert float(np.max(np.abs(got - want))) <= tolerance(want)


# --------------------------------------------------------------------------- structure (no TF)


def _strided_size(n: int, stride: int) -> int:
    return math.ceil(n / stride)  # 'SAME' pooling and conv2d_same both give ceil(n / s)


@pytest.mark.parametrize("arch", ["resnet_v1_50", "resnet_v2_50"])
def test_end_points_at_output_stride_16(arch):
    """Blocks 3 and 4 stay at 1/16 of the input; the rates follow slim's stack_blocks_dense."""
    h, w = 81, 70
    model = create_model(arch, output_stride=16, global_pool=False).eval()
    points = model.end_points(torch.randn(1, 3, h, w))
    unit = f"bottleneck_v{arch[8]}"

    def size(name):
        return tuple(points[f"{arch}/{name}"].shape[-2:])

    def expect(stride):
        return (_strided_size(h, stride), _strided_size(w, stride))

    assert size("conv1") == expect(2)
    assert size(f"block1/unit_1/{unit}") == expect(4)
    assert size(f"block1/unit_3/{unit}/conv1") == expect(4)
    assert size("block1") == size(f"block1/unit_3/{unit}/conv2") == expect(8)
    assert size("block2") == expect(16)
    for name in ("block3/unit_6", "block4/unit_1", "block4/unit_3"):
        assert size(f"{name}/{unit}/conv2") == expect(16)
    assert size("block4") == expect(16)
    assert points[f"{arch}/logits"].shape == (1, model.num_classes, *expect(16))
    assert "global_pool" not in points

    # the unit that would have strided keeps rate 1; every unit after it has rate 2
    def conv2(block, i):
        return getattr(getattr(model, block), f"unit_{i}")[0].conv2.conv

    assert (conv2("block3", 6).stride, conv2("block3", 6).dilation) == ((1, 1), (1, 1))
    assert (conv2("block4", 1).dilation, conv2("block4", 1).padding) == ((2, 2), (2, 2))


def test_output_stride_8_rates_and_32_is_nominal():
    model = create_model("resnet_v2_50", output_stride=8)
    dilations = {
        name: {unit[0].conv2.conv.dilation[0] for unit in getattr(model, name)}
        for name in ("block2", "block3", "block4")
    }
    assert dilations == {"block2": {1}, "block3": {2}, "block4": {4}}
    strides = [unit[0].conv2.conv.stride[0] for unit in model.block2]
    assert strides == [1, 1, 1, 1]

    nominal = create_model("resnet_v2_50").eval()
    at_32 = create_model("resnet_v2_50", output_stride=32).eval()
    at_32.load_state_dict(nominal.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(nominal(x), at_32(x))


@pytest.mark.parametrize("output_stride", [6, 12, 64])
def test_unreachable_output_stride_is_refused(output_stride):
    with pytest.raises(ValueError, match="output_stride"):
        create_model("resnet_v1_50", output_stride=output_stride)


def test_head_api():
    model = create_model("resnet_v2_50").eval()
    x = torch.randn(2, 3, 33, 40)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        logits = model(x)
    assert features.shape == (2, 2048, 2, 2)
    assert features.min() >= 0  # after postnorm's ReLU
    assert pooled.shape == (2, 2048)
    assert torch.allclose(model.get_classifier()(pooled), logits, atol=1e-5)
    assert logits.shape == (2, 1001)

    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.equal(model(x), pooled)
    assert "predictions" not in model.end_points(x)

    model.reset_classifier(5)
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    points = model.end_points(x)
    assert list(points)[-3:] == [
        "resnet_v2_50/logits",
        "resnet_v2_50/spatial_squeeze",
        "predictions",
    ]
    assert torch.allclose(points["predictions"].sum(1), torch.ones(2))


@pytest.mark.parametrize("arch", ["resnet_v1_50", "resnet_v2_50"])
def test_trains_despite_in_place_inference_shortcuts(arch):
    """The in-place adds and ReLUs leave autograd intact (training mode and eval with grad)."""
    model = create_model(arch, num_classes=3)
    x = torch.randn(2, 3, 33, 40)
    for train in (True, False):
        model.train(train)
        model.zero_grad()
        model(x).logsumexp(1).sum().backward()
        grads = [p.grad for p in model.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        root_conv = model.conv1 if arch.startswith("resnet_v2") else model.conv1.conv
        assert root_conv.weight.grad.abs().sum() > 0
