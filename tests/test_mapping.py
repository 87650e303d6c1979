"""The TF-name mapping of every network, checked both ways against slim's variable manifests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import manifest, reference_archs, reference_input, reference_weights
from safetensors.torch import save_model

import zoo
from architectures import Layout, create_model, tf_mapping

PORTED = [a for a in reference_archs() if a in zoo.list_models()]


@pytest.mark.parametrize("arch", PORTED)
def test_mapping_is_the_manifest_both_ways(arch):
    """Every slim variable fills exactly one torch tensor with the same shape, and back."""
    mapping = tf_mapping(create_model(arch))
    ours = {t.name: t.shape for t in mapping.values()}
    slim = {e["name"]: tuple(e["shape"]) for e in manifest(arch)}
    assert len(ours) == len(mapping)  # no TF name used twice
    assert sorted(set(slim) - set(ours)) == [], "slim variables no torch tensor takes"
    assert sorted(set(ours) - set(slim)) == [], "torch tensors slim does not have"
    wrong = {n: (ours[n], slim[n]) for n in slim if ours[n] != slim[n]}
    assert wrong == {}


def test_layouts_round_trip():
    rng = np.random.default_rng(0)
    cases = {
        Layout.CONV: (3, 5, 4, 7),
        Layout.DEPTHWISE: (3, 3, 4, 2),
        Layout.FC: (6, 9),
        Layout.CONV_AS_FC: (1, 1, 6, 9),
        Layout.IDENTITY: (5,),
    }
    for layout, shape in cases.items():
        value = rng.standard_normal(shape).astype(np.float32)
        torch_value = layout.to_torch(value)
        groups = shape[2] if layout is Layout.DEPTHWISE else 1
        assert layout.tf_shape(torch_value.shape, groups) == shape
        assert np.array_equal(layout.to_tf(torch_value, shape), value)


def test_mapping_errors_name_the_tensors():
    weights = reference_weights("vgg_16")
    del weights["vgg_16/conv3/conv3_2/weights"]
    weights["vgg_16/conv3/conv3_9/weights"] = np.zeros((3, 3, 256, 256), np.float32)
    weights["vgg_16/fc7/biases"] = np.zeros(17, np.float32)
    with pytest.raises(zoo.MappingError) as info:
        zoo.load("vgg_16", checkpoint=weights)
    message = str(info.value)
    assert "vgg_16/conv3/conv3_2/weights  (for conv3.conv3_2.weight)" in message
    assert "vgg_16/conv3/conv3_9/weights" in message
    assert "vgg_16/fc7/biases: checkpoint [17], fc7.bias needs [4096]" in message


def test_ignores_global_step_and_mean_rgb():
    weights = reference_weights("vgg_16")
    weights["global_step"] = np.array(12345, np.int64)
    weights["vgg_16/mean_rgb"] = np.array([123.68, 116.78, 103.94], np.float32)
    model = zoo.load("vgg_16", checkpoint=weights)
    assert sorted(model.load_report.ignored) == ["global_step", "vgg_16/mean_rgb"]
    assert len(model.load_report.loaded) == 32


def test_class_count_follows_a_fine_tuned_checkpoint():
    weights = reference_weights("vgg_16")
    rng = np.random.default_rng(1)
    weights["vgg_16/fc8/weights"] = rng.standard_normal((1, 1, 4096, 7)).astype(np.float32)
    weights["vgg_16/fc8/biases"] = rng.standard_normal(7).astype(np.float32)
    model = zoo.load("vgg_16", checkpoint=weights)
    assert model.num_classes == 7
    assert np.array_equal(model.fc8.bias.detach().numpy(), weights["vgg_16/fc8/biases"])

    with pytest.raises(zoo.MappingError, match="num_classes=10 but the checkpoint's classifier"):
        zoo.load("vgg_16", checkpoint=weights, num_classes=10)

    model = zoo.load("vgg_16", checkpoint=weights, num_classes=10, skip_classifier=True)
    assert model.fc8.out_channels == 10
    assert model.load_report.skipped == ["fc8.weight", "fc8.bias"]
    assert np.array_equal(model.fc7.bias.detach().numpy(), weights["vgg_16/fc7/biases"])


def test_unknown_model_suggests_close_names():
    with pytest.raises(zoo.UnknownModelError, match="vgg_16"):
        zoo.load("vgg16")
    with pytest.raises(ValueError):
        zoo.load("no_such_net")


# one network per family: the classifier is a conv (vgg, resnet, inception_v1/v3, mobilenet, also
# after mobilenet_v3's biased Conv_2) or fully connected (inception_resnet_v2, nasnet), with and
# without an auxiliary head
HEADLESS = [
    "vgg_16",
    "resnet_v1_50",
    "resnet_v2_50",
    "inception_v1",
    "inception_v3",
    "inception_resnet_v2",
    "mobilenet_v1",
    "mobilenet_v3_large",
    "nasnet_mobile",
]


@pytest.mark.parametrize("arch", HEADLESS)
def test_a_model_without_classes_loads_the_features_of_a_full_checkpoint(arch, tmp_path):
    """``num_classes=0`` (a feature extractor, as in timm) takes everything but the classifiers
    from a checkpoint or weights file that has them, and reports their tensors as ignored."""
    weights = reference_weights(arch)
    full = zoo.load(arch, checkpoint=weights)
    x = reference_input(arch, (224, 224))[:1]
    with torch.no_grad():
        want = full.forward_head(full.forward_features(x), pre_logits=True)
    assert want.std() > 0.01  # features that depend on the weights

    headless = zoo.load(arch, checkpoint=weights, num_classes=0)
    assert headless.num_classes == 0
    classifiers = getattr(full, "classifier_names", (full.classifier_name,))
    heads = {t.name for n, t in tf_mapping(full).items() if n.startswith(classifiers)}
    assert heads and heads <= set(headless.load_report.ignored)
    path = tmp_path / "full.safetensors"
    save_model(full, str(path), force_contiguous=True)
    from_file = zoo.load(arch, weights=path, num_classes=0)
    with torch.no_grad():
        assert torch.equal(headless(x), want)
        assert torch.equal(from_file(x), want)

    # only the classifiers may go unused: a stray tensor beside the main classifier still does not
    # fit (beside an auxiliary head it would: a model without classes has no aux scope at all)
    main = min(t.name for n, t in tf_mapping(full).items() if n.startswith(full.classifier_name))
    weights[f"{main.rsplit('/', 1)[0]}_extra/weights"] = np.zeros(3, np.float32)
    with pytest.raises(zoo.MappingError, match="_extra/weights"):
        zoo.load(arch, checkpoint=weights, num_classes=0)
