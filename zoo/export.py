"""``zoo.export_tf_checkpoint``: a zoo model's weights back to a TF-slim checkpoint.

Fine-tune in PyTorch, serve or evaluate with TF-slim: the export writes the variables the slim
network creates (names, TF shapes, float32) and ``global_step``, in the V2 bundle format that
``tf.compat.v1.train.Saver`` restores (or a V1 single file), without TensorFlow.

There is one mapping and it runs both ways: :func:`architectures.tf_mapping` says which TF
variable each torch tensor fills and in which :class:`~architectures.Layout`; the export
applies ``Layout.to_tf`` to each tensor. The mapping is taken from a reference model freshly
built by the named architecture's constructor (on the meta device: shapes only, no memory), so
a model is only exported when its state is exactly what that constructor builds: the same
class and TF scope, the same tensors with the same shapes. Anything else (another architecture,
an added or removed parameter, batch norm folded into the convs) is refused with the names.

Values are converted one tensor at a time while the checkpoint is written (any device, any
floating dtype → float32 on the CPU); the model's state is never copied as a whole. The write
is atomic: a failure leaves no checkpoint files behind and keeps an existing one intact.
"""

from __future__ import annotations

import logging
import operator
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import architectures
from architectures import TFTensor, tf_mapping

from .checkpoint import write_v1, write_v2
from .errors import MappingError

__all__ = ["GLOBAL_STEP", "export_tf_checkpoint"]

log = logging.getLogger(__name__)

GLOBAL_STEP = "global_step"  # the step counter every slim training checkpoint holds
_FORMATS = ("v1", "v2")
_V2_FILE = re.compile(r"\.(index|data-\d{5}-of-\d{5})$")
_INT64 = np.iinfo(np.int64)


def export_tf_checkpoint(
    model: nn.Module,
    name_or_arch: str | Callable[..., nn.Module],
    prefix: str | os.PathLike[str],
    *,
    format: str = "v2",
    overwrite: bool = False,
    global_step: int = 0,
    **model_kwargs: Any,
) -> Path:
    """Write ``model``'s weights as the TF-slim checkpoint of the network ``name_or_arch``.

    Args:
        model: a network built by ``name_or_arch`` (``zoo.load``), pretrained, fine-tuned or
            with another class count (``reset_classifier``); any device and floating dtype,
            also inside ``torch.compile`` or ``DataParallel``.
        name_or_arch: the slim network name (see :func:`zoo.list_models`) or its constructor.
        prefix: the checkpoint prefix, e.g. ``"out/model.ckpt"``: V2 writes
            ``<prefix>.index`` and ``<prefix>.data-00000-of-00001``; V1 writes the file
            ``<prefix>`` itself.
        format: ``"v2"`` (what TF has written since 2017) or ``"v1"`` (the single-file
            TensorSlice format of slim's 2016 releases).
        overwrite: replace an existing checkpoint at ``prefix``.
        global_step: the value of the int64 ``global_step`` variable written alongside.
        **model_kwargs: constructor arguments the model was built with that change its
            variables (e.g. ``create_aux_logits=False``, ``depth_multiplier=0.5``); the class
            count is taken from the model's classifier.

    Returns:
        The path to give ``tf.train.load_checkpoint``, ``Saver.restore`` or
        :func:`zoo.open_checkpoint` (the prefix for V2, the file for V1).

    The values are the model's own (after loading with ``use_ema=True`` these are the moving
    averages); no ``ExponentialMovingAverage`` shadows or optimizer slots are written, and
    torch-only state such as ``num_batches_tracked`` is left out.

    Raises:
        zoo.UnknownModelError: ``name_or_arch`` is not a known network.
        zoo.MappingError: the model is not what ``name_or_arch`` builds (the message lists the
            extra, missing and mis-shaped tensors).
        FileExistsError: a checkpoint exists at ``prefix`` and ``overwrite`` is False.
        TypeError / ValueError: a tensor that cannot be stored as float32 (integer, complex or
            meta tensors), a bad ``format``, ``prefix`` or ``global_step``; nothing is written.
    """
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    step = _check_global_step(global_step)
    name, constructor = _architecture(name_or_arch)
    path = _check_prefix(prefix, format)
    model = _unwrap(model)
    mapping = _fitted_mapping(model, name, constructor, **model_kwargs)
    existing = _existing_files(path, format)
    if existing and not overwrite:
        raise FileExistsError(
            f"not overwriting the checkpoint at {path}: "
            + ", ".join(str(p) for p in existing)
            + " exist. Pass overwrite=True to replace it, or choose another prefix."
        )
    values = _TFValues(model, mapping, step)
    writer = write_v2 if format == "v2" else write_v1
    written = writer(path, values, overwrite=overwrite)
    log.info("exported %s as %s: %d tensors to %s", type(model).__name__, name, len(values), path)
    return written


