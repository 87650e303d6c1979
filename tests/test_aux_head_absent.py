"""Weights whose auxiliary head is missing or incomplete load wherever an aux head exists.

NASNet-A and PNASNet-5 Large were published without the aux head's batch norms
(``aux_<k>/aux_logits/aux_bn0|aux_bn1``, tensorflow/models #2648, #3822, #8643): inference never
runs the head, so the network loads without it, the load report names the absent tensors and
the ones left unread, and the logits are those of the full model. ``aux_logits=True`` (training)
gets the head freshly initialised with one warning; ``require_aux_head=True`` makes it an error.
The mobile networks stand in for the large ones here (same code; the large releases go through
the whole pipeline in tests/test_real_releases.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import expected, reference_input, reference_weights, runs, tolerance
from safetensors.torch import save_model

import zoo
from architectures._load_report import Reason
from zoo.errors import MappingError

# arch: (the aux head's TF scope, the tensors a release lacks in the "incomplete" case)
CASES = {
    "nasnet_mobile": ("aux_7/", ("/aux_bn0/", "/aux_bn1/")),
    "pnasnet_mobile": ("aux_5/", ("/aux_bn0/", "/aux_bn1/")),
    "inception_v3": ("InceptionV3/AuxLogits/", ("/Conv2d_2a_5x5/",)),
}


def aux_head(model):
    head = getattr(model, "aux_head", None)
    return head() if callable(head) else None


@pytest.fixture(scope="module")
def full_models():
    """The full model of each case (with its aux head) and its logits on one image."""
    built = {}

    def get(arch):
        if arch not in built:
            model = zoo.load(arch, checkpoint=reference_weights(arch)).eval()
            x = reference_input(arch, runs(arch)[0].input_hw)[:1]
            with torch.no_grad():
                built[arch] = (model, x, model(x))
        return built[arch]

    return get


def without(arch, parts):
    """The reference checkpoint without the aux tensors whose names contain one of ``parts``
    (the whole head for ``parts=("",)``), and the names removed."""
    scope = CASES[arch][0]
    weights = reference_weights(arch)
    gone = sorted(n for n in weights if n.startswith(scope) and any(p in n for p in parts))
    for name in gone:
        del weights[name]
    weights["global_step"] = np.array(7, np.int64)
    return weights, gone


@pytest.mark.parametrize(
    "arch, case",
    [(arch, "incomplete") for arch in sorted(CASES)]
    + [("inception_v3", "missing"), ("nasnet_mobile", "missing")],
)
def test_checkpoint_without_a_complete_aux_head_loads_without_it(arch, case, full_models):
    scope, parts = CASES[arch]
    weights, gone = without(arch, parts if case == "incomplete" else ("",))
    left = sorted(n for n in weights if n.startswith(scope))
    assert gone and (left if case == "incomplete" else not left)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing asked for the head
        model = zoo.load(arch, checkpoint=weights).eval()
    report = model.load_report
    assert aux_head(model) is None and not any(
        k.startswith(report.dropped_heads[0]) for k in model.state_dict()
    )
    assert sorted(report.absent) == gone
    assert {n: report.reasons[n] for n in left} == dict.fromkeys(left, Reason.INCOMPLETE_HEAD)
    assert report.reasons["global_step"] == Reason.STEP
    assert "absent from the checkpoint" in str(report) and gone[0] in report.describe(100)

    _, x, want = full_models(arch)
    with torch.no_grad():
        assert torch.equal(model(x), want)
    # an ordinary model without its aux head: a weights file of the full model loads into it
    assert model.unbuilt_heads == tuple(report.dropped_heads)


# (PNASNet: pnasnet_large's release in tests/test_real_releases.py)
@pytest.mark.parametrize("arch", ["inception_v3", "nasnet_mobile"])
def test_aux_logits_true_builds_the_head_freshly_initialised_with_one_warning(arch):
    weights, gone = without(arch, CASES[arch][1])
    with pytest.warns(UserWarning, match="freshly initialised") as caught:
        model = zoo.load(arch, checkpoint=weights, aux_logits=True).eval()
    assert len(caught) == 1 and gone[0] in str(caught[0].message)
    assert aux_head(model) is not None and sorted(model.load_report.absent) == gone
    x = reference_input(arch, runs(arch)[0].input_hw)[:1]
    points = model.end_points(x)  # eval mode runs the (fresh) head too, as slim records it
    assert points["AuxLogits"].shape == (1, model.num_classes)
    assert torch.isfinite(points["AuxLogits"]).all()


@pytest.mark.parametrize("arch", sorted(CASES))
def test_require_aux_head_makes_it_an_error(arch):
    weights, gone = without(arch, CASES[arch][1])
    with pytest.raises(MappingError, match="missing from the checkpoint") as err:
        zoo.load(arch, checkpoint=weights, require_aux_head=True)
    assert gone[0] in str(err.value)


def test_weights_file_without_the_aux_head(tmp_path, full_models):
    """The same for a torch weights file (what the weights cache holds for such a release)."""
    weights, _ = without("nasnet_mobile", ("",))
    bare = zoo.load("nasnet_mobile", checkpoint=weights)
    path = tmp_path / "no_aux.safetensors"
    save_model(bare, str(path), force_contiguous=True)
    _, x, want = full_models("nasnet_mobile")

    model = zoo.load("nasnet_mobile", weights=path).eval()
    assert aux_head(model) is None
    with torch.no_grad():
        assert torch.equal(model(x), want)
    with pytest.warns(UserWarning, match="freshly initialised") as caught:
        trainable = zoo.load("nasnet_mobile", weights=path, aux_logits=True)
    assert len(caught) == 1 and aux_head(trainable) is not None
    with pytest.raises(MappingError, match="require_aux_head"):
        zoo.load("nasnet_mobile", weights=path, require_aux_head=True)


@pytest.mark.parametrize("arch", ["nasnet_mobile", "pnasnet_mobile"])
def test_both_spellings_of_the_aux_fc_scope_load(arch, full_models):
    """NASNet's checkpoints were re-uploaded with ``fully_connected`` for the aux ``FC``."""
    scope = CASES[arch][0]
    weights = reference_weights(arch)
    for leaf in ("weights", "biases"):
        weights[f"{scope}aux_logits/fully_connected/{leaf}"] = weights.pop(
            f"{scope}aux_logits/FC/{leaf}"
        )
    model = zoo.load(arch, checkpoint=weights)
    assert not model.load_report.absent and not model.load_report.ignored
    full = full_models(arch)[0]
    assert torch.equal(aux_head(model).aux_logits.FC.weight, aux_head(full).aux_logits.FC.weight)
    # both spellings at once: which one is meant? the other is an unknown tensor
    weights[f"{scope}aux_logits/FC/weights"] = weights[f"{scope}aux_logits/fully_connected/weights"]
    with pytest.raises(MappingError, match="unused checkpoint tensors"):
        zoo.load(arch, checkpoint=weights)


@pytest.mark.parametrize(
    "arch, scope", [("inception_v4", "InceptionV4/AuxLogits/"),
                    ("inception_resnet_v2", "InceptionResnetV2/AuxLogits/")]
)  # fmt: skip
def test_the_other_inception_heads_may_be_missing_too(arch, scope):
    weights = reference_weights(arch)
    gone = sorted(n for n in weights if n.startswith(scope) and "/Conv2d_1b_1x1/" in n)
    for name in gone:
        del weights[name]
    model = zoo.load(arch, checkpoint=weights).eval()
    assert model.AuxLogits is None and sorted(model.load_report.absent) == gone
    run = runs(arch)[0]
    with torch.no_grad():
        logits = model(reference_input(arch, run.input_hw)[:1]).numpy()
    want = expected(arch)["logits" + run.suffix][:1]
    assert np.abs(logits - want).max() <= tolerance(want)
