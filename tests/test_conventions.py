"""The conventions users of timm and torchvision expect: models come back in training mode,
``list_models`` sorts naturally and takes ``pretrained=True``."""

from __future__ import annotations

import pytest
import torch
from conftest import reference_weights

import zoo
from architectures import natural_key


def _all_training(model: torch.nn.Module) -> bool:
    return all(m.training for m in model.modules())


def test_a_model_set_up_for_fine_tuning_comes_back_in_training_mode():
    weights = reference_weights("mobilenet_v1")
    model = zoo.load("mobilenet_v1", checkpoint=weights, num_classes=10, skip_classifier=True)
    assert _all_training(model)
    # so batch norm learns from the new data instead of silently staying frozen
    bn = model.get_submodule("Conv2d_0.bn") if hasattr(model, "Conv2d_0") else None
    bn = bn or next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert not torch.equal(before, bn.running_mean)


@pytest.mark.parametrize(
    "kwargs", [{}, {"num_classes": 0}, {"checkpoint": "reference"}, {"features_only": True}]
)
def test_every_plain_load_is_in_training_mode(kwargs):
    if kwargs.get("checkpoint") == "reference":
        kwargs = {"checkpoint": reference_weights("mobilenet_v1")}
    assert _all_training(zoo.load("mobilenet_v1", **kwargs))


@pytest.mark.parametrize("option", ["fuse_bn", "optimize_for_inference"])
def test_inference_only_forms_come_back_in_eval_mode(option):
    model = zoo.load("mobilenet_v1", depth_multiplier=0.25, **{option: True})
    assert not any(m.training for m in model.modules())


def test_list_models_sorts_naturally():
    names = zoo.list_models()
    assert names == sorted(names, key=natural_key)
    resnets = zoo.list_models("resnet_v1_*")
    assert (
        resnets.index("resnet_v1_50")
        < resnets.index("resnet_v1_101")
        < resnets.index("resnet_v1_152")
    )


def test_list_models_pretrained_lists_what_load_pretrained_takes():
    released = zoo.list_models(pretrained=True)
    assert released == sorted(released, key=natural_key)
    assert set(released) <= set(zoo.list_pretrained())
    assert "mobilenet_v1" in released and "resnet_v1_200" not in released  # never published
    assert "resnet_v1_200" in zoo.list_models()
    assert zoo.list_models("resnet_v1_*", pretrained=True) == [
        "resnet_v1_50",
        "resnet_v1_101",
        "resnet_v1_152",
    ]
    assert zoo.list_models("no_such_*", pretrained=True) == []
