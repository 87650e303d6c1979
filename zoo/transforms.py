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

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._model_facts import model_facts
from .errors import UnknownModelError
from .registry import Preprocessing

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

VGG_MEANS = (123.68, 116.78, 103.94)  # slim's _R_MEAN, _G_MEAN, _B_MEAN (0..255 scale)
VGG_RESIZE_SIDE = 256  # vgg_preprocessing._RESIZE_SIDE_MIN, the eval resize side
VGG_TRAIN_RESIZE_SIDES = (256, 512)  # _RESIZE_SIDE_MIN, _RESIZE_SIDE_MAX (both included)
INCEPTION_CROP_FRACTION = 0.875  # preprocess_for_eval's central_fraction

Size = int | tuple[int, int]


def _torchvision_transforms() -> Any:
    """``torchvision.transforms``, imported on first use: importing torchvision takes about as
    long as importing torch, and only the training recipes need it."""
    from torchvision import transforms

    return transforms


def image_hw(size: int | tuple[int, ...]) -> tuple[int, int]:
    """``(height, width)`` from an int, ``(h, w)`` or timm-style ``(channels, h, w)``."""
    if isinstance(size, numbers.Integral):
        return int(size), int(size)
    dims = tuple(int(s) for s in size)
    if len(dims) in (2, 3):
        return dims[-2], dims[-1]
    raise ValueError(f"image size must be an int, (h, w) or (c, h, w); got {size!r}")


# --------------------------------------------------------------------------- the legacy resize


def _legacy_taps(in_size: int, out_size: int, device: torch.device) -> tuple[Tensor, ...]:
    """Source rows (or columns) and weights of TF's legacy bilinear sampling along one axis.

    TF computes, in float32: ``scale = in / out``; ``src = i * scale``; lower tap
    ``floor(src)``, upper tap ``min(ceil(src), in - 1)``, weight of the upper tap
    ``src - floor(src)``. The float32 arithmetic is kept so the taps match TF exactly.
    """
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale
    floor = torch.floor(src)
    lower = floor.long().clamp(0, in_size - 1)
    upper = torch.ceil(src).long().clamp(max=in_size - 1)
    return lower.to(device), upper.to(device), (src - floor).to(device)


def resize_bilinear_legacy(images: Tensor, size: Size) -> Tensor:
    """TF1's ``resize_bilinear(images, size, align_corners=False)`` on ``(..., H, W)`` tensors.

    This is the pre-``half_pixel_centers`` TensorFlow sampling that slim's preprocessing uses:
    output pixel ``(i, j)`` interpolates the input at ``(i * H / out_h, j * W / out_w)``, with
    the last row/column repeated past the edge. It differs from ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` (half-pixel centres) by up to a pixel shift.

    Integer inputs are converted to float32 first (as TF does); the result is float32 (or the
    input's float dtype). Rows are interpolated along the width first, then blended vertically,
    the same order of operations as TF's kernel, so float32 results agree bit for bit.
    """
    out_h, out_w = image_hw(size)
    if images.dim() < 2 or min(images.shape[-2:]) < 1 or out_h < 1 or out_w < 1:
        raise ValueError(
            f"resize_bilinear_legacy needs a (..., H, W) tensor with H, W >= 1 and a positive "
            f"size; got shape {tuple(images.shape)} and size {(out_h, out_w)}"
        )
    dtype = images.dtype if images.is_floating_point() else torch.float32
    y0, y1, wy = _legacy_taps(images.shape[-2], out_h, images.device)
    x0, x1, wx = _legacy_taps(images.shape[-1], out_w, images.device)
    wx, wy = wx.to(dtype), wy.to(dtype)

    def along_width(rows: Tensor) -> Tensor:
        # gather before converting: a large uint8 image is never converted whole
        left = rows.index_select(-1, x0).to(dtype)
        right = rows.index_select(-1, x1).to(dtype)
        return left + (right - left) * wx

    top = along_width(images.index_select(-2, y0))
    bottom = along_width(images.index_select(-2, y1))
    return top + (bottom - top) * wy[:, None]


