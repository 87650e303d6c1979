"""Bad arguments and inputs get one clear message: zoo.load's arguments, a model's input, and
checkpoint values that are not finite float arrays."""

from __future__ import annotations

import logging

import _tinynet
import numpy as np
import pytest
import torch

import zoo
from architectures import get_constructor
from zoo.convert import convert_to_safetensors


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    with _tinynet.registered():
        yield


# ----------------------------------------------------------------------------- zoo.load


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_classes": -1}, zoo.ConfigError, "between 0 .* got -1"),
        ({"num_classes": 10**9}, zoo.ConfigError, "and 100,000, got 1,000,000,000"),
        ({"num_classes": 1.5}, TypeError, r"num_classes must be an int .* got 1\.5 \(float\)"),
        ({"num_classes": "10"}, TypeError, r"got '10' \(str\)"),
        ({"num_classes": True}, TypeError, r"got True \(bool\)"),
        ({"checkpoint": 123}, TypeError, r"checkpoint must be a path .* got 123 \(int\)"),
        ({"weights": 1.0}, TypeError, r"weights must be a path .* got 1\.0 \(float\)"),
        ({"pretrained": "yes"}, TypeError, "pretrained must be True or False"),
    ],
)
def test_load_rejects_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message) as info:
        zoo.load(_tinynet.NAME, **kwargs)
    assert "\n" not in str(info.value)
    if error is zoo.ConfigError:
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", [None, 5, ["x"], b"vgg_16"])
def test_load_rejects_a_name_that_is_not_a_string(name) -> None:
    with pytest.raises(TypeError, match=r"name must be a model name \(str\)"):
        zoo.load(name)


def test_valid_arguments_still_build() -> None:
    model = zoo.load(_tinynet.NAME, num_classes=0)
    assert model.num_classes == 0


# ----------------------------------------------------------------------------- model input

# one network of each forward implementation: SlimNet's, InceptionNet's and NASNet's
NETWORKS = ["mobilenet_v1", "inception_v1", "nasnet_mobile"]


@pytest.fixture(scope="module", params=NETWORKS)
def network(request):
    return get_constructor(request.param)(num_classes=10).eval()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: torch.zeros(3, 64, 64), ValueError, r"got a 3-D tensor .*unsqueeze\(0\)"),
        (lambda: torch.zeros(0, 3, 64, 64), ValueError, "non-empty batch"),
        (lambda: torch.zeros(1, 3, 64, 64, dtype=torch.uint8), TypeError, "dtype torch.uint8"),
        (lambda: np.zeros((1, 3, 64, 64), np.float32), TypeError, r"torch\.from_numpy"),
        (lambda: torch.zeros(1, 64, 64, 3), ValueError, r"channels last\? use x\.permute"),
        (lambda: torch.zeros(1, 1, 64, 64), ValueError, "expected 3 channels"),
    ],
)
def test_models_check_their_input(network, make, error, message) -> None:
    with pytest.raises(error, match=message) as info:
        network(make())
    assert "\n" not in str(info.value)
    with pytest.raises(error, match=message):
        network.end_points(make())


def test_a_good_batch_still_runs(network) -> None:
    with torch.no_grad():
        assert network(torch.zeros(2, 3, 224, 224)).shape == (2, 10)


# ----------------------------------------------------------------------------- values


def broken(change) -> dict[str, np.ndarray]:
    weights = _tinynet.tf_weights()
    name = next(n for n, v in weights.items() if v.ndim == 4)  # a conv kernel
    weights[name] = change(weights[name])
    return weights, name


def with_nan(value):
    value = value.copy()
    value.reshape(-1)[0] = np.nan
    value.reshape(-1)[-1] = np.inf
    return value


def test_nonfinite_weights_are_refused_unless_allowed() -> None:
    weights, name = broken(with_nan)
    with pytest.raises(zoo.MappingError, match=f"{name}.* holds 2 NaN or infinite") as info:
        zoo.load(_tinynet.NAME, checkpoint=weights)
    assert "allow_nonfinite=True" in str(info.value)
    model = zoo.load(_tinynet.NAME, checkpoint=weights, allow_nonfinite=True)
    assert not torch.isfinite(model.state_dict()[_torch_name(model, name)]).all()


def _torch_name(model, tf_name):
    return (
        next(t for t, s in model.load_report_map.items() if s == tf_name)
        if hasattr(model, "load_report_map")
        else next(n for n, p in model.state_dict().items() if p.dim() == 4)
    )


def test_nonfinite_weights_file_is_refused_unless_allowed(tmp_path) -> None:
    from safetensors.torch import save_file

    model = zoo.load(_tinynet.NAME)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = float("nan")
    save_file(state, tmp_path / "w.safetensors")
    with pytest.raises(zoo.MappingError, match=f"holds NaN or infinite values in {first}"):
        zoo.load(_tinynet.NAME, weights=tmp_path / "w.safetensors")
    zoo.load(_tinynet.NAME, weights=tmp_path / "w.safetensors", allow_nonfinite=True)


def test_nonfinite_weights_are_refused_at_conversion(tmp_path) -> None:
    weights, name = broken(with_nan)
    with pytest.raises(zoo.MappingError, match=f"{name}.* NaN or infinite"):
        convert_to_safetensors(
            weights, _tinynet.NAME, tmp_path / "w.safetensors", num_classes=_tinynet.NUM_CLASSES
        )
    path = tmp_path / "ok.safetensors"
    weights, _ = broken(lambda v: v)
    convert_to_safetensors(weights, _tinynet.NAME, path, num_classes=_tinynet.NUM_CLASSES)
    assert path.stat().st_size > 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.astype(np.int64), "dtype int64, its parameter is float32"),
        (lambda v: v > 0, "dtype bool"),
        (lambda v: v.tolist(), "is a list"),
    ],
)
def test_values_that_would_be_cast_silently_are_refused(change, message) -> None:
    weights, name = broken(change)
    with pytest.raises(zoo.MappingError, match=message) as info:
        zoo.load(_tinynet.NAME, checkpoint=weights)
    assert name in str(info.value)


def test_float64_values_are_loaded_and_reported(caplog) -> None:
    weights, name = broken(lambda v: v.astype(np.float64))
    with caplog.at_level(logging.WARNING, logger="zoo"):
        zoo.load(_tinynet.NAME, checkpoint=weights)
    assert f"rounded 1 checkpoint value(s) to float32: {name} (float64)" in caplog.text
