"""The deterministic steps of slim's evaluation recipes: input conversion, crops, the
aspect-preserving resize, scaling and mean subtraction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._common import VGG_MEANS, Size, image_hw
from ._resize import resize_bilinear_legacy

__all__ = [
    "AspectPreservingResize",
    "CentralCrop",
    "CentralFractionCrop",
    "InceptionScaling",
    "SubtractMean",
    "ToFloatImage",
    "aspect_preserving_size",
]


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