class ResizeBilinearLegacy(nn.Module):
    """:func:`resize_bilinear_legacy` to a fixed ``size`` (TF1 ``resize_bilinear``)."""

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.size = image_hw(size)

    def forward(self, images: Tensor) -> Tensor:
        return resize_bilinear_legacy(images, self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, sampling='TF1 align_corners=False (no half-pixel offset)'"


# --------------------------------------------------------------------------- input conversion


def _to_channels_first(image: Any) -> Tensor:
    """A CHW (or NCHW) tensor of the image's own dtype from PIL, numpy HWC/NHWC or a tensor."""
    if type(image).__module__.startswith("PIL."):
        # slim decodes with channels=3: grey, palette and RGBA images become RGB
        image = np.array(image if image.mode == "RGB" else image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3, 4):
            raise ValueError(
                f"expected an HW, HWC or NHWC image array, got shape {image.shape}; "
                "numpy images are channels-last"
            )
        array = image[..., None] if image.ndim == 2 else image
        # torch needs a writable array: copy read-only or strided ones
        tensor = torch.from_numpy(np.require(array, requirements=["C", "W"])).movedim(-1, -3)
    elif isinstance(image, Tensor):
        if image.dim() not in (2, 3, 4):
            raise ValueError(
                f"expected an HW, CHW or NCHW image tensor, got shape {tuple(image.shape)}; "
                "tensors are channels-first (torchvision's layout)"
            )
        tensor = image[None] if image.dim() == 2 else image
    else:
        raise TypeError(
            f"expected a PIL image, a numpy array or a torch tensor, got {type(image).__name__}"
        )
    channels = tensor.shape[-3]
    if channels == 1:
        tensor = tensor.expand(*tensor.shape[:-3], 3, *tensor.shape[-2:])
    elif channels != 3:
        raise ValueError(
            f"expected an RGB image (3 channels, or 1 for grey), got {channels} channels in "
            f"shape {tuple(tensor.shape)}; drop alpha first (PIL: image.convert('RGB'))"
        )
    return tensor


class ToFloatImage(nn.Module):
    """Any supported image → float32 CHW tensor in [0, 1] (``unit``) or 0..255 (``byte``).

    ``unit`` is ``tf.image.convert_image_dtype(uint8 → float32)``: ``x * float32(1/255)``
    (a multiplication by the rounded reciprocal, not a division, as TF does). ``byte`` is slim's
    vgg ``tf.to_float``. uint8 inputs are scaled so; float inputs are taken as [0, 1].
    """

    def __init__(self, value_range: str) -> None:
        super().__init__()
        if value_range not in ("unit", "byte"):
            raise ValueError(f"value_range must be 'unit' or 'byte', got {value_range!r}")
        self.value_range = value_range

    def forward(self, image: Any) -> Tensor:
        tensor = _to_channels_first(image)
        if tensor.dtype == torch.uint8:
            x = tensor.to(torch.float32)
            if self.value_range == "unit":
                x = x * torch.tensor(1.0 / 255.0, dtype=torch.float32)
        elif tensor.is_floating_point():
            x = tensor.to(torch.float32)
            if self.value_range == "byte":
                x = x * 255.0
        else:
            raise TypeError(
                f"expected a uint8 image or a float image in [0, 1], got dtype {tensor.dtype}"
            )
        return x.contiguous()

    def extra_repr(self) -> str:
        scale = "x / 255 in [0, 1]" if self.value_range == "unit" else "0..255"
        return f"uint8 -> float32 {scale}"


# --------------------------------------------------------------------------- eval steps


class CentralFractionCrop(nn.Module):
    """``tf.image.central_crop(image, fraction)`` with TF's integer arithmetic.

    TF computes the offset as ``int((h - h * fraction) / 2)`` in float64 and keeps
    ``h - 2 * offset`` rows (so the kept size rounds up, and the crop stays centred). For
    0.875 that is ``offset = h // 16``.
    """

    def __init__(self, fraction: float) -> None:
        super().__init__()
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"central crop fraction must be in (0, 1], got {fraction}")
        self.fraction = float(fraction)

    @staticmethod
    def box(size: int, fraction: float) -> tuple[int, int]:
        """``(offset, length)`` of the central crop along an axis of ``size`` pixels."""
        offset = int((float(size) - float(size) * fraction) / 2)
        return offset, size - 2 * offset

    def forward(self, image: Tensor) -> Tensor:
        if self.fraction == 1.0:
            return image
        top, height = self.box(image.shape[-2], self.fraction)
        left, width = self.box(image.shape[-1], self.fraction)
        return image[..., top : top + height, left : left + width]

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}"


