"""Inference convs on prepacked oneDNN weights, with the activation fused (CPU, float32).

torch's eager ``conv2d`` on CPU hands oneDNN a plain (OIHW) weight, which oneDNN re-lays out
into its blocked format at *every* call; for a network at batch 1 that reordering costs about
as much as the arithmetic. TensorFlow reorders a constant filter once and keeps it, and fuses
the bias and ReLU into the conv. :func:`optimize_for_inference` gives slimzoo's convs the same:
the batch norms are folded into the conv weights (:func:`~architectures.fuse_bn`), then each
conv keeps a copy of its weight in oneDNN's layout, made at the first call, and runs
conv + bias + activation as one oneDNN primitive (``torch.ops.mkldnn._convolution_pointwise``,
the op inductor's CPU freezing pass uses). The logits are those of the plain model up to float
rounding.

The packed weight is a cache, never state: it is not in ``state_dict``, not pickled or
deep-copied, and it is made again when the conv's weight changes (a new tensor or an in-place
update such as ``load_state_dict``). Two writes go unseen, because they bypass the version
counter: one through ``weight.data``, and an in-place op on a weight created under
``torch.inference_mode`` (such tensors have no version counter; ``load_state_dict`` is still
seen). Call :func:`optimize_for_inference` again after either. Where the fast path
does not apply (training mode, autograd, another device or dtype, hooks on the conv), the conv
runs its ordinary forward, so the model stays correct everywhere and only gets faster where
it can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .layers import Conv2dSame

__all__ = ["RELU", "optimize_for_inference", "packed_activation"]

RELU: tuple[str, list[float]] = ("relu", [])

# activation module → oneDNN post-op (name, scalars); modules not listed run after the conv
_POST_OPS: dict[type[nn.Module], tuple[str, list[float]]] = {
    nn.Identity: ("none", []),
    nn.ReLU: RELU,
    nn.ReLU6: ("hardtanh", [0.0, 6.0]),
}


def packed_activation(act: nn.Module) -> tuple[str, list[float]] | None:
    """The oneDNN post-op equal to ``act``, or None if oneDNN cannot fuse it."""
    return _POST_OPS.get(type(act))


def packing_applies(conv: Conv2dSame, x: torch.Tensor) -> bool:
    """Whether ``conv(x)`` may run on the packed weight (see the module docstring)."""
    return (
        conv.pack_for_inference
        and not conv.training
        and x.device.type == "cpu"
        and x.dtype == conv.weight.dtype == torch.float32
        and x.dim() == 4
        and x.shape[1] == conv.in_channels  # else the plain conv's error names the mismatch
        and not (torch.is_grad_enabled() and _needs_grad(x, conv))
        and not (conv._forward_hooks or conv._forward_pre_hooks)  # hooks see the plain call
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )


def _needs_grad(x: torch.Tensor, conv: Conv2dSame) -> bool:
    bias = conv.bias
    return x.requires_grad or conv.weight.requires_grad or (bias is not None and bias.requires_grad)


def packed_conv(
    conv: Conv2dSame,
    x: torch.Tensor,
    padding: tuple[int, int],
    post_op: tuple[str, list[float]] = ("none", []),
) -> torch.Tensor:
    """``act(conv(x))`` in one oneDNN call, ``x`` already padded beyond ``padding`` if needed.

    The output is channels-last (oneDNN's choice for this op, whatever the input's layout).
    """
    name, scalars = post_op
    return torch.ops.mkldnn._convolution_pointwise(
        x,
        _packed_weight(conv, x),
        conv.bias,
        *_geometry(conv, padding),
        name,
        scalars,
        "",
    )


def _geometry(
    conv: Conv2dSame, padding: tuple[int, int]
) -> tuple[list[int], list[int], list[int], int]:
    """The conv's padding, stride, dilation and groups, as the oneDNN ops take them."""
    return list(padding), list(conv.stride), list(conv.dilation), conv.groups


