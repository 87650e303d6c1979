"""The random steps of slim's training recipes, drawn from torch's generator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import Size, _torchvision_transforms, image_hw
from ._resize import resize_bilinear_legacy
from ._steps import aspect_preserving_size

__all__ = [
    "RandomAspectPreservingResize",
    "RandomDistortedCrop",
    "RandomSlimColor",
    "adjust_saturation",
]


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
