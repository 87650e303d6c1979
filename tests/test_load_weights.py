"""``zoo.load(name, weights=FILE)``: a torch weights file (safetensors, or a ``.pt`` state dict
read with ``torch.load(weights_only=True)``) of the network, e.g. from ``slimzoo convert`` or a
PyTorch fine-tuning run."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

import zoo

SMALL = {"depth_multiplier": 0.25}  # a 0.25 MobileNet v1: real layouts, 0.5 M parameters


def _trained(num_classes: int = 1001, seed: int = 0) -> torch.nn.Module:
    """A small MobileNet v1 with random (not initial) values everywhere, BN statistics too."""
    torch.manual_seed(seed)
    model = zoo.load("mobilenet_v1", num_classes=num_classes, **SMALL).eval()
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5)
    return model


def _assert_same_model(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert a.state_dict().keys() == b.state_dict().keys()
    for key, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[key], value), key
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    assert not b.training


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_a_saved_state_dict_loads_back(tmp_path, suffix):
    model = _trained()
    path = tmp_path / f"model{suffix}"
    state = model.state_dict()
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)
    _assert_same_model(model, zoo.load("mobilenet_v1", weights=path, **SMALL).eval())
    _assert_same_model(model, zoo.load("mobilenet_v1", weights=str(path), **SMALL).eval())


def test_the_class_count_of_a_fine_tuned_file_is_detected(tmp_path):
    model = _trained(num_classes=7)
    path = tmp_path / "tuned.safetensors"
    save_file(model.state_dict(), path)
    loaded = zoo.load("mobilenet_v1", weights=path, **SMALL).eval()
    assert loaded.num_classes == 7
    _assert_same_model(model, loaded)
    with pytest.raises(zoo.MappingError, match="num_classes=3 but the weights file"):
        zoo.load("mobilenet_v1", weights=path, num_classes=3, **SMALL).eval()
    backbone = zoo.load(
        "mobilenet_v1", weights=path, num_classes=3, skip_classifier=True, **SMALL
    ).eval()
    assert backbone.num_classes == 3
    assert torch.equal(backbone.Conv2d_0.conv.weight, model.Conv2d_0.conv.weight)
    dropped = zoo.load(
        "mobilenet_v1", weights=save_1001(tmp_path), drop_background=True, **SMALL
    ).eval()
    assert dropped.num_classes == 1000


def save_1001(tmp_path) -> str:
    path = tmp_path / "full.pt"
    torch.save(_trained(seed=1).state_dict(), path)
    return str(path)


def test_weights_of_another_network_or_shape_are_refused_with_names(tmp_path):
    path = tmp_path / "small.safetensors"
    save_file(_trained().state_dict(), path)
    with pytest.raises(zoo.MappingError, match=r"does not fit inception_v1.*missing \(\d+\)"):
        zoo.load("inception_v1", weights=path).eval()
    with pytest.raises(zoo.MappingError, match=r"mis-shaped \(\d+\): Conv2d_0.conv.weight"):
        zoo.load("mobilenet_v1", weights=path, depth_multiplier=0.5).eval()


def test_files_that_are_not_state_dicts_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        zoo.load("mobilenet_v1", weights=tmp_path / "missing.safetensors").eval()
    text = tmp_path / "notes.safetensors"
    text.write_text("not a safetensors file")
    with pytest.raises(zoo.CheckpointError, match="is not a safetensors file"):
        zoo.load("mobilenet_v1", weights=text).eval()
    pickled = tmp_path / "model.pt"
    torch.save({"model": _trained().state_dict(), "epoch": 3}, pickled)  # a training checkpoint
    with pytest.raises(zoo.CheckpointError, match="expected a flat state dict"):
        zoo.load("mobilenet_v1", weights=pickled).eval()
    code = tmp_path / "code.pt"
    torch.save(torch.nn.ReLU(), code)  # a pickled module: weights_only refuses to run it
    with pytest.raises(zoo.CheckpointError, match=r"weights_only=True"):
        zoo.load("mobilenet_v1", weights=code).eval()


def test_one_source_of_weights_at_a_time(tmp_path):
    sources = re.escape("one of pretrained=True, checkpoint=..., weights=...")
    with pytest.raises(ValueError, match=sources):
        zoo.load("mobilenet_v1", pretrained=True, weights=tmp_path / "x.safetensors").eval()
    with pytest.raises(ValueError, match="one of"):
        zoo.load("mobilenet_v1", checkpoint={}, weights=tmp_path / "x.safetensors").eval()
