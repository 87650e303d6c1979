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

**Fast by default.** A plain model (no flag) takes the same path wherever autograd cannot
need it: in eval mode under ``torch.no_grad()`` or ``torch.inference_mode()``. There a conv
followed by a batch norm (:class:`~architectures.layers.ConvBnAct`, the pointwise conv of
:class:`~architectures.layers.SeparableConv2dSame`) runs on a packed weight with the batch norm
folded in, computed from the module's own parameters and buffers and cached beside them; the
parameters themselves are never changed, so ``state_dict``, training and gradients are
exactly those of the plain model. The cache is checked at every call against each source
tensor (the object, its storage and its version counter, as above), so an in-place update, an
optimizer step, ``load_state_dict`` or ``.to()`` is seen at the next call. It holds one packed
copy of each conv's (folded) weight, i.e. about the size of the model's conv weights, and is
dropped by ``model.train()``. Two small pieces take a shorter path there too: MobileNet v3's
squeeze-excite gate (two matrix products on the module's own weights, the activations in
place) and ResNet V2's pre-activation batch norm + ReLU (one multiply-add from a scale and
shift cached by the same rules, see :func:`cached_on`). :func:`set_fast_inference` (or
``ZOO_FAST_INFERENCE=0`` in the environment) turns the default off; ``torch.compile`` and
``torch.export`` always trace the plain path (inductor does its own folding and packing).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:
    from .layers import Conv2dSame

__all__ = [
    "RELU",
    "fast_inference_enabled",
    "optimize_for_inference",
    "packed_activation",
    "set_fast_inference",
]

# a weight source: (packed weight, bias) for an input, see Conv2dSame.packed_weights
PackedWeights = tuple[torch.Tensor, "torch.Tensor | None"]
_T = TypeVar("_T")

_FAST_INFERENCE = os.environ.get("ZOO_FAST_INFERENCE", "1").strip().lower() not in (
    "0",
    "false",
    "no",
    "off",
)


def set_fast_inference(enabled: bool) -> None:
    """Turn the fast-by-default inference path (see the module docstring) on or off for
    every model in this process; ``ZOO_FAST_INFERENCE=0`` starts with it off. A model made by
    :func:`optimize_for_inference` runs packed either way."""
    global _FAST_INFERENCE
    _FAST_INFERENCE = bool(enabled)


def fast_inference_enabled() -> bool:
    """Whether plain models take the packed path in eval mode without autograd."""
    return _FAST_INFERENCE


RELU: tuple[str, list[float]] = ("relu", [])

_MKLDNN_BUILT = torch.backends.mkldnn.is_available()  # a property of the build
_mkldnn_enabled = torch._C._get_mkldnn_enabled  # torch.backends.mkldnn.enabled, without the wrapper

# activation module → oneDNN post-op (name, scalars); modules not listed run after the conv
_POST_OPS: dict[type[nn.Module], tuple[str, list[float]]] = {
    nn.Identity: ("none", []),
    nn.ReLU: RELU,
    nn.ReLU6: ("hardtanh", [0.0, 6.0]),
}


class PackedCacheOwner:
    """A module holding a packed weight (``_packed_cache``): a cache, never state. It is not
    pickled or deep-copied, and ``load_state_dict`` (seen even where a weight has no version
    counter) and ``model.train()`` (whose training steps would make it stale; this also frees
    its memory) drop it."""

    _packed_cache: _PackedCache | None = None

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self._packed_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def train(self, mode: bool = True):
        if mode:
            self._packed_cache = None
        return super().train(mode)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state.pop("_packed_cache", None)
        return state


def register_post_op(act_type: type[nn.Module], post_op: tuple[str, list[float]]) -> None:
    """Let the packed convs fuse an activation module of a family's own (e.g. MobileNet v3's
    hard-swish as oneDNN's ``hardswish``): the same function, rounded differently."""
    _POST_OPS[act_type] = post_op


def packed_activation(act: nn.Module) -> tuple[str, list[float]] | None:
    """The oneDNN post-op equal to ``act``, or None if oneDNN cannot fuse it."""
    return _POST_OPS.get(type(act))


