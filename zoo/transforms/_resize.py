"""TF1's legacy ``resize_bilinear`` (``align_corners=False``, no half-pixel offset), bit for bit."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._common import Size, image_hw

__all__ = ["ResizeBilinearLegacy", "resize_bilinear_legacy"]


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
