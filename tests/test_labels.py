"""zoo.labels: ImageNet class names in slim's order, with and without the background class."""

from __future__ import annotations

import pytest
import torch
from torchvision.models._meta import _IMAGENET_CATEGORIES

import zoo
from zoo.labels import drop_background


def test_1001_class_models_have_background_then_torchvisions_1000():
    labels = zoo.imagenet_labels(1001)
    assert len(labels) == 1001
    assert labels[0] == "background"
    assert labels[1:] == list(_IMAGENET_CATEGORIES)
    # slim numbers the classes by sorted WordNet id from 1: n01440764 (tench) first,
    # n15075141 (toilet tissue) last
    assert (labels[1], labels[2], labels[1000]) == ("tench", "goldfish", "toilet tissue")


def test_1000_class_models_have_no_background():
    labels = zoo.imagenet_labels(1000)
    assert len(labels) == 1000
    assert labels == list(_IMAGENET_CATEGORIES)
    assert "background" not in labels
    assert (labels[0], labels[999]) == ("tench", "toilet tissue")


@pytest.mark.parametrize(
    ("name", "num_classes"),
    [
        ("vgg_16", 1000),
        ("vgg_19", 1000),
        ("resnet_v1_50", 1000),
        ("resnet_v2_50", 1001),
        ("inception_v1", 1001),
        ("inception_v3", 1001),
        ("inception_resnet_v2", 1001),
        ("mobilenet_v2", 1001),
        ("nasnet_large", 1001),
    ],
)
def test_model_names_give_their_label_space(name, num_classes):
    labels = zoo.imagenet_labels(name)
    assert labels == zoo.imagenet_labels(num_classes)
    assert (labels[0] == "background") == (num_classes == 1001)


def test_each_call_returns_a_fresh_list():
    labels = zoo.imagenet_labels(1001)
    labels[0] = "changed"
    assert zoo.imagenet_labels(1001)[0] == "background"


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="1000 or 1001"):
        zoo.imagenet_labels(10)
    with pytest.raises(zoo.UnknownModelError, match="vgg_16"):
        zoo.imagenet_labels("vgg16")


def test_drop_background_maps_slim_indices_to_torchvision_indices():
    logits = torch.randn(4, 1001)
    dropped = drop_background(logits)
    assert dropped.shape == (4, 1000)
    assert torch.equal(dropped, logits[:, 1:])
    # a prediction of slim class k + 1 is torchvision class k, with the same name
    logits = torch.zeros(1001)
    logits[1 + 388] = 5.0
    index = int(drop_background(logits).argmax())
    assert zoo.imagenet_labels(1000)[index] == zoo.imagenet_labels(1001)[389]
    assert index == 388


def test_drop_background_other_dim_and_wrong_sizes():
    logits = torch.randn(1001, 3)
    assert torch.equal(drop_background(logits, dim=0), logits[1:])
    with pytest.raises(ValueError, match="1001-class"):
        drop_background(torch.randn(2, 1000))
    with pytest.raises(ValueError, match="1001-class"):
        drop_background(torch.tensor(1.0))
