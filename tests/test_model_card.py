"""``model.pretrained_cfg``: the timm-style model card on every loaded model, which timm's own
data helpers (timm installed) resolve to slim's preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

import architectures
import zoo
from zoo.model_card import pretrained_cfg

# inception preprocessing at 224 and at 299, vgg preprocessing
NAMES = ("mobilenet_v1", "inception_v3", "vgg_16")


@pytest.fixture(scope="module", params=NAMES)
def loaded(request):
    name = request.param
    kwargs = {"depth_multiplier": 0.25} if name == "mobilenet_v1" else {}
    return name, zoo.load(name, num_classes=0 if name == "vgg_16" else None, **kwargs)


def test_timm_resolves_slims_preprocessing_from_the_model(loaded):
    name, model = loaded
    p = zoo.model_info(name).preprocessing
    config = resolve_data_config(model=model)
    assert config["input_size"] == (3, p.input_size, p.input_size)
    assert config["interpolation"] == p.interpolation == "bilinear"
    assert config["crop_pct"] == pytest.approx(p.crop_fraction)
    # slim's normalisation, (x - mean) / std on pixels in [0, 1]
    assert config["mean"] == pytest.approx(p.unit_mean) and config["std"] == pytest.approx(
        p.unit_std
    )
    assert config["mean"] != pytest.approx((0.485, 0.456, 0.406))  # not timm's ImageNet default
    # inception: central crop of each side then a square resize (timm's "squash")
    want_mode = "squash" if p.crop_mode == "crop_then_resize" else "center"
    assert config["crop_mode"] == want_mode


def test_timms_transform_is_close_to_the_exact_one(loaded):
    """Same region and normalisation; only the resampling differs (antialiasing, one resize or
    two): a few pixel levels on average. ``zoo.get_transform`` is the exact one."""
    name, model = loaded
    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (32, 42, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize((640, 480), Image.BICUBIC)  # a smooth, photo-like one
    timm_image = create_transform(**resolve_data_config(model=model))(image)
    exact = zoo.get_transform(name)(image)
    assert timm_image.shape == exact.shape
    levels = (
        (timm_image - exact).abs() * torch.tensor(model.pretrained_cfg["std"]).view(3, 1, 1) * 255
    )
    assert float(levels.mean()) < 8  # out of 255 (another crop region would give ~60)


def test_the_card_says_what_the_model_is():
    model = zoo.load("mobilenet_v1", depth_multiplier=0.25)
    cfg = model.pretrained_cfg
    assert cfg["num_classes"] == 1001 and cfg["label_offset"] == 1 and cfg["tag"] == "tf_slim"
    assert cfg["classifier"] == model.classifier_name
    assert cfg["url"] is None and cfg["sha256"] is None  # not the published weights
    tuned = zoo.load("mobilenet_v1", depth_multiplier=0.25, num_classes=10)
    assert tuned.pretrained_cfg["num_classes"] == 10 and tuned.pretrained_cfg["label_offset"] == 0
    resnet = zoo.load("resnet_v1_50", num_classes=0, features_only=True)
    assert resnet.pretrained_cfg["num_classes"] == 0 and resnet.pretrained_cfg["label_offset"] == 0
    assert resnet.pretrained_cfg["input_size"] == (3, 224, 224)


@pytest.mark.parametrize("name", zoo.list_models(pretrained=True))
def test_published_weights_carry_their_release_url_and_sha256(name):
    with torch.device("meta"):
        model = architectures.get_constructor(zoo.model_info(name).architecture)()
    cfg = pretrained_cfg(name, model, pretrained=True)
    release = zoo.model_info(name).release
    assert cfg["url"] == release.url and cfg["url"].startswith("http")
    assert cfg["sha256"] == release.sha256  # None where the registry has none (never invented)
    assert cfg["input_size"] == zoo.model_info(name).input_size
    assert cfg["num_classes"] == zoo.model_info(name).num_classes == model.num_classes