class CentralCrop(nn.Module):
    """slim vgg ``_central_crop``: a fixed-size crop at offsets ``(h - crop_h) // 2``.

    Unlike torchvision's ``CenterCrop`` (which rounds the offset), the offset is truncated, so
    for an odd margin the extra pixel stays at the bottom/right as in slim.
    """

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.size = image_hw(size)

    def forward(self, image: Tensor) -> Tensor:
        (h, w), (ch, cw) = image.shape[-2:], self.size
        if h < ch or w < cw:
            raise ValueError(f"crop {self.size} is larger than the image ({h}, {w})")
        top, left = (h - ch) // 2, (w - cw) // 2
        return image[..., top : top + ch, left : left + cw]

    def extra_repr(self) -> str:
        return f"size={self.size}, offsets=(h - crop) // 2"


def aspect_preserving_size(height: int, width: int, smallest_side: int) -> tuple[int, int]:
    """slim vgg ``_smallest_size_at_least``: the size whose shorter side is ``smallest_side``.

    Follows the current slim (``tf.rint`` of the float32 product; the 2016 version truncated,
    which could give 255 instead of 256): ``scale = side / shorter`` and ``rint(h * scale)``,
    ``rint(w * scale)``, all in float32, ``rint`` rounding half to even.
    """
    h, w, side = np.float32(height), np.float32(width), np.float32(smallest_side)
    scale = side / w if h > w else side / h
    return int(np.rint(h * scale)), int(np.rint(w * scale))


class AspectPreservingResize(nn.Module):
    """slim vgg ``_aspect_preserving_resize``: shorter side to ``smallest_side`` (TF1 bilinear)."""

    def __init__(self, smallest_side: int) -> None:
        super().__init__()
        self.smallest_side = int(smallest_side)

    def forward(self, image: Tensor) -> Tensor:
        size = aspect_preserving_size(image.shape[-2], image.shape[-1], self.smallest_side)
        return resize_bilinear_legacy(image, size)

    def extra_repr(self) -> str:
        return f"smallest_side={self.smallest_side}, sampling='TF1 resize_bilinear'"


class InceptionScaling(nn.Module):
    """slim inception's last step: ``(x - 0.5) * 2``, [0, 1] → [-1, 1]."""

    def forward(self, image: Tensor) -> Tensor:
        return (image - 0.5) * 2.0

    def extra_repr(self) -> str:
        return "(x - 0.5) * 2"


class SubtractMean(nn.Module):
    """slim vgg ``_mean_image_subtraction``: per-channel RGB means, no scaling."""

    def __init__(self, means: Sequence[float] = VGG_MEANS) -> None:
        super().__init__()
        self.means = tuple(float(m) for m in means)
        self.register_buffer(
            "mean", torch.tensor(self.means, dtype=torch.float32)[:, None, None], persistent=False
        )

    def forward(self, image: Tensor) -> Tensor:
        return image - self.mean.to(image.device)

    def extra_repr(self) -> str:
        return f"means={self.means}"


# --------------------------------------------------------------------------- train steps


