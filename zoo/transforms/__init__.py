"""slim's ImageNet preprocessing as torchvision-compatible transforms: :func:`get_transform`.

The published checkpoints were evaluated with one of two recipes from
``tensorflow/models research/slim/preprocessing``; reproducing them exactly matters, because
the networks are sensitive to crop, resize kernel and value range:

* ``inception`` (``inception_preprocessing.preprocess_for_eval``; inception, mobilenet, nasnet,
  pnasnet **and resnet_v2**): uint8 → float in [0, 1] (``tf.image.convert_image_dtype``, i.e.
  ``x * float32(1/255)``), ``tf.image.central_crop(image, 0.875)``, ``resize_bilinear`` to the
  model size, then ``(x - 0.5) * 2`` → [-1, 1].
* ``vgg`` (``vgg_preprocessing.preprocess_for_eval``; vgg and resnet_v1): the uint8 image's
  shorter side is resized to 256 (aspect preserved), the central 224×224 is cut out, and the RGB
  means 123.68/116.78/103.94 are subtracted. Values stay on the 0..255 scale (no division).

Both resize with TF1's ``tf.image.resize_bilinear(align_corners=False)``, which predates
``half_pixel_centers``: output pixel ``i`` samples the source at ``i * in_size / out_size``
(no half-pixel offset, no antialiasing). Neither torch's ``F.interpolate`` nor PIL implements
that sampling grid, so :func:`resize_bilinear_legacy` does; it matches TensorFlow's kernel bit
for bit (same float32 coordinates, same interpolation order).

Each transform takes a PIL image, an HWC (or HW, NHWC) uint8 numpy array, or a CHW (or HW,
NCHW) uint8 tensor, and returns float32 CHW (NCHW for a batch). Float inputs are read as
[0, 1] images (torchvision's ``ToTensor`` convention, also TF's for float images). Decoding
the file is not part of the recipe: PIL's JPEG decoder and TF's may differ by a few levels.

``train=True`` gives slim's training augmentation with the same distributions, drawn from
torch's random generator (so ``torch.manual_seed`` and DataLoader worker seeding apply); it does
not replay TensorFlow's random stream. See :func:`inception_train` and :func:`vgg_train`.
"""

from __future__ import annotations

from torch import nn

from .._model_facts import model_facts
from ..errors import UnknownModelError
from ..registry import Preprocessing
from ._augment import (
    RandomAspectPreservingResize,
    RandomDistortedCrop,
    RandomSlimColor,
    adjust_saturation,
)
from ._common import (
    INCEPTION_CROP_FRACTION,
    VGG_MEANS,
    VGG_RESIZE_SIDE,
    VGG_TRAIN_RESIZE_SIDES,
    Size,
    _torchvision_transforms,
    image_hw,
)
from ._resize import ResizeBilinearLegacy, resize_bilinear_legacy
from ._steps import (
    AspectPreservingResize,
    CentralCrop,
    CentralFractionCrop,
    InceptionScaling,
    SubtractMean,
    ToFloatImage,
    aspect_preserving_size,
)

__all__ = [
    "VGG_MEANS",
    "AspectPreservingResize",
    "CentralCrop",
    "CentralFractionCrop",
    "InceptionScaling",
    "RandomAspectPreservingResize",
    "RandomDistortedCrop",
    "RandomSlimColor",
    "ResizeBilinearLegacy",
    "SlimTransform",
    "SubtractMean",
    "ToFloatImage",
    "adjust_saturation",
    "aspect_preserving_size",
    "get_transform",
    "inception_eval",
    "inception_train",
    "resize_bilinear_legacy",
    "vgg_eval",
    "vgg_train",
]


class SlimTransform(nn.Sequential):
    """A slim preprocessing recipe: an ``nn.Sequential`` of the steps this package defines.

    Call it on a PIL image, an HWC uint8 array or a CHW uint8 tensor (or a batch of equal-size
    images as NCHW / NHWC); it returns float32 ``(3, H, W)`` (or ``(N, 3, H, W)``). In training
    mode a batch shares one random draw; apply it per image (a dataset ``transform``) otherwise.
    """

    def __init__(self, kind: str, train: bool, image_size: Size, *steps: nn.Module) -> None:
        super().__init__(*steps)
        self.kind, self.train_mode, self.image_size = kind, bool(train), image_hw(image_size)

    def extra_repr(self) -> str:
        stage = "train (random augmentation)" if self.train_mode else "eval (deterministic)"
        h, w = self.image_size
        return f"kind={self.kind!r}, {stage}, output=(3, {h}, {w})"


def inception_eval(
    image_size: Size, crop_fraction: float = INCEPTION_CROP_FRACTION
) -> SlimTransform:
    """slim ``inception_preprocessing.preprocess_for_eval`` at ``image_size``."""
    return SlimTransform(
        "inception",
        False,
        image_size,
        ToFloatImage("unit"),
        CentralFractionCrop(crop_fraction),
        ResizeBilinearLegacy(image_size),
        InceptionScaling(),
    )