def _fitted_mapping(
    model: nn.Module,
    name: str,
    constructor: Callable[..., nn.Module],
    **model_kwargs: Any,
) -> dict[str, TFTensor]:
    """``{torch name: TFTensor}`` of ``model`` as the network ``name``, after checking that the
    model's state is exactly what ``constructor`` builds (``MappingError`` listing the names)."""
    num_classes = _num_classes(model)
    kwargs = dict(model_kwargs)
    if num_classes is not None:
        kwargs.setdefault("num_classes", num_classes)
    reference = _build_reference(constructor, kwargs)
    ref_mapping = tf_mapping(reference)
    ref_state = _state(reference)
    state = _state(model)
    described = f"{name} ({type(reference).__name__}" + (
        f", {kwargs['num_classes']} classes)" if "num_classes" in kwargs else ")"
    )

    problems = []
    if not isinstance(model, type(reference)):
        problems.append(
            f"the model is a {type(model).__name__}, {name} builds a {type(reference).__name__}"
        )
    scope, ref_scope = getattr(model, "tf_scope", None), getattr(reference, "tf_scope", None)
    if scope != ref_scope:
        problems.append(f"the model's TF scope is {scope!r}, {name}'s is {ref_scope!r}")

    # torch-only state of the reference (num_batches_tracked) is neither required nor exported
    extra = [f"{n} {list(t.shape)}" for n, t in state.items() if n not in ref_state]
    missing_names = [n for n in ref_mapping if n not in state]
    missing = [f"{n}  ({ref_mapping[n].name})" for n in missing_names]
    misshaped = [
        f"{n}: model {list(state[n].shape)}, {name} needs {list(ref_state[n].shape)}"
        f"  ({ref_mapping[n].name})"
        for n in ref_mapping
        if n in state and tuple(state[n].shape) != tuple(ref_state[n].shape)
    ]
    renamed = []
    if not (problems or extra or missing or misshaped):
        # same class, scope and tensors: the model's own mapping must then be the reference's
        # (it differs only if a module was swapped for one with other TF naming rules)
        try:
            own = tf_mapping(model)
        except (TypeError, KeyError, AssertionError) as error:
            own, renamed = {}, [f"the model's TF names cannot be derived: {error}"]
        renamed += [
            f"{n}: model {_describe(own[n]) if n in own else 'nothing'}, "
            f"{name} {_describe(ref_mapping[n])}"
            for n in ref_mapping
            if own and own.get(n) != ref_mapping[n]
        ]

    if problems or extra or missing or misshaped or renamed:
        hints = []
        if _looks_fused(model, reference, missing_names):
            hints.append(
                "The model's batch norm is folded into its convolutions (fuse_bn), which "
                "cannot be undone: export the model as loaded, before fusing."
            )
        hints.append(
            f"Export a model built by zoo.load({name!r}, ...) under the name it was built "
            "with; if it was built with arguments that change its variables "
            "(create_aux_logits=False, depth_multiplier=...), pass the same arguments here."
        )
        raise MappingError(
            f"the model does not fit {described}; nothing was written:"
            + "".join(f"\n  {p}" for p in problems)
            + _list(f"tensors {name} does not have", extra)
            + _list(f"tensors {name} needs that the model lacks", missing)
            + _list("shape mismatches", misshaped)
            + _list("TF names or layouts that differ", renamed)
            + "\n"
            + " ".join(hints)
        )
    return ref_mapping


# --------------------------------------------------------------------------- the values


class _TFValues(Mapping[str, np.ndarray]):
    """The checkpoint's tensors by TF name; each converted from the model when asked for
    (the writer asks one at a time), so no second copy of the whole state exists."""

    def __init__(self, model: nn.Module, mapping: Mapping[str, TFTensor], step: int) -> None:
        state = _state(model)
        self._sources = {t.name: (n, state[n], t) for n, t in mapping.items()}
        self._step = step

    def __getitem__(self, name: str) -> np.ndarray:
        if name == GLOBAL_STEP:
            return np.array(self._step, np.int64)
        torch_name, tensor, target = self._sources[name]
        return _tf_value(torch_name, tensor, target)

    def __iter__(self) -> Iterator[str]:
        yield from self._sources
        yield GLOBAL_STEP

    def __len__(self) -> int:
        return len(self._sources) + 1