class RandomDistortedCrop(nn.Module):
    """A random crop resized to ``size``: slim inception's distorted bounding box crop.

    slim samples ``tf.image.sample_distorted_bounding_box`` around the whole image with
    ``min_object_covered=0.1``, ``aspect_ratio_range=(0.75, 1.33)``, ``area_range=(0.05, 1)``;
    covering 10 % of the whole image means the crop keeps 10-100 % of its area. The crop box is
    drawn as torchvision's ``RandomResizedCrop`` does (area uniform, ratio log-uniform; after 10
    failed attempts the central crop of the whole image within the ratio range, where TF tries
    100 times and then keeps the whole image), then resized with slim's TF1 bilinear kernel.
    """

    def __init__(
        self,
        size: Size,
        area: tuple[float, float] = (0.1, 1.0),
        ratio: tuple[float, float] = (0.75, 1.33),
    ) -> None:
        super().__init__()
        self.size = image_hw(size)
        self.area, self.ratio = tuple(area), tuple(ratio)

    def forward(self, image: Tensor) -> Tensor:
        crop = _torchvision_transforms().RandomResizedCrop
        top, left, h, w = crop.get_params(image, list(self.area), list(self.ratio))
        return resize_bilinear_legacy(image[..., top : top + h, left : left + w], self.size)

    def extra_repr(self) -> str:
        return f"size={self.size}, area={self.area}, ratio={self.ratio}"


def adjust_saturation(image: Tensor, factor: float | Tensor) -> Tensor:
    """``tf.image.adjust_saturation``: scale the HSV saturation of RGB ``(..., 3, H, W)``.

    With hue and value fixed, scaling S maps each channel ``c`` to ``v - (v - c) * k`` where
    ``v`` is the pixel's max channel and ``k = factor``, capped at ``v / (v - min)`` where the
    new saturation would pass 1 (TF clips S to [0, 1]). Grey pixels stay unchanged, and pixels
    with ``v <= 0`` become ``(v, v, v)`` (TF gives them saturation 0). Unlike torchvision's
    ``adjust_saturation`` (a blend with the luma image), hue and value are kept.
    """
    value = image.amax(dim=-3, keepdim=True)
    spread = value - image.amin(dim=-3, keepdim=True)
    cap = torch.where(value > 0, value / spread.clamp(min=1e-12), torch.zeros_like(value))
    k = torch.minimum(torch.as_tensor(factor).to(image), cap)
    return value - (value - image) * k


class RandomSlimColor(nn.Module):
    """slim inception's ``distort_color(fast_mode=True)`` on a [0, 1] image.

    Adds a brightness delta drawn uniformly from ``±brightness``, then scales the HSV
    saturation by a factor from ``saturation`` (clipped at 1, hue and value kept, as
    ``tf.image.adjust_saturation`` does), then clips to [0, 1].
    """

    def __init__(
        self, brightness: float = 32.0 / 255.0, saturation: tuple[float, float] = (0.5, 1.5)
    ) -> None:
        super().__init__()
        self.brightness, self.saturation = float(brightness), tuple(saturation)

    def forward(self, image: Tensor) -> Tensor:
        delta = (torch.rand(()) * 2.0 - 1.0) * self.brightness
        low, high = self.saturation
        factor = low + torch.rand(()) * (high - low)
        return adjust_saturation(image + delta.to(image), factor).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"brightness=±{self.brightness:.4f}, saturation={self.saturation}"


class RandomAspectPreservingResize(nn.Module):
    """slim vgg training: shorter side drawn uniformly from ``[min_side, max_side]``."""

    def __init__(self, min_side: int, max_side: int) -> None:
        super().__init__()
        self.min_side, self.max_side = int(min_side), int(max_side)

    def forward(self, image: Tensor) -> Tensor:
        side = int(torch.randint(self.min_side, self.max_side + 1, ()))
        size = aspect_preserving_size(image.shape[-2], image.shape[-1], side)
        return resize_bilinear_legacy(image, size)

    def extra_repr(self) -> str:
        return f"smallest_side in [{self.min_side}, {self.max_side}], sampling='TF1 bilinear'"


# --------------------------------------------------------------------------- the recipes


class SlimTransform(nn.Sequential):
    """A slim preprocessing recipe: an ``nn.Sequential`` of the steps above.

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
