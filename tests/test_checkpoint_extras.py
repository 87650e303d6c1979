"""Tensors a published checkpoint holds beyond the network's variables are classified, each with
its reason, and reported as skipped; anything else left over is still an error listing it.

The releases hold ``global_step`` (all), ``<scope>/mean_rgb`` (vgg, resnet_v1), and the
MobileNet bundles ExponentialMovingAverage shadows (the values to load) and RMSProp slots
(checkpoint_facts.md); fine-tuned checkpoints may hold Momentum or Adam slots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import expected, reference_input, reference_weights, runs, tolerance

import zoo
from architectures._load_report import EMA_SUFFIX, LoadReport, Reason, classify_extra

ARCH = "mobilenet_v1"
SLOTS = {
    "RMSProp": "RMSProp mean square",
    "RMSProp_1": "RMSProp momentum",
    "Momentum": "Momentum accumulator",
    "Adam": "Adam first moment m",
    "Adam_1": "Adam second moment v",
}


def training_checkpoint(slots=("RMSProp", "RMSProp_1")):
    """The reference weights as a training run leaves them: EMA shadows holding the reference
    values (the raw variables something else), optimizer slots of every trainable variable,
    ``global_step``."""
    weights = reference_weights(ARCH)
    tensors = {"global_step": np.array(5000, np.int64)}
    for name, value in weights.items():
        trainable = not name.endswith(("moving_mean", "moving_variance"))
        tensors[name] = value + np.float32(0.5) if trainable else value
        tensors[name + EMA_SUFFIX] = value
        for slot in slots if trainable else ():
            tensors[f"{name}/{slot}"] = np.full_like(value, 0.25)
    return weights, tensors


def logits(model):
    run = runs(ARCH)[0]
    model.eval()
    with torch.no_grad():
        return model(reference_input(ARCH, run.input_hw)).numpy()


def test_a_training_checkpoint_loads_the_ema_values_and_reports_every_extra():
    weights, tensors = training_checkpoint()
    model = zoo.load(ARCH, checkpoint=tensors)
    want = expected(ARCH)["logits"]
    assert np.abs(logits(model) - want).max() <= tolerance(want)  # the shadows were loaded

    report = model.load_report
    assert set(report.loaded) | set(report.ignored) == set(tensors)
    assert sorted(report.ignored) == sorted(report.reasons)
    trainable = [n for n in weights if not n.endswith(("moving_mean", "moving_variance"))]
    assert sorted(report.ema) == sorted(weights)  # moving statistics have shadows too
    groups = report.by_reason()
    assert groups[Reason.STEP] == ["global_step"]
    assert sorted(groups[Reason.RAW_REPLACED]) == sorted(weights)
    assert sorted(groups["optimizer slot (RMSProp mean square)"]) == sorted(
        f"{n}/RMSProp" for n in trainable
    )
    assert len(groups["optimizer slot (RMSProp momentum)"]) == len(trainable)
    summary = str(report)
    assert "skipped" in summary and "optimizer slot (RMSProp momentum)" in summary
    assert "global_step" in report.describe()


def test_use_ema_false_loads_the_raw_variables_and_says_the_shadows_were_left():
    weights, tensors = training_checkpoint(slots=())
    model = zoo.load(ARCH, checkpoint=tensors, use_ema=False)
    state = model.state_dict()
    assert torch.equal(state["Conv2d_0.conv.weight"].permute(2, 3, 1, 0),
                       torch.from_numpy(weights["MobilenetV1/Conv2d_0/weights"] + 0.5))  # fmt: skip
    groups = model.load_report.by_reason()
    assert sorted(groups[Reason.EMA_UNUSED]) == sorted(n + EMA_SUFFIX for n in weights)
    assert model.load_report.ema == []


@pytest.mark.parametrize("slot", sorted(SLOTS))
def test_every_optimizer_slot_kind_is_recognised(slot):
    _, tensors = training_checkpoint(slots=(slot,))
    tensors["beta1_power"] = np.float32(0.9)
    report = zoo.load(ARCH, checkpoint=tensors).load_report
    slots = [n for n in report.ignored if n.endswith("/" + slot)]
    assert slots and {report.reasons[n] for n in slots} == {f"optimizer slot ({SLOTS[slot]})"}
    assert report.reasons["beta1_power"] == Reason.ADAM_POWER


@pytest.mark.parametrize(
    "extra",
    [
        "MobilenetV1/Conv2d_0/weights/Adadelta",  # an unknown slot kind
        "MobilenetV1/Conv2d_99/weights/RMSProp",  # a slot of a variable the checkpoint lacks
        "MobilenetV1/Conv2d_99/weights" + EMA_SUFFIX,  # a shadow of a variable nobody has
        "MobilenetV1/Conv2d_0/scale",  # anything else
    ],
)
def test_any_other_tensor_is_still_an_error_listing_it(extra):
    _, tensors = training_checkpoint()
    tensors[extra] = np.zeros(3, np.float32)
    with pytest.raises(zoo.MappingError, match="unused checkpoint tensors") as err:
        zoo.load(ARCH, checkpoint=tensors)
    assert extra in str(err.value)


def test_classify_extra_needs_the_slots_variable():
    names = {"a/weights", "a/weights/RMSProp", "b/mean_rgb", "global_step"}
    assert classify_extra("a/weights/RMSProp", names) == "optimizer slot (RMSProp mean square)"
    assert classify_extra("c/weights/RMSProp", names) is None
    assert classify_extra("b/mean_rgb", names) == Reason.MEAN_RGB
    assert classify_extra("global_step", names) == Reason.STEP
    assert classify_extra("a/weights", names) is None


def test_report_round_trips_through_its_cache_record():
    report = LoadReport()
    report.ignore("global_step", Reason.STEP)
    report.absent.append("aux_7/aux_logits/aux_bn0/beta")
    report.dropped_heads.append("aux_7")
    record = report.to_json()
    assert record == {
        "skipped_tensors": {"global_step": Reason.STEP},
        "absent_tensors": ["aux_7/aux_logits/aux_bn0/beta"],
        "dropped_heads": ["aux_7"],
    }
