"""What the transform modules share: slim's constants, the size type, torchvision on demand."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = [
    "INCEPTION_CROP_FRACTION",
    "VGG_MEANS",
    "VGG_RESIZE_SIDE",
    "VGG_TRAIN_RESIZE_SIDES",
    "Size",
    "image_hw",
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
