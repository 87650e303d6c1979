"""``zoo.load(..., drop_background=True)``: the classifier itself outputs the 1000 ImageNet
classes, equal to the 1001-class logits ``[:, 1:]``, on every path a model takes (checkpoint,
pretrained cache, forward_head, end points, export), with clear errors for the models without
a background class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tarballs import release_tarball, release_tensors, write_checkpoint, write_registry
from conftest import reference_weights

import zoo
from architectures._tf import tf_mapping
from zoo.classifier_heads import classifier_scopes, under

# one network per classifier layout: conv heads with a conv aux head (inception_v3), linear
# heads with an aux head (nasnet_mobile), a 1x1 conv head (mobilenet_v1), ChainNet's head
# (inception_v1), a 1x1 conv head after a bias-only 1x1 conv (mobilenet_v3_large)
ARCHS = {
    "inception_v3": 107,
    "nasnet_mobile": 96,
    "mobilenet_v1": 96,
    "inception_v1": 224,
    "mobilenet_v3_large": 224,
}


def _pair(arch: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    weights = reference_weights(arch)
    return (
        zoo.load(arch, checkpoint=weights).eval(),
        zoo.load(arch, checkpoint=weights, drop_background=True).eval(),
    )


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_logits_are_the_1001_class_logits_without_index_0(arch):
    full, dropped = _pair(arch)
    x = torch.randn(2, 3, ARCHS[arch], ARCHS[arch], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = full(x), dropped(x)
        features = dropped.forward_features(x)
        head = dropped.forward_head(features)
    assert dropped.num_classes == 1000 and got.shape == (2, 1000)
    torch.testing.assert_close(got, want[:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(head, got, rtol=0, atol=0)
    # every classifier (main and auxiliary) lost exactly its row 0
    heads = classifier_scopes(full)
    assert heads == classifier_scopes(dropped)
    full_state, dropped_state = full.state_dict(), dropped.state_dict()
    assert full_state.keys() == dropped_state.keys()
    sliced = [k for k in full_state if under(k, heads)]
    assert len(sliced) == 2 * len(heads)  # weight and bias of each
    for key, value in full_state.items():
        want_value = value[1:] if key in sliced else value
        assert torch.equal(dropped_state[key], want_value), key


def test_end_points_and_labels_follow_the_dropped_classifier():
    full, dropped = _pair("mobilenet_v1")
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    points = dropped.end_points(x)
    assert points["Predictions"].shape == (1, 1000)
    assert points["Logits"].shape == (1, 1000)
    with torch.no_grad():
        full_top, dropped_top = int(full(x)[0, 1:].argmax()) + 1, int(dropped(x)[0].argmax())
    labels = zoo.imagenet_labels("mobilenet_v1")
    dropped_labels = zoo.imagenet_labels("mobilenet_v1", drop_background=True)
    assert dropped_labels == labels[1:] == zoo.imagenet_labels(1000)
    assert dropped_labels[dropped_top] == labels[full_top]


def test_a_dropped_model_exports_as_a_1000_class_checkpoint(tmp_path):
    arch = "inception_v3"
    weights = reference_weights(arch)
    dropped = zoo.load(arch, checkpoint=weights, drop_background=True).eval()
    path = zoo.export_tf_checkpoint(dropped, arch, tmp_path / "model.ckpt")
    exported = zoo.open_checkpoint(path)
    for name in (
        "InceptionV3/Logits/Conv2d_1c_1x1/biases",
        "InceptionV3/AuxLogits/Conv2d_2b_1x1/weights",
    ):
        np.testing.assert_array_equal(exported[name], weights[name][..., 1:])
    again = zoo.load(arch, checkpoint=path).eval()  # the class count is read from the checkpoint
    assert again.num_classes == 1000
    for key, value in dropped.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_pretrained_weights_drop_their_background_class(tmp_path, monkeypatch):
    from _pipeline import isolate

    isolate(tmp_path, monkeypatch)
    tarball = release_tarball("mobilenet_v1", tmp_path)
    registry = {"mobilenet_v1": {"sha256": tarball.sha256, "size": tarball.size}, "vgg_16": None}
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.json", registry)))
    zoo.import_tarball(tarball.path, "mobilenet_v1")
    full = zoo.load("mobilenet_v1", pretrained=True).eval()
    dropped = zoo.load("mobilenet_v1", pretrained=True, drop_background=True).eval()
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(dropped(x), full(x)[:, 1:], rtol=1e-5, atol=1e-5)
    # refused before anything is downloaded (offline and nothing cached: a download would fail)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.ConfigError, match="1000 classes and no background"):
        zoo.load("vgg_16", pretrained=True, drop_background=True).eval()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: zoo.load("vgg_16", drop_background=True).eval(), "vgg_16 has 1000 classes and no"),
        (lambda: zoo.load("resnet_v1_50", drop_background=True).eval(), "already in torchvision's"),
        (
            lambda: zoo.load("mobilenet_v1", num_classes=10, drop_background=True).eval(),
            "num_classes=10 has 10 classes",
        ),
        (lambda: zoo.imagenet_labels("vgg_19", drop_background=True), "no background class"),
    ],
)
def test_models_without_a_background_class_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_fine_tuned_checkpoint_is_refused(tmp_path):
    tensors = release_tensors("mobilenet_v1")
    model = zoo.load("mobilenet_v1", num_classes=5).eval()
    for torch_name, target in tf_mapping(model).items():  # the 5-class classifier
        if torch_name.startswith(model.classifier_name):
            tensors[target.name] = np.zeros(target.shape, np.float32)
    write_checkpoint(tensors, tmp_path / "tuned.ckpt", "v2")
    with pytest.raises(zoo.ConfigError, match="mobilenet_v1 has 5 classes"):
        zoo.load("mobilenet_v1", checkpoint=tmp_path / "tuned.ckpt", drop_background=True).eval()