def packed_conv_add_(
    conv: Conv2dSame,
    x: torch.Tensor,
    padding: tuple[int, int],
    into: torch.Tensor,
    relu: bool,
) -> torch.Tensor:
    """``into += conv(x)`` (then ReLU if ``relu``) in one oneDNN call; returns ``into``.

    A residual unit's sum: oneDNN accumulates the conv result into ``into`` (its "sum" post-op)
    instead of writing a new tensor that a separate add then reads back. The caller guarantees
    that nothing else needs ``into`` any more (:func:`can_accumulate_into` checks the rest).
    """
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        into,
        x,
        _packed_weight(conv, x),
        conv.bias,
        *_geometry(conv, padding),
        "add",
        1.0,
        "relu" if relu else None,  # the only activations oneDNN takes after the sum
        [],
        "",
    )


def can_accumulate_into(conv: Conv2dSame, x: torch.Tensor, into: torch.Tensor) -> bool:
    """Whether ``conv(x)``, on the packed path, may be summed into ``into`` in place: same
    shape as the conv's output, dtype and device, dense memory, nothing for autograd."""
    n, _, h, w = x.shape
    out_hw = (
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, p, d, k, s in zip(
            (h, w), conv.padding, conv.dilation, conv.kernel_size, conv.stride
        )
    )
    return (
        into.shape == (n, conv.out_channels, *out_hw)
        and into.dtype == x.dtype
        and into.device == x.device
        and (into.is_contiguous(memory_format=torch.channels_last) or into.is_contiguous())
        and not (torch.is_grad_enabled() and into.requires_grad)
    )


def _packed_weight(conv: Conv2dSame, x: torch.Tensor) -> torch.Tensor:
    weight = conv.weight
    # the weight object, its storage and its version counter together tell any change apart
    # (holding the object itself means no new weight can take its place unnoticed). oneDNN
    # picks the weight layout for an input shape (batch size included); a weight packed for
    # another shape still gives the right result but is re-laid out at every call, so a new
    # input shape packs again (one copy kept: the last shape's).
    # A tensor made under torch.inference_mode has no version counter: there the stamp relies
    # on the object and its storage, and Conv2dSame drops the cache on load_state_dict.
    version = None if weight.is_inference() else weight._version
    stamp = (weight.data_ptr(), version, tuple(x.shape))
    cached = conv._packed_cache
    if cached is not None and cached[0] is weight and cached[1] == stamp:
        return cached[2]
    with torch.no_grad():
        packed = torch.ops.mkldnn._reorder_convolution_weight(
            weight.detach().contiguous(memory_format=torch.channels_last),
            list(conv.padding),
            list(conv.stride),
            list(conv.dilation),
            conv.groups,
            list(x.shape),
        )
    conv._packed_cache = (weight, stamp, packed)
    return packed


def optimize_for_inference(model: nn.Module) -> nn.Module:
    """Make ``model`` (in place) as fast as slimzoo can run it for CPU inference; returns it.

    * batch norms are folded into the convs (:func:`architectures.fuse_bn`, same caveats:
      the parameters no longer match the TF names);
    * the model is put in eval mode and its parameters stop requiring grad (as
      ``torch.jit.freeze`` does), so a plain ``model(x)`` takes the fast path;
    * every conv runs on a prepacked oneDNN weight with its bias and ReLU/ReLU6 fused (see
      the module docstring). This keeps one extra copy of the conv weights in memory;
    * a ResNet unit's residual add (and V1's ReLU after it) happens inside its last conv
      (:class:`~architectures._resnet_utils.ResNetBlock`).

    On other devices or dtypes the model runs as after ``fuse_bn`` alone.
    """
    from ._fuse import fuse_bn
    from .layers import Conv2dSame

    fuse_bn(model)
    model.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, Conv2dSame):
            module.pack_for_inference = True
            module._packed_cache = None  # packed again at the next call
    return model