def packing_applies(conv: Conv2dSame, x: torch.Tensor) -> bool:
    """Whether ``conv(x)`` may run on the packed weight (see the module docstring)."""
    return (
        packing_enabled(conv, x)
        and x.dim() == 4
        and x.shape[1] == conv.in_channels  # else the plain conv's error names the mismatch
        and not (conv._forward_hooks or conv._forward_pre_hooks)  # hooks see the plain call
    )


def packing_enabled(conv: Conv2dSame, x: torch.Tensor) -> bool:
    """Whether ``conv`` runs packed on inputs like ``x`` (device, dtype, autograd, mode),
    whatever their shape."""
    # Called for every conv of every pass: the cheap and most often deciding tests come first
    # (about 1 µs in all; the Python around a conv matters for the small networks at batch 1).
    if conv.training or not (
        conv.pack_for_inference or (_FAST_INFERENCE and not torch.compiler.is_compiling())
    ):
        return False
    if torch.is_grad_enabled() and _needs_grad(x, conv):
        return False
    return (
        x.is_cpu
        and x.dtype is torch.float32
        and own_tensor(conv, "weight").dtype is torch.float32
        and _MKLDNN_BUILT
        and _mkldnn_enabled()
    )


def _needs_grad(x: torch.Tensor, conv: Conv2dSame) -> bool:
    bias = conv.bias
    return x.requires_grad or conv.weight.requires_grad or (bias is not None and bias.requires_grad)


def packed_conv(
    conv: Conv2dSame,
    x: torch.Tensor,
    padding: tuple[int, int],
    post_op: tuple[str, list[float]],
    weights: PackedWeights,
) -> torch.Tensor:
    """``act(conv(x))`` in one oneDNN call, ``x`` already padded beyond ``padding`` if needed,
    with ``weights`` from :func:`packed_weights` (the conv's own, or folded with a batch norm).

    The output is channels-last (oneDNN's choice for this op, whatever the input's layout).
    """
    name, scalars = post_op
    weight, bias = weights
    return torch.ops.mkldnn._convolution_pointwise(
        x,
        weight,
        bias,
        *_geometry(conv, padding),
        name,
        scalars,
        "",
    )


def _geometry(
    conv: Conv2dSame, padding: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], int]:
    """The conv's padding, stride, dilation and groups, as the oneDNN ops take them."""
    return padding, conv.stride, conv.dilation, conv.groups  # tuples pass as int[]


