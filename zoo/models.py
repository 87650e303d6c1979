"""``zoo.list_models`` and ``zoo.load``: build a network and fill it from a TF checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Union

import numpy as np
import torch
from torch import nn

import architectures
from architectures._fuse import fuse_bn as fold_batch_norms
from architectures._tf import checkpoint_num_classes, load_tf_weights

from .errors import MappingError, UnknownModelError
from .hub import ProgressCallback

__all__ = ["CheckpointLike", "list_models", "load", "load_checkpoint_into"]

log = logging.getLogger(__name__)

# A TF checkpoint path (anything zoo.open_checkpoint accepts) or {tf_variable_name: array}.
CheckpointLike = Union[str, "os.PathLike[str]", Mapping[str, np.ndarray]]


def list_models(pattern: str = "*") -> list[str]:
    """Names of the available networks matching the glob ``pattern`` (e.g. ``"resnet_v2_*"``)."""
    return architectures.list_architectures(pattern)


def load(
    name: str,
    *,
    pretrained: bool = False,
    checkpoint: CheckpointLike | None = None,
    num_classes: int | None = None,
    skip_classifier: bool = False,
    use_ema: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool | ProgressCallback = True,
    fuse_bn: bool = False,
    **model_kwargs: Any,
) -> nn.Module:
    """Build the slim network ``name``, optionally filled with TF weights, in eval mode.

    Args:
        name: slim network name, see :func:`list_models` (with ``pretrained=True``, a model of
            the weights registry, see :func:`zoo.list_pretrained`).
        pretrained: the published weights: downloaded, verified, converted and cached on first
            use (see :func:`zoo.download_weights`), then loaded from the cache.
        checkpoint: a TF checkpoint path (V1 file, V2 prefix or ``.index``, or a directory with
            one checkpoint) or a ``{tf_variable_name: array}`` mapping, e.g. a fine-tuned model.
        num_classes: classifier size. ``None`` takes it from the checkpoint (any class count of a
            fine-tuned model is detected) or else the released model's (1000 or 1001).
        skip_classifier: with a ``num_classes`` that differs from the checkpoint's, load
            everything but the classifier (which keeps its random initialisation), for fine-tuning.
        use_ema: take ``ExponentialMovingAverage`` shadows where the checkpoint has them.
        cache_dir, offline, progress: for ``pretrained=True``, see :func:`zoo.download_weights`
            (defaults: ``ZOO_CACHE_DIR``, ``ZOO_OFFLINE``, a bar on a terminal).
        fuse_bn: fold every batch norm that directly follows a conv into that conv's weights
            (inference only: faster, same logits up to float rounding, but the parameters no
            longer match the TF names, so do not fine-tune, save for export or load into it).
            See :func:`zoo.fuse_bn`.
        **model_kwargs: passed to the network (``global_pool``, ``output_stride``, ...).

    Raises:
        zoo.UnknownModelError: ``name`` is not a known network (the message lists close matches).
        zoo.MappingError: the checkpoint does not fit the network (names and shapes listed).
        zoo.NoWeightsError: ``pretrained=True`` for a network without published weights.
        zoo.OfflineError, zoo.DownloadError, zoo.ArchiveError: see :func:`zoo.download_weights`.
    """
    if pretrained and checkpoint is not None:
        raise ValueError("pass either pretrained=True or checkpoint=..., not both")
    model = _build_and_load(
        name,
        pretrained=pretrained,
        checkpoint=checkpoint,
        num_classes=num_classes,
        skip_classifier=skip_classifier,
        use_ema=use_ema,
        download={"cache_dir": cache_dir, "offline": offline, "progress": progress},
        model_kwargs=model_kwargs,
    )
    if fuse_bn:
        fold_batch_norms(model)
    return model.eval()


def _build_and_load(
    name: str,
    *,
    pretrained: bool,
    checkpoint: CheckpointLike | None,
    num_classes: int | None,
    skip_classifier: bool,
    use_ema: bool,
    download: dict[str, Any],
    model_kwargs: dict[str, Any],
) -> nn.Module:
    if pretrained:
        return _load_pretrained(
            name,
            num_classes=num_classes,
            skip_classifier=skip_classifier,
            use_ema=use_ema,
            download=download,
            model_kwargs=model_kwargs,
        )
    constructor = architectures.get_constructor(name)

    kwargs = dict(model_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = constructor(**kwargs)
    if checkpoint is not None:
        load_checkpoint_into(
            model,
            checkpoint,
            num_classes=num_classes,
            skip_classifier=skip_classifier,
            use_ema=use_ema,
        )
    return model.eval()


def _load_pretrained(
    name: str,
    *,
    num_classes: int | None,
    skip_classifier: bool,
    use_ema: bool,
    download: dict[str, Any],
    model_kwargs: dict[str, Any],
) -> nn.Module:
    """Build the network of registry entry ``name`` and fill it from the weights cache."""
    from .pretrained import download_weights, released_model_info

    info = released_model_info(name)  # a clear error first if nothing was published
    try:
        constructor = architectures.get_constructor(info.architecture)  # before any download
    except UnknownModelError:
        raise UnknownModelError(
            f"{name!r} has published weights, but its network {info.architecture!r} is not "
            f"available in this slimzoo (networks: {', '.join(list_models())})."
        ) from None
    path = download_weights(name, use_ema=use_ema, **download)
    released = info.num_classes
    wanted = released if num_classes is None else num_classes
    if wanted != released and not skip_classifier:
        raise MappingError(
            f"num_classes={num_classes} but the published {name} weights have {released} "
            f"classes. Leave num_classes unset for the {released}-class classifier, or pass "
            "skip_classifier=True to load everything but the classifier (for fine-tuning)."
        )
    state, owned = _read_safetensors(path)
    # Every tensor is about to be loaded: when that is safe, skip the random initialisation
    # (most of the time of building a large network) and take the loaded tensors as they are.
    skeleton = None
    if wanted == released:  # (otherwise the new classifier keeps its random initialisation)
        skeleton = build_on_meta(constructor, num_classes=wanted, **model_kwargs)
    if skeleton is not None and owned:
        model, assign = skeleton, True
    elif skeleton is not None:
        model, assign = skeleton.to_empty(device="cpu"), False
    else:
        model, assign = constructor(num_classes=wanted, **model_kwargs), False
    if wanted == released:
        problems = model.load_state_dict(state, strict=False, assign=assign)
        missing, unexpected = problems.missing_keys, problems.unexpected_keys
    else:
        heads = _classifier_scopes(model)
        problems = model.load_state_dict(
            {k: v for k, v in state.items() if not _under(k, heads)}, strict=False
        )
        missing = [k for k in problems.missing_keys if not _under(k, heads)]
        unexpected = problems.unexpected_keys
    if missing or unexpected:
        raise MappingError(
            f"the cached weights {path} do not fit {name} as built now (missing: "
            f"{missing[:5]}, unexpected: {unexpected[:5]}). If the network's code changed, "
            "delete the file to have it converted again (its mapping version should be bumped)."
        )
    return model.eval()


def build_on_meta(constructor: Callable[..., nn.Module], **kwargs: Any) -> nn.Module | None:
    """The network on PyTorch's ``meta`` device (no memory, no random initialisation), or
    ``None`` when a state dict would not restore it completely.

    For a model whose every parameter and buffer is loaded next (strictly, with
    ``assign=True``, or into ``to_empty`` storage). ``None`` (build it normally) when the
    constructor cannot run on ``meta``, or when the model holds state that a state dict does not
    carry: non-persistent buffers or plain tensor attributes.
    """
    try:
        with torch.device("meta"):
            model = constructor(**kwargs)
    except Exception:  # e.g. a constructor that reads a tensor's value
        return None
    for module in model.modules():
        if module._non_persistent_buffers_set:
            return None
        for value in vars(module).values():
            values = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, torch.Tensor) for v in values):
                return None
    return model


def _read_safetensors(path: os.PathLike[str]) -> tuple[dict[str, torch.Tensor], bool]:
    """The file's tensors, and whether they own their memory (read with ``pread``).

    Owned tensors can become the model's parameters directly. Memory-mapped ones (the default
    backend, and the only one of older safetensors) must be copied: a model built on a mapping
    would crash (SIGBUS) if the file were later overwritten in place.
    """
    from safetensors.torch import load_file

    try:
        return load_file(path, backend="pread"), True
    except TypeError:  # safetensors < 0.7: no backend argument
        return load_file(path), False


def load_checkpoint_into(
    model: nn.Module,
    checkpoint: CheckpointLike,
    *,
    num_classes: int | None = None,
    skip_classifier: bool = False,
    use_ema: bool = True,
) -> architectures.LoadReport:
    """Fill ``model`` from a TF checkpoint, adapting or checking its class count first."""
    if isinstance(checkpoint, (str, os.PathLike)):
        from .checkpoint import open_checkpoint

        checkpoint = open_checkpoint(checkpoint)
    stored = checkpoint_num_classes(model, checkpoint)
    skip: tuple[str, ...] = ()
    if stored is not None and stored != model.num_classes:
        if num_classes is None:
            model.reset_classifier(stored)  # a fine-tuned checkpoint: follow its class count
        elif skip_classifier:
            skip = _classifier_scopes(model)
        else:
            raise MappingError(
                f"num_classes={num_classes} but the checkpoint's classifier has {stored} classes. "
                f"Leave num_classes unset to load its {stored}-class classifier, or pass "
                "skip_classifier=True to load everything but the classifier (for fine-tuning)."
            )
    report = load_tf_weights(model, checkpoint, skip=skip, use_ema=use_ema)
    log.info("%s: %s", type(model).__name__, report)
    model.load_report = report
    return report


def _classifier_scopes(model: nn.Module) -> tuple[str, ...]:
    """Torch names of every classifier (the main one and, where present, the auxiliary one)."""
    return tuple(getattr(model, "classifier_names", (model.classifier_name,)))


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)
