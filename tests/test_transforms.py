"""zoo.transforms: slim's preprocessing, checked against TensorFlow's own ops on real images."""

from __future__ import annotations

import importlib.util
import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import zoo
from tests._slim_preprocessing import (
    TfResize,
    tf_adjust_saturation,
    tf_inception_eval,
    tf_vgg_eval,
)
from zoo.transforms import (
    CentralFractionCrop,
    RandomAspectPreservingResize,
    RandomSlimColor,
    adjust_saturation,
    aspect_preserving_size,
    resize_bilinear_legacy,
)

INCEPTION_TOL = 1e-5  # [-1, 1] scale
VGG_TOL = 1e-3  # 0..255 scale

# --------------------------------------------------------------------------- test images


def _noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255 * x / max(w - 1, 1)
    g = 255 * y / max(h - 1, 1)
    b = 255 * (x + y) / max(h + w - 2, 1)
    return np.stack([r, g, 255 - b], axis=-1).round().astype(np.uint8)


def _photo_like(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random field plus grain, through a JPEG round trip (blocky, ringing edges)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (max(h // 16, 2), max(w // 16, 2), 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float64)
    grainy = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grainy).save(buffer, format="JPEG", quality=85)
    return np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


GENERATED = {
    "noise_1x1": _noise(1, 1, 0),
    "noise_3x5_tiny": _noise(3, 5, 1),
    "gradient_7x4_tiny_portrait": _gradient(7, 4),
    "noise_255x257_odd": _noise(255, 257, 2),
    "gradient_256x256_vgg_size": _gradient(256, 256),
    "photo_375x500_landscape": _photo_like(375, 500, 3),
    "photo_500x333_portrait": _photo_like(500, 333, 4),
    "noise_299x299_model_size": _noise(299, 299, 5),
    "photo_1023x769_large_odd": _photo_like(1023, 769, 6),
    "gradient_40x601_wide": _gradient(40, 601),
}


def _package_images(limit_per_package: int = 1) -> dict[str, np.ndarray]:
    """PNG/JPEG files shipped by installed packages (networkx and sympy come with torch)."""
    found: dict[str, np.ndarray] = {}
    for package in ("networkx", "sympy", "werkzeug", "skimage", "scipy", "matplotlib"):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        for path in files[:limit_per_package]:
            with Image.open(path) as image:
                found[f"{package}/{path.name}"] = np.array(image.convert("RGB"))
    return found


PACKAGE_IMAGES = _package_images()
IMAGES = {**GENERATED, **PACKAGE_IMAGES}


def test_some_package_images_are_available():
    # torch depends on networkx and sympy, which ship PNG test images; the TF cross-checks
    # below must see at least one image that was not made here
    assert PACKAGE_IMAGES, "no PNG/JPEG found in networkx, sympy, werkzeug, skimage, scipy"


def _ours(transform: torch.nn.Module, image_hwc: np.ndarray) -> np.ndarray:
    return transform(Image.fromarray(image_hwc)).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- TensorFlow parity


# every image at 299; the other model sizes on a few shapes
INCEPTION_CASES = [(name, 299) for name in sorted(IMAGES)] + [
    (name, size)
    for name in ("noise_3x5_tiny", "photo_500x333_portrait", "photo_1023x769_large_odd")
    for size in (224, 331)
]


@pytest.mark.tf
@pytest.mark.parametrize(("name", "size"), INCEPTION_CASES)
def test_inception_eval_matches_tf(tensorflow, name, size):
    image = IMAGES[name]
    want = tf_inception_eval(tensorflow, image, size)
    got = _ours(zoo.get_transform("inception", image_size=size), image)
    assert got.shape == want.shape == (size, size, 3)
    assert np.abs(got - want).max() <= INCEPTION_TOL


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_vgg_eval_matches_tf(tensorflow, name):
    image = IMAGES[name]
    want = tf_vgg_eval(tensorflow, image)
    got = _ours(zoo.get_transform("vgg_16"), image)
    assert got.shape == want.shape == (224, 224, 3)
    assert np.abs(got - want).max() <= VGG_TOL


@pytest.mark.tf
def test_model_name_transforms_match_tf(tensorflow):
    image = GENERATED["photo_375x500_landscape"]
    # resnet_v2 is evaluated with inception preprocessing at 299, not slim's factory's vgg 224
    for name, size in (("resnet_v2_50", 299), ("inception_v1", 224), ("nasnet_large", 331)):
        got = _ours(zoo.get_transform(name), image)
        assert np.abs(got - tf_inception_eval(tensorflow, image, size)).max() <= INCEPTION_TOL
    got = _ours(zoo.get_transform("resnet_v1_50"), image)
    assert np.abs(got - tf_vgg_eval(tensorflow, image)).max() <= VGG_TOL


RESIZE_CASES = [
    ((5, 7), (11, 13)),  # up, odd
    ((100, 80), (299, 299)),  # up, aspect change
    ((301, 417), (224, 224)),  # down, odd
    ((17, 23), (5, 4)),  # strong down
    ((1, 1), (3, 2)),
    ((9, 9), (9, 9)),  # identity
    ((480, 640), (256, 341)),
]


@pytest.fixture(scope="module")
def tf_resize(tensorflow):
    return TfResize(tensorflow)


@pytest.mark.tf
@pytest.mark.parametrize(("in_hw", "out_hw"), RESIZE_CASES)
def test_resize_bilinear_legacy_matches_tf(tf_resize, in_hw, out_hw):
    images = np.random.default_rng(7).uniform(0, 255, (2, *in_hw, 3)).astype(np.float32)
    want = tf_resize(images, out_hw)
    got = resize_bilinear_legacy(torch.from_numpy(images).permute(0, 3, 1, 2), out_hw)
    assert np.abs(got.permute(0, 2, 3, 1).numpy() - want).max() <= 1e-4  # 0..255 values


@pytest.mark.tf
@settings(max_examples=40, deadline=None)
@given(
    in_h=st.integers(1, 48),
    in_w=st.integers(1, 48),
    out_h=st.integers(1, 72),
    out_w=st.integers(1, 72),
    seed=st.integers(0, 2**16),
)
def test_resize_bilinear_legacy_matches_tf_any_size(tf_resize, in_h, in_w, out_h, out_w, seed):
    images = np.random.default_rng(seed).uniform(0, 1, (1, in_h, in_w, 3)).astype(np.float32)
    want = tf_resize(images, (out_h, out_w))
    got = resize_bilinear_legacy(torch.from_numpy(images).permute(0, 3, 1, 2), (out_h, out_w))
    assert np.abs(got.permute(0, 2, 3, 1).numpy() - want).max() <= 1e-6


@pytest.mark.tf
@pytest.mark.parametrize("factor", [0.5, 0.9, 1.4])
def test_adjust_saturation_matches_tf(tensorflow, factor):
    # values slightly outside [0, 1], as after slim's brightness jitter
    image = np.random.default_rng(3).uniform(-0.12, 1.12, (6, 7, 3)).astype(np.float32)
    image[0, 0] = 0.5  # a grey pixel
    want = tf_adjust_saturation(tensorflow, image, factor)
    got = adjust_saturation(torch.from_numpy(image).permute(2, 0, 1), factor)
    assert np.abs(got.permute(1, 2, 0).numpy() - want).max() <= 1e-5


# --------------------------------------------------------------------------- slim arithmetic


def test_legacy_resize_has_no_half_pixel_offset():
    # halving samples source pixels 0, 2, 4, ... exactly; half-pixel bilinear would average pairs
    x = torch.arange(2 * 3 * 8 * 10, dtype=torch.float32).reshape(2, 3, 8, 10)
    got = resize_bilinear_legacy(x, (4, 5))
    assert torch.equal(got, x[..., ::2, ::2])
    half_pixel = F.interpolate(x, size=(4, 5), mode="bilinear", align_corners=False)
    assert not torch.allclose(got, half_pixel)


def test_legacy_resize_keeps_uint8_values_and_size():
    x = torch.from_numpy(_noise(13, 9, 8)).permute(2, 0, 1)
    got = resize_bilinear_legacy(x, (13, 9))
    assert got.dtype == torch.float32
    assert torch.equal(got, x.float())


def test_central_fraction_crop_follows_tf_arithmetic():
    # TF: offset = int((h - h * 0.875) / 2) and keeps h - 2 * offset; 0.875 is exact in binary,
    # so the offset is h // 16
    for size in range(1, 2000):
        offset, length = CentralFractionCrop.box(size, 0.875)
        assert (offset, length) == (size // 16, size - 2 * (size // 16))


def test_aspect_preserving_size_gives_the_shorter_side_exactly():
    # the current slim rounds (tf.rint); truncating float32 products could give 255
    for h in range(1, 1200, 7):
        for w in (h, h + 1, 2 * h + 3, max(1, h // 3)):
            new_h, new_w = aspect_preserving_size(h, w, 256)
            assert min(new_h, new_w) == 256
            assert abs(max(new_h, new_w) - 256 * max(h, w) / min(h, w)) <= 0.5 + 1e-3


# --------------------------------------------------------------------------- inputs and outputs


@pytest.mark.parametrize("kind", ["inception", "vgg"])
def test_every_input_type_gives_the_same_result(kind):
    transform = zoo.get_transform(kind, image_size=224)
    image = GENERATED["photo_500x333_portrait"]
    from_pil = transform(Image.fromarray(image))
    assert from_pil.shape == (3, 224, 224) and from_pil.dtype == torch.float32
    chw = torch.from_numpy(image).permute(2, 0, 1)
    assert torch.equal(transform(image), from_pil)
    assert torch.equal(transform(chw), from_pil)
    assert torch.equal(transform(chw[None].expand(2, -1, -1, -1))[1], from_pil)
    # torchvision's ToTensor floats in [0, 1]
    as_float = transform(chw.float() / 255)
    assert torch.allclose(as_float, from_pil, atol=1e-5 if kind == "inception" else 1e-3)


def test_grey_and_rgba_images_become_rgb():
    transform = zoo.get_transform("inception_v1")
    rgb = GENERATED["photo_375x500_landscape"]
    grey = Image.fromarray(rgb).convert("L")
    grey_rgb = np.repeat(np.asarray(grey)[..., None], 3, axis=-1)
    assert torch.equal(transform(grey), transform(grey_rgb))
    assert torch.equal(transform(np.asarray(grey)), transform(grey_rgb))
    rgba = Image.fromarray(rgb).convert("RGBA")
    assert torch.equal(transform(rgba), transform(rgb))


def test_bad_inputs_say_what_was_expected():
    transform = zoo.get_transform("vgg")
    with pytest.raises(ValueError, match="3 channels"):
        transform(np.zeros((10, 10, 4), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        transform(torch.zeros(3, 10, 10, dtype=torch.int32))
    with pytest.raises(TypeError, match="PIL image"):
        transform([[0, 1], [2, 3]])


def test_transforms_pickle_for_dataloader_workers():
    transform = zoo.get_transform("vgg_16")
    image = GENERATED["noise_255x257_odd"]
    assert torch.equal(pickle.loads(pickle.dumps(transform))(image), transform(image))


def test_transform_repr_says_what_it_does():
    text = repr(zoo.get_transform("resnet_v2_101"))
    for part in ("inception", "(3, 299, 299)", "fraction=0.875", "no half-pixel", "(x - 0.5) * 2"):
        assert part in text
    text = repr(zoo.get_transform("vgg_19"))
    for part in ("vgg", "smallest_side=256", "(h - crop) // 2", "123.68"):
        assert part in text


# --------------------------------------------------------------------------- get_transform


@pytest.mark.parametrize(
    ("name", "kind", "size"),
    [
        ("vgg_16", "vgg", 224),
        ("resnet_v1_152", "vgg", 224),
        ("resnet_v2_50", "inception", 299),
        ("inception_v2", "inception", 224),
        ("inception_v4", "inception", 299),
        ("inception_resnet_v2", "inception", 299),
        ("mobilenet_v1", "inception", 224),
        ("mobilenet_v1_0.5_160", "inception", 160),
        ("pnasnet_large", "inception", 331),
        ("nasnet_mobile", "inception", 224),
    ],
)
def test_model_names_pick_slims_recipe_and_size(name, kind, size):
    transform = zoo.get_transform(name)
    assert (transform.kind, transform.image_size) == (kind, (size, size))
    assert zoo.get_transform(name, image_size=(200, 180)).image_size == (200, 180)


def test_unknown_names_and_missing_sizes_are_explained():
    with pytest.raises(zoo.UnknownModelError, match="inception_v3"):
        zoo.get_transform("inception_v33")
    with pytest.raises(ValueError, match="image_size"):
        zoo.get_transform("inception")
    with pytest.raises(ValueError, match="crop must fit"):
        zoo.get_transform("vgg", image_size=300)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(("name", "low", "high"), [("inception_v3", -1, 1), ("vgg_16", -124, 152)])
def test_train_transform_is_random_seeded_and_in_range(name, low, high):
    transform = zoo.get_transform(name, train=True)
    image = Image.fromarray(GENERATED["photo_375x500_landscape"])
    torch.manual_seed(0)
    first = transform(image)
    size = transform.image_size
    assert first.shape == (3, *size) and first.dtype == torch.float32
    assert low <= float(first.min()) and float(first.max()) <= high
    second = transform(image)
    assert not torch.equal(first, second)
    torch.manual_seed(0)
    assert torch.equal(transform(image), first)


def test_vgg_train_resizes_the_shorter_side_within_slims_range():
    resize = RandomAspectPreservingResize(256, 512)
    x = torch.zeros(1, 4, 3)  # portrait: the width is the shorter side
    sides = [resize(x).shape[-2:] for _ in range(30)]
    assert all(256 <= w <= 512 and h == round(w * 4 / 3) for h, w in sides)
    assert len(set(sides)) > 10


def test_color_jitter_without_jitter_is_identity():
    x = torch.rand(3, 8, 9)
    assert torch.allclose(RandomSlimColor(0.0, (1.0, 1.0))(x), x)