def packed_conv_add_(
    conv: Conv2dSame,
    x: torch.Tensor,
    padding: tuple[int, int],
    into: torch.Tensor,
    relu: bool,
    weights: PackedWeights,
) -> torch.Tensor:
    """``into += conv(x)`` (then ReLU if ``relu``) in one oneDNN call; returns ``into``.

    A residual unit's sum: oneDNN accumulates the conv result into ``into`` (its "sum" post-op)
    instead of writing a new tensor that a separate add then reads back. The caller guarantees
    that nothing else needs ``into`` any more (:func:`can_accumulate_into` checks the rest).
    """
    weight, bias = weights
    return torch.ops.mkldnn._convolution_pointwise_.binary(
        into,
        x,
        weight,
        bias,
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


def packed_weights(
    owner: nn.Module,
    conv: Conv2dSame,
    sources: Sequence[torch.Tensor | None],
    make: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
    x: torch.Tensor,
) -> PackedWeights:
    """``(packed weight, bias)`` for ``conv`` on input ``x``, cached on ``owner`` and made again
    (``make()`` gives the OIHW weight and the bias) only when a tensor in ``sources`` changed
    (see :func:`cached_on`).

    oneDNN picks the weight layout for an input shape (batch size included); a weight packed
    for another shape still gives the right result but is re-laid out at every call, so a new
    input shape packs again (one copy kept: the last shape's).
    """
    return cached_on(owner, sources, x.shape, lambda: _pack(conv, make, x))


def _pack(
    conv: Conv2dSame,
    make: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
    x: torch.Tensor,
) -> PackedWeights:
    weight, bias = make()
    weight = conv.with_zero_tap(weight, x)  # the same for every input of x's shape
    pad_input, padding = conv.packed_padding(x)
    shape = list(x.shape)  # the shape the oneDNN conv sees: x padded as the conv pads it
    if pad_input is not None:
        left, right, top, bottom = pad_input
        shape[-2:] = shape[-2] + top + bottom, shape[-1] + left + right
    packed = torch.ops.mkldnn._reorder_convolution_weight(
        weight.detach().contiguous(memory_format=torch.channels_last),
        list(padding),
        list(conv.stride),
        list(conv.dilation),
        conv.groups,
        shape,
    )
    return packed, None if bias is None else bias.detach()


def cached_on(
    owner: nn.Module,
    sources: Sequence[torch.Tensor | None],
    key: object,
    make: Callable[[], _T],
) -> _T:
    """``make()`` (run without autograd), cached on ``owner`` (a :class:`PackedCacheOwner`)
    and made again only when ``key`` differs or a tensor in ``sources`` changed.

    Each source is stamped by the object itself (holding it means no new tensor can take its
    place unnoticed), its storage and its version counter. A tensor made under
    torch.inference_mode has no version counter: there the stamp relies on the object and its
    storage, and the owners drop the cache on load_state_dict.
    """
    cached = owner._packed_cache
    if cached is not None:
        held, held_key, present, pointers, versioned, versions, value = cached
        if (
            held_key == key
            and len(held) == len(sources)
            and all(map(operator.is_, held, sources))
            and [t.data_ptr() for t in present] == pointers
            and [t._version for t in versioned] == versions
        ):
            return value
    owner._packed_cache = None  # the old copy goes before the new one is made
    with torch.no_grad():
        value = make()
    present = [t for t in sources if t is not None]
    versioned = [t for t in present if not t.is_inference()]
    owner._packed_cache = _PackedCache(
        tuple(sources),
        key,
        present,
        [t.data_ptr() for t in present],
        versioned,
        [t._version for t in versioned],
        value,
    )
    return value


class _PackedCache(NamedTuple):
    """What :func:`cached_on` keeps: the sources and their stamps (flat lists, so that the
    check at every call is a few list comprehensions), the key, and the value (packed weights,
    or a batch norm's scale and shift)."""

    sources: tuple[torch.Tensor | None, ...]
    key: object  # packed weights: the input shape they were laid out for
    present: list[torch.Tensor]  # the sources that are not None
    pointers: list[int]  # their data_ptr()
    versioned: list[torch.Tensor]  # those with a version counter (not inference tensors)
    versions: list[int]  # their _version
    value: Any


def folded_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of ``bn(conv(x))`` as one conv (batch norm in eval mode), new
    tensors: :func:`architectures.fuse_bn` writes the same into the conv, this leaves both
    modules as they are."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = bn.bias if bn.bias is not None else torch.zeros_like(scale)
    shift = shift - bn.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    return conv.weight * scale.view(-1, 1, 1, 1), shift


def bn_foldable(bn: nn.Module) -> bool:
    """Whether a batch norm after a conv may be folded into its packed weight for this call:
    eval mode with moving statistics and no hook on it (its forward is not called then)."""
    return isinstance(bn, nn.Identity) or (
        isinstance(bn, nn.BatchNorm2d)
        and not bn.training
        and own_tensor(bn, "running_var") is not None
        and not (bn._forward_hooks or bn._forward_pre_hooks)
    )


def own_tensor(module: nn.Module, name: str) -> torch.Tensor | None:
    """``getattr(module, name)`` for a parameter or buffer, read from the module's own dicts.

    ``module.weight`` first fails the ordinary attribute lookup (raising and catching an
    AttributeError inside) before ``nn.Module.__getattr__`` finds it: about 1.5 µs, a dozen
    times per conv and pass on the inference path. Anything else by that name (a
    parametrization's property, a plain attribute) goes through ``getattr`` as before.
    """
    if name in module._parameters:
        return module._parameters[name]
    if name in module._buffers:
        return module._buffers[name]
    return getattr(module, name)


def conv_bn_weights(owner: nn.Module, conv: Conv2dSame, bn: nn.Module, x: torch.Tensor):
    """:func:`packed_weights` of ``bn(conv(x))`` (``bn`` foldable, or an ``nn.Identity``)."""
    if isinstance(bn, nn.Identity):
        return conv.packed_weights(x)
    sources = (
        own_tensor(conv, "weight"),
        own_tensor(conv, "bias"),
        own_tensor(bn, "weight"),
        own_tensor(bn, "bias"),
        own_tensor(bn, "running_mean"),
        own_tensor(bn, "running_var"),
    )
    return packed_weights(owner, conv, sources, lambda: folded_conv_bn(conv, bn), x)


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
