"""Inception v1–v3 beyond the generic parity runs: the auxiliary head of v3, the fixed pooling
windows at other input sizes, other class counts and widths, checked against tf_slim itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _slim import slim_logits
from conftest import expected, make_weights, meta, reference_input, reference_weights, runs

import zoo
from architectures import create_model, tf_mapping


def _hg_run(arch: str, hw: tuple[int, int]):
    (run,) = [r for r in runs(arch) if r.input_hw == hw and r.gain > 1]
    return run


def _deterministic_layers(model: torch.nn.Module) -> None:
    """Batch norm on moving statistics and no dropout, while the model itself stays in
    training mode (so its forward takes the training path)."""
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)):
            m.eval()


def test_aux_logits_only_when_asked_and_equal_to_slim():
    run = _hg_run("inception_v3", (299, 299))
    weights = reference_weights("inception_v3", run.gain)
    x = reference_input("inception_v3", run.input_hw)
    want_logits = expected("inception_v3")["logits" + run.suffix]
    ref = expected("inception_v3")
    key = f"{run.prefix}/AuxLogits"

    model = zoo.load("inception_v3", checkpoint=weights, aux_logits=True, **run.kwargs).eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)  # eval mode: the logits only
        model.train()
        _deterministic_layers(model)
        logits, aux = model(x)

    assert np.abs(logits.numpy() - want_logits).max() <= 1e-4 * max(1, np.abs(want_logits).max())
    assert aux.shape == tuple(ref[f"{key}/shape"])
    got = aux.numpy().reshape(-1)[ref[f"{key}/index"]]
    tol = 1e-4 * max(1.0, float(ref[f"{key}/absmax"]))
    assert np.abs(got - ref[f"{key}/sample"]).max() <= tol
    assert aux.std() > 0.5  # a real head, not zeros: the _hg aux logits have std ~ 1

    model.aux_logits = False  # as built without aux_logits=True: the logits only, in training
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)
    assert torch.allclose(out, logits, atol=1e-5)


def test_aux_logits_need_the_aux_head():
    with pytest.raises(ValueError, match="create_aux_logits=True"):
        create_model("inception_v3", aux_logits=True, create_aux_logits=False)
    model = create_model("inception_v3", create_aux_logits=False, aux_logits=False)
    assert model.AuxLogits is None
    assert model.classifier_names == ("Logits.Conv2d_1c_1x1",)
    assert not any(t.name.startswith("InceptionV3/AuxLogits") for t in tf_mapping(model).values())


def test_aux_head_refuses_sizes_the_checkpoint_kernel_does_not_fit():
    model = create_model("inception_v3", depth_multiplier=0.1, aux_logits=True).eval()
    x = torch.zeros(1, 3, 235, 235)  # Mixed_6e 13x13: slim would build a 3x3 Conv2d_2a
    with pytest.raises(ValueError, match="create_aux_logits=False"):
        model.end_points(x)
    model.train()
    with pytest.raises(ValueError, match=r"Mixed_6e map of 17 to 19 pixels"):
        model(x)
    assert model.eval()(x).shape == (1, 1001)  # inference does not run the auxiliary head


def test_new_class_count_replaces_both_classifiers():
    weights = reference_weights("inception_v3")
    model = zoo.load(
        "inception_v3", checkpoint=weights, num_classes=10, skip_classifier=True
    ).eval()
    assert sorted(model.load_report.skipped) == sorted(
        f"{c}.{p}"
        for c in ("Logits.Conv2d_1c_1x1", "AuxLogits.Conv2d_2b_1x1")
        for p in ("weight", "bias")
    )
    assert model.Logits.Conv2d_1c_1x1.out_features == 10
    assert model.AuxLogits.Conv2d_2b_1x1.out_features == 10
    conv = model.AuxLogits.Conv2d_2a_5x5.conv.weight.detach().numpy()
    want = weights["InceptionV3/AuxLogits/Conv2d_2a_5x5/weights"].transpose(3, 2, 0, 1)
    assert np.array_equal(conv, want)  # the rest of the aux head is loaded

    model.reset_classifier(0)
    assert model.AuxLogits is None
    assert model(torch.zeros(1, 3, 299, 299)).shape == (1, 2048)


@pytest.mark.parametrize(
    ("arch", "hw", "message"),
    [("inception_v1", (160, 160), "global_pool=True"), ("inception_v3", (395, 395), "1x1 map")],
)
def test_fixed_pool_window_that_does_not_cover_the_map_is_an_error(arch, hw, message):
    kwargs = {"depth_multiplier": 0.1} if arch != "inception_v1" else {}
    model = create_model(arch, global_pool=False, **kwargs).eval()
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(1, 3, *hw))
    pooled = create_model(arch, global_pool=True, **kwargs).eval()
    assert pooled(torch.zeros(1, 3, *hw)).shape == (1, 1001)


# --------------------------------------------------------------------------- TF cross-checks
# pip's tf_slim has the nets of 2017 without global_pool (v1 always pools with its fixed 7x7
# window), so these use sizes its fixed windows accept, chosen to exercise what the reference
# runs do not: non-square inputs, an 8x8/9x9 map under the stride-2 window (only its top-left
# window counts), a shrunk window, other class counts and depth_multiplier.
CROSS_CHECKS = [
    ("inception_v1", (200, 216), {"num_classes": 10}),
    ("inception_v2", (256, 160), {"num_classes": 7, "depth_multiplier": 0.5}),
    ("inception_v3", (331, 331), {"num_classes": 10, "create_aux_logits": False}),
]


@pytest.mark.tf
@pytest.mark.parametrize(("arch", "hw", "kwargs"), CROSS_CHECKS, ids=[c[0] for c in CROSS_CHECKS])
def test_logits_match_tf_slim_at_other_sizes(tensorflow, arch, hw, kwargs):
    model = create_model(arch, **kwargs)
    # weights for exactly the variables our mapping says this configuration has
    variables = [{"name": t.name, "shape": list(t.shape)} for t in tf_mapping(model).values()]
    hg_gain = make_weights().HG_GAIN
    weights = make_weights().reference_weights(variables, meta(arch)["seed"], gain=hg_gain)
    model = zoo.load(arch, checkpoint=weights, **kwargs).eval()
    x = make_weights().reference_input(7, 1, *hw)  # NHWC

    want = slim_logits(tensorflow, arch, weights, x, **kwargs)
    with torch.no_grad():
        got = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert got.shape == want.shape == (1, kwargs["num_classes"])
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    assert want.std() > 0.1  # logits that depend on the weights and the image