def _tf_value(torch_name: str, tensor: torch.Tensor, target: TFTensor) -> np.ndarray:
    """One torch tensor as the float32 TF array of ``target`` (a view where possible)."""
    if tensor.is_meta:
        raise ValueError(
            f"{torch_name} has no data (a meta tensor): load or initialise the model's "
            "weights before exporting it"
        )
    if not tensor.is_floating_point():
        raise TypeError(
            f"{torch_name} is {tensor.dtype}, slim's variable {target.name} is float32: "
            "only floating-point weights can be exported"
        )
    array = tensor.detach().to("cpu", torch.float32).numpy()
    return target.layout.to_tf(array, target.shape)


# --------------------------------------------------------------------------- checks


def _architecture(
    name_or_arch: str | Callable[..., nn.Module],
) -> tuple[str, Callable[..., nn.Module]]:
    if isinstance(name_or_arch, str):
        return name_or_arch, architectures.get_constructor(name_or_arch)
    if callable(name_or_arch):
        return getattr(name_or_arch, "__name__", repr(name_or_arch)), name_or_arch
    raise TypeError(
        f"name_or_arch must be a network name such as 'resnet_v2_50' or its constructor, "
        f"got {type(name_or_arch).__name__}"
    )


def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside ``torch.compile`` and (Distributed)DataParallel wrappers, whose state
    names carry a prefix (``_orig_mod.``, ``module.``)."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _build_reference(constructor: Callable[..., nn.Module], kwargs: dict) -> nn.Module:
    """The network as its constructor builds it: on the meta device (shapes without memory or
    initialisation) unless the constructor computes with its tensors."""
    try:
        with torch.device("meta"):
            return constructor(**kwargs)
    except (NotImplementedError, RuntimeError):
        return constructor(**kwargs)


def _num_classes(model: nn.Module) -> int | None:
    """The class count of the model's classifier (its bias), else ``model.num_classes``."""
    classifier = getattr(model, "classifier_name", None)
    bias = _state(model).get(f"{classifier}.bias") if classifier else None
    if bias is not None and bias.dim() == 1:
        return int(bias.shape[0])
    return getattr(model, "num_classes", None)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = dict(model.named_parameters())
    state.update(model.named_buffers())
    return state


def _looks_fused(model: nn.Module, reference: nn.Module, missing: list[str]) -> bool:
    """Whether a missing batch norm tensor's module was replaced (``fuse_bn`` → Identity)."""
    for torch_name in missing:
        path = torch_name.rpartition(".")[0]
        ref_module = reference.get_submodule(path)
        if not isinstance(ref_module, nn.modules.batchnorm._BatchNorm):
            continue
        try:
            module = model.get_submodule(path)
        except AttributeError:
            continue
        if not isinstance(module, nn.modules.batchnorm._BatchNorm):
            return True
    return False


def _check_global_step(global_step: int) -> int:
    try:
        step = operator.index(global_step)
    except TypeError:
        raise TypeError(f"global_step must be an integer, got {global_step!r}") from None
    if isinstance(global_step, bool) or not _INT64.min <= step <= _INT64.max:
        raise ValueError(f"global_step must be an int64 integer, got {global_step!r}")
    return step


def _check_prefix(prefix: str | os.PathLike[str], format: str) -> Path:
    path = Path(prefix)
    if path.is_dir():
        raise ValueError(
            f"{path} is a directory; the prefix names the checkpoint, e.g. {path / 'model.ckpt'}"
        )
    if format == "v2" and _V2_FILE.search(path.name):
        raise ValueError(
            f"{path} names one file of a V2 checkpoint; pass its prefix "
            f"({_V2_FILE.sub('', path.name)!r}), which names both files"
        )
    return path


def _existing_files(path: Path, format: str) -> list[Path]:
    """The files of a checkpoint already at ``path`` (V2: its index and every data shard)."""
    if format == "v1":
        return [path] if path.exists() else []
    if not path.parent.is_dir():
        return []
    pattern = re.compile(re.escape(path.name) + _V2_FILE.pattern)
    return sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))


def _describe(target: TFTensor) -> str:
    return f"{target.name} {list(target.shape)} ({target.layout.value})"


def _list(title: str, lines: list[str], limit: int = 20) -> str:
    if not lines:
        return ""
    shown = "".join(f"\n    {line}" for line in lines[:limit])
    more = f"\n    ... and {len(lines) - limit} more" if len(lines) > limit else ""
    return f"\n  {title} ({len(lines)}):{shown}{more}"
