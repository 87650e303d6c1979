"""Inception v4 / Inception-ResNet v2 beyond the generic parity test: the auxiliary head
(returned only when asked, equal to slim's ``AuxLogits``), fine-tuned class counts, and
``skip_classifier`` covering both classifiers.

These nets are big, so every forward pass here is batch 1 (the first reference image).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import expected, reference_input, reference_weights, runs, tolerance

import zoo
from architectures import tf_mapping

# arch -> (torch path of the auxiliary classifier, its TF scope, the aux head's input end point)
AUX = {
    "inception_v4": ("AuxLogits.Aux_logits", "InceptionV4/AuxLogits/Aux_logits", "Mixed_6h"),
    "inception_resnet_v2": (
        "AuxLogits.Logits",
        "InceptionResnetV2/AuxLogits/Logits",
        "PreAuxLogits",
    ),
}
MAIN = {
    "inception_v4": "InceptionV4/Logits/Logits",
    "inception_resnet_v2": "InceptionResnetV2/Logits/Logits",
}
ARCHS = sorted(AUX)


def _hg_run(arch):
    """The 299x299 run at the high gain, whose logits depend clearly on the image."""
    return next(r for r in runs(arch) if r.suffix == "_hg")


def _first_image_sample(run, name, got):
    """Compare end point ``name`` of the first image with the reference samples that fall in it."""
    ref = expected(run.arch)
    key = f"{run.prefix}/{name}"
    index, sample = ref[f"{key}/index"], ref[f"{key}/sample"]
    in_first = index < got.size
    assert in_first.sum() >= 10  # enough sampled values in the first image to mean something
    err = np.max(np.abs(got.reshape(-1)[index[in_first]] - sample[in_first]))
    return err, 1e-4 * max(1.0, float(ref[f"{key}/absmax"]))


def _freeze_batch_norm(model):
    """Training mode with batch norm on its moving statistics (fine-tuning with frozen BN)."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_aux_logits_only_when_asked_and_equal_to_slim(arch):
    run = _hg_run(arch)
    model = zoo.load(
        arch, checkpoint=reference_weights(arch, run.gain), aux_logits=True, drop_rate=0.0
    ).eval()
    x = reference_input(arch, run.input_hw)[:1]

    with torch.no_grad():
        _freeze_batch_norm(model)
        out = model(x)
        model.eval()
        eval_out = model(x)

    # training mode + aux_logits=True: (logits, aux_logits); eval mode: the logits alone
    assert isinstance(out, tuple) and len(out) == 2
    assert isinstance(eval_out, torch.Tensor) and eval_out.shape == (1, 1001)
    logits, aux = (t.numpy() for t in out)
    # drop_rate=0: the same computation (in eval mode on the fast path: rounding only)
    assert np.allclose(logits, eval_out.numpy(), rtol=1e-5, atol=1e-4)
    want = expected(arch)["logits" + run.suffix][:1]
    assert np.max(np.abs(logits - want)) <= tolerance(want)

    assert aux.shape == (1, 1001)
    err, tol = _first_image_sample(run, "AuxLogits", aux)
    assert err <= tol, f"AuxLogits differ from slim by {err:.3g} (tolerance {tol:.3g})"
    assert np.max(np.abs(aux - logits)) > 0.1  # a separate head, not the main logits again


@pytest.mark.parametrize("arch", ARCHS)
def test_aux_head_runs_only_when_asked_and_only_where_it_fits(arch):
    model = zoo.load(arch).train()  # random weights; aux_logits=False by default
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 75, 75))  # the smallest input the net accepts
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1001)

    model.aux_logits = True
    x = torch.zeros(1, 3, 160, 160)  # an 8x8 aux input map: the 5x5 VALID kernel cannot fit
    with torch.no_grad(), pytest.raises(ValueError, match="auxiliary head needs"):
        model(x)
    model.eval()
    points = model.end_points(x)
    assert "AuxLogits" not in points and AUX[arch][2] in points
    assert points["Logits"].shape == (1, 1001)

    with pytest.raises(ValueError, match="create_aux_logits=True"):
        zoo.load(arch, aux_logits=True, create_aux_logits=False).eval()


def _fine_tuned_weights(arch, classes):
    """Reference weights with both classifiers replaced by ``classes``-way ones."""
    weights = reference_weights(arch)
    rng = np.random.default_rng(7)
    for scope, in_features in ((MAIN[arch], 1536), (AUX[arch][1], 768)):
        weights[f"{scope}/weights"] = rng.standard_normal((in_features, classes), np.float32)
        weights[f"{scope}/biases"] = rng.standard_normal(classes, np.float32)
    return weights


@pytest.mark.parametrize("arch", ARCHS)
def test_fine_tuned_class_count_is_detected_for_both_heads(arch):
    weights = _fine_tuned_weights(arch, 10)
    model = zoo.load(arch, checkpoint=weights).eval()
    assert model.num_classes == 10
    aux_path, aux_scope, _ = AUX[arch]
    for path, scope in (("Logits.Logits", MAIN[arch]), (aux_path, aux_scope)):
        layer = model.get_submodule(path)
        assert layer.out_features == 10
        assert np.array_equal(layer.weight.detach().numpy(), weights[f"{scope}/weights"].T)
        assert np.array_equal(layer.bias.detach().numpy(), weights[f"{scope}/biases"])
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 75, 75)).shape == (1, 10)


@pytest.mark.parametrize("arch", ARCHS)
def test_skip_classifier_skips_both_heads(arch):
    weights = reference_weights(arch)
    model = zoo.load(arch, checkpoint=weights, num_classes=10, skip_classifier=True).eval()
    aux_path, _, _ = AUX[arch]
    assert sorted(model.load_report.skipped) == sorted(
        f"{p}.{t}" for p in ("Logits.Logits", aux_path) for t in ("weight", "bias")
    )
    assert model.get_submodule("Logits.Logits").out_features == 10
    assert model.get_submodule(aux_path).out_features == 10
    state = model.state_dict()
    for torch_name, target in tf_mapping(model).items():
        if torch_name not in model.load_report.skipped:  # everything else is the checkpoint's
            want = target.layout.to_torch(weights[target.name])
            assert np.array_equal(state[torch_name].numpy(), want), torch_name

    # without skip_classifier the mismatch is an error that says what to do
    with pytest.raises(zoo.MappingError, match="skip_classifier=True"):
        zoo.load(arch, checkpoint=weights, num_classes=10).eval()
