"""The one check every network makes of its input: an image batch (N, 3, H, W) of floats.

Without it, a 3-D image, a batch of 0, a uint8 tensor or a numpy array reach the first conv and
fail there with torch internals' messages (or an ``AttributeError``). The check reads only the
tensor's metadata (no synchronisation with a GPU) and is skipped while ``torch.compile`` or
``torch.export`` trace the network, so compiled and exported graphs carry no guard for it.
"""

from __future__ import annotations

import torch

__all__ = ["check_input"]


def check_input(x: object, channels: int = 3) -> None:
    """Raise a one-line ``TypeError``/``ValueError`` unless ``x`` is a float (N, C, H, W) batch."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return
    if not isinstance(x, torch.Tensor):
        hint = " (use torch.from_numpy(x))" if type(x).__module__ == "numpy" else ""
        raise TypeError(
            f"expected a torch.Tensor image batch (N, {channels}, H, W), got "
            f"{type(x).__module__}.{type(x).__qualname__}{hint}"
        )
    if x.dim() != 4:
        hint = " (one image? use x.unsqueeze(0))" if x.dim() == 3 else ""
        raise ValueError(
            f"expected an image batch (N, {channels}, H, W), got a {x.dim()}-D tensor of shape "
            f"{tuple(x.shape)}{hint}"
        )
    if x.shape[1] != channels:
        hint = " (channels last? use x.permute(0, 3, 1, 2))" if x.shape[-1] == channels else ""
        raise ValueError(
            f"expected {channels} channels in dimension 1 (N, {channels}, H, W), got shape "
            f"{tuple(x.shape)}{hint}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"expected a floating-point image batch, got dtype {x.dtype} (convert and scale it: "
            "zoo.transforms, or x.float() / 255 and the model's normalisation)"
        )
    if x.shape[0] == 0:
        raise ValueError(f"expected a non-empty batch, got shape {tuple(x.shape)}")