def inception_train(image_size: Size) -> SlimTransform:
    """slim ``inception_preprocessing.preprocess_for_train`` (fast_mode, no boxes), in torch.

    Distorted bounding box crop (see :class:`RandomDistortedCrop`), bilinear resize, random
    horizontal flip, brightness and saturation jitter, then ``(x - 0.5) * 2``.
    """
    tv = _torchvision_transforms()
    return SlimTransform(
        "inception",
        True,
        image_size,
        ToFloatImage("unit"),
        RandomDistortedCrop(image_size),
        tv.RandomHorizontalFlip(),
        RandomSlimColor(),
        InceptionScaling(),
    )


def _check_vgg_crop(image_size: Size, resize_side: int) -> None:
    if max(image_hw(image_size)) > resize_side:
        raise ValueError(
            f"vgg preprocessing resizes the shorter side to {resize_side} and then crops "
            f"{image_hw(image_size)}: the crop must fit; use an image_size <= {resize_side}"
        )


def vgg_eval(image_size: Size = 224, resize_side: int = VGG_RESIZE_SIDE) -> SlimTransform:
    """slim ``vgg_preprocessing.preprocess_for_eval``: resize to 256, crop 224, minus means."""
    _check_vgg_crop(image_size, resize_side)
    return SlimTransform(
        "vgg",
        False,
        image_size,
        ToFloatImage("byte"),
        AspectPreservingResize(resize_side),
        CentralCrop(image_size),
        SubtractMean(VGG_MEANS),
    )


def vgg_train(
    image_size: Size = 224, resize_sides: tuple[int, int] = VGG_TRAIN_RESIZE_SIDES
) -> SlimTransform:
    """slim ``vgg_preprocessing.preprocess_for_train``: the same distributions, torch's RNG.

    Shorter side uniform in [256, 512], random crop, random horizontal flip, minus means.
    """
    _check_vgg_crop(image_size, resize_sides[0])
    tv = _torchvision_transforms()
    return SlimTransform(
        "vgg",
        True,
        image_size,
        ToFloatImage("byte"),
        RandomAspectPreservingResize(*resize_sides),
        tv.RandomCrop(image_hw(image_size)),
        tv.RandomHorizontalFlip(),
        SubtractMean(VGG_MEANS),
    )


_KINDS = ("inception", "vgg")


def get_transform(
    name_or_kind: str, train: bool = False, *, image_size: Size | None = None
) -> SlimTransform:
    """slim's preprocessing for a model name or a recipe (``"inception"``, ``"vgg"``).

    Args:
        name_or_kind: a slim model name (its recipe, eval size and crop fraction are looked up;
            e.g. resnet_v2 uses inception preprocessing at 299) or ``"inception"`` / ``"vgg"``.
        train: slim's random training augmentation instead of the deterministic eval recipe.
        image_size: output size, int or ``(h, w)``; default: the model's eval size (224 for
            ``"vgg"``; required for ``"inception"``, which slim uses at 224, 299 and 331).

    Returns:
        A callable ``nn.Module`` mapping a PIL image / uint8 array / uint8 tensor to a float32
        ``(3, H, W)`` tensor, usable as a torchvision dataset ``transform``.

    >>> transform = get_transform("inception_v3")
    >>> transform(torch.zeros(3, 400, 500, dtype=torch.uint8)).shape
    torch.Size([3, 299, 299])
    """
    crop_fraction = INCEPTION_CROP_FRACTION
    if name_or_kind in _KINDS:
        kind = name_or_kind
        if image_size is None and kind == "inception":
            raise ValueError(
                "get_transform('inception') needs image_size=...: slim uses it at 224 "
                "(inception_v1/v2, mobilenet), 299 (inception_v3/v4, inception_resnet_v2, "
                "resnet_v2) and 331 (nasnet/pnasnet large); or pass the model name instead"
            )
        size = image_size if image_size is not None else 224
    else:
        preprocessing = _registered_preprocessing(name_or_kind)
        kind = preprocessing.kind
        size = image_size if image_size is not None else preprocessing.input_size
        crop_fraction = preprocessing.crop_fraction
    if kind == "inception":
        return inception_train(size) if train else inception_eval(size, crop_fraction)
    return vgg_train(size) if train else vgg_eval(size)


def _registered_preprocessing(name: str) -> Preprocessing:
    """The evaluation preprocessing of model ``name`` from the weights registry."""
    hint = "Or pass 'inception' or 'vgg' (with image_size=...) to choose a recipe directly."
    try:
        info = model_facts(name)
    except UnknownModelError as exc:
        raise UnknownModelError(f"{exc} {hint}") from None
    if info.preprocessing is None:
        raise UnknownModelError(
            f"the weights registry has no preprocessing for {name!r} (its entry's "
            f"'preprocessing' is null). {hint}"
        )
    return info.preprocessing
