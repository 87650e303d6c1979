"""NASNet/PNASNet specifics beyond the generic parity: the auxiliary head, drop path, class counts.

The generic tests (test_parity, test_mapping) cover the logits and every end point. Here the
small nets (nasnet_mobile, pnasnet_mobile) check what only these families have; the aux-head
values are compared with the reference ``AuxLogits`` end point of slim's graph.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from conftest import compare_end_points, expected, reference_input, reference_weights, runs
from torch import nn

import zoo
from architectures import create_model
from architectures._nasnet_utils import drop_path

AUX_FC = {"nasnet_mobile": "aux_7/aux_logits/FC", "pnasnet_mobile": "aux_5/aux_logits/FC"}


def _eval_statistics(model: nn.Module) -> None:
    """Training mode, but batch norm on its moving statistics and no dropout: deterministic."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.Dropout)):
            module.eval()


@pytest.mark.parametrize("arch", ["nasnet_mobile", "pnasnet_mobile"])
def test_aux_logits_are_returned_only_when_asked_and_match_slim(arch):
    run = runs(arch)[0]
    weights = reference_weights(arch, run.gain)
    x = reference_input(arch, run.input_hw)

    model = zoo.load(arch, checkpoint=weights, aux_logits=True).eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)  # eval mode: logits only
        model.train()
        _eval_statistics(model)
        logits, aux = model(x)
    assert aux.shape == (x.shape[0], 1001)
    aux_run = dataclasses.replace(run, end_points=("AuxLogits",))
    assert compare_end_points(aux_run, {"AuxLogits": aux}) == []
    want = expected(arch)["logits"]
    assert np.abs(logits.numpy() - want).max() <= 1e-4 * max(1.0, np.abs(want).max())

    plain = zoo.load(arch, checkpoint=weights).eval()  # aux_logits=False: never a tuple
    plain.train()
    _eval_statistics(plain)
    with torch.no_grad():
        out = plain(x)
    assert isinstance(out, torch.Tensor)
    assert torch.allclose(out, logits, atol=1e-5)


def test_aux_head_rejects_an_input_size_it_cannot_take():
    model = create_model("nasnet_mobile", aux_logits=True)
    x = torch.zeros(1, 3, 160, 160)  # stride-16 map 10x10 → pooled 2x2, the kernel is 4x4
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 1001)  # the main logits work at any size
        model.train()
        _eval_statistics(model)
        with pytest.raises(ValueError, match=r"takes a 4x4 map.* giving 2x2.*aux_logits=False"):
            model(x)
        points = model.eval().end_points(x)  # slim's eval graph: no aux head, no AuxLogits
    assert "AuxLogits" not in points
    assert list(points)[-3:] == ["global_pool", "Logits", "Predictions"]
    assert "AuxLogits" in model.end_points(torch.zeros(1, 3, 224, 224))


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    model = create_model("nasnet_mobile", drop_path_keep_prob=0.5)
    reference = create_model("nasnet_mobile")
    reference.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 96, 96)
    with torch.no_grad():
        model.eval()
        reference.eval()
        first = model(x)
        assert torch.equal(first, model(x))
        assert torch.allclose(first, reference(x), atol=1e-6)

        model.train()
        _eval_statistics(model)  # only drop path is random now
        a, b = model(x), model(x)
        assert not torch.allclose(a, b)
        assert not torch.allclose(a, first)

        model.set_drop_path_progress(0.0)  # slim at global_step 0: no drop path yet
        assert torch.allclose(model(x), first, atol=1e-6)


def test_drop_path_keep_probability_scales_with_depth_and_progress():
    model = create_model("pnasnet_mobile", drop_path_keep_prob=0.6)
    cells = [getattr(model, name) for name, _ in model.cell_plan]
    assert len(cells) == 9 + 2  # slim's total_num_cells: the cells plus two stem cells
    keep = [c.drop_path_keep_prob for c in cells]
    assert keep[-1] == pytest.approx(0.6)
    assert keep[0] == pytest.approx(1 - 1 / 11 * 0.4)
    assert all(a > b for a, b in itertools.pairwise(keep))
    model.set_drop_path_progress(0.5)
    assert cells[-1].drop_path_keep_prob == pytest.approx(0.8)


def test_drop_path_zeroes_whole_examples_and_keeps_the_mean():
    torch.manual_seed(0)
    out = drop_path(torch.ones(20000, 2, 3, 3), keep_prob=0.7)
    per_example = out.flatten(1)
    assert torch.all(per_example == per_example[:, :1])  # one decision per example
    assert per_example[:, 0].unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert abs(out.mean().item() - 1.0) < 0.03


@pytest.mark.parametrize("arch", ["nasnet_mobile", "pnasnet_mobile"])
def test_fine_tuned_class_count_loads_both_heads(arch):
    weights = reference_weights(arch)
    rng = np.random.default_rng(1)
    for scope, fan_in in (("final_layer/FC", None), (AUX_FC[arch], 768)):
        fan_in = fan_in or weights[f"{scope}/weights"].shape[0]
        weights[f"{scope}/weights"] = rng.standard_normal((fan_in, 7)).astype(np.float32)
        weights[f"{scope}/biases"] = rng.standard_normal(7).astype(np.float32)

    model = zoo.load(arch, checkpoint=weights).eval()
    assert model.num_classes == 7
    aux_fc = model.get_submodule(model.classifier_names[1])
    assert np.array_equal(aux_fc.bias.detach().numpy(), weights[f"{AUX_FC[arch]}/biases"])
    assert np.array_equal(
        model.final_layer.FC.weight.detach().numpy(), weights["final_layer/FC/weights"].T
    )
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 7)

    model = zoo.load(arch, checkpoint=weights, num_classes=10, skip_classifier=True).eval()
    assert sorted(model.load_report.skipped) == sorted(
        f"{name}.{p}" for name in model.classifier_names for p in ("weight", "bias")
    )
    assert model.get_submodule(model.classifier_names[1]).out_features == 10
    assert model.final_layer.FC.out_features == 10
