"""``zoo.list_models`` and ``zoo.load``: build a network and fill it from a TF checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from torch import nn

import architectures
from architectures._features import FeatureNet
from architectures._fuse import fuse_bn as fold_batch_norms
from architectures._packed import optimize_for_inference as optimize_model
from architectures._tf import checkpoint_num_classes, load_tf_weights, settle_optional_heads
from architectures._values import check_finite_state

from .arguments import check_load_arguments
from .classifier_heads import classifier_scopes, drop_background_class, no_background_error, under
from .errors import ConfigError, MappingError, UnknownModelError, close_matches
from .hub import ProgressCallback
from .model_card import pretrained_cfg
from .skeleton import assign_state, build_on_meta
from .weights_file import read_safetensors, read_weights_file

__all__ = [
    "CheckpointLike",
    "drop_background_class",
    "list_models",
    "load",
    "load_checkpoint_into",
    "read_weights_file",
]

log = logging.getLogger(__name__)

# A TF checkpoint path (anything zoo.open_checkpoint accepts) or {tf_variable_name: array}.
CheckpointLike = Union[str, "os.PathLike[str]", Mapping[str, np.ndarray]]


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Names matching the glob ``pattern`` (e.g. ``"resnet_v2_*"``), in natural order
    (``resnet_v1_50`` before ``resnet_v1_101``), as timm's ``list_models``.

    Without ``pretrained``: the networks :func:`load` can build. With ``pretrained=True``: the
    names ``load(name, pretrained=True)`` takes (published weights whose network is available
    here), as :func:`zoo.list_pretrained` but natural-sorted and without releases of networks
    this slimzoo lacks.
    """
    if not pretrained:
        return architectures.list_architectures(pattern)
    from .registry import list_pretrained, model_info

    networks = set(architectures.list_architectures())
    released = [n for n in list_pretrained(pattern) if model_info(n).architecture in networks]
    return sorted(released, key=architectures.natural_key)


def load(
    name: str,
    *,
    pretrained: bool = False,
    checkpoint: CheckpointLike | None = None,
    weights: str | os.PathLike[str] | None = None,
    num_classes: int | None = None,
    skip_classifier: bool = False,
    drop_background: bool = False,
    use_ema: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    progress: bool | ProgressCallback = True,
    fuse_bn: bool = False,
    optimize_for_inference: bool = False,
    allow_nonfinite: bool = False,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    require_aux_head: bool = False,
    **model_kwargs: Any,
) -> nn.Module:
    """Build the slim network ``name``, optionally filled with TF weights.

    As in timm and torchvision, the model comes back in **training mode** (batch norm updates
    its statistics, dropout is on): call ``model.eval()`` before inference. Only the
    inference-only forms, ``fuse_bn=True`` and ``optimize_for_inference=True``, come back in
    eval mode (their batch norms are folded away, so there is nothing to train).

    The model carries ``pretrained_cfg``, timm's model card (input size, mean, std, crop,
    interpolation, classes and label offset, release URL and sha256), which timm's
    ``resolve_data_config(model=model)`` reads; see :func:`zoo.model_card.pretrained_cfg`.

    Args:
        name: slim network name, see :func:`list_models` (with ``pretrained=True``, a model of
            the weights registry, see :func:`zoo.list_pretrained`).
        pretrained: the published weights: downloaded, verified, converted and cached on first
            use (see :func:`zoo.download_weights`), then loaded from the cache.
        checkpoint: a TF checkpoint path (V1 file, V2 prefix or ``.index``, or a directory with
            one checkpoint) or a ``{tf_variable_name: array}`` mapping, e.g. a fine-tuned model.
        weights: a torch weights file of this network: ``.safetensors`` (e.g. written by
            ``slimzoo convert`` or ``safetensors.torch.save_model(model, path,
            force_contiguous=True)``: ResNet and VGG keep their kernels channels-last, which
            ``save_file(model.state_dict(), ...)`` refuses), or
            ``.pt`` / ``.pth`` (a plain state dict, read with ``torch.load(weights_only=True)``,
            which refuses pickled code). Every tensor must fit the network as built.
        num_classes: classifier size. ``None`` takes it from the checkpoint or weights file (any
            class count of a fine-tuned model is detected) or else the released model's (1000
            or 1001).
        skip_classifier: with a ``num_classes`` that differs from the checkpoint's, load
            everything but the classifier (which keeps its random initialisation), for fine-tuning.
            Implied by ``num_classes=0`` (no classifier: a feature extractor, as in timm).
        drop_background: for a 1001-class model (slim's ImageNet classifiers but vgg and
            resnet_v1), remove the background class from the classifier itself (row 0 of the
            weights and bias of the main and auxiliary classifiers): the model then outputs the
            1000 ImageNet classes in torchvision's order, equal to the 1001-class logits
            ``[:, 1:]``, also through ``forward_head``, ``end_points`` and
            :func:`zoo.export_tf_checkpoint` (as a 1000-class checkpoint). Names:
            ``zoo.imagenet_labels(name, drop_background=True)``.
        use_ema: take ``ExponentialMovingAverage`` shadows where the checkpoint has them.
        cache_dir, offline, progress: for ``pretrained=True``, see :func:`zoo.download_weights`
            (defaults: ``ZOO_CACHE_DIR``, ``ZOO_OFFLINE``, a bar on a terminal).
        fuse_bn: fold every batch norm that directly follows a conv into that conv's weights
            (inference only: faster, same logits up to float rounding, but the parameters no
            longer match the TF names, so do not fine-tune, save for export or load into it).
            See :func:`zoo.fuse_bn`.
        optimize_for_inference: ``fuse_bn`` plus, on CPU, convs on prepacked oneDNN weights
            with the bias and ReLU (in ResNets also the residual add) fused (the fastest CPU
            inference; one extra copy of the conv weights in memory; parameters stop
            requiring grad). See
            :func:`zoo.optimize_for_inference`.
        allow_nonfinite: load a ``checkpoint`` or ``weights`` file holding NaN or inf values
            (refused by default: a diverged run or a corrupt file).
        features_only: as timm: a module returning a list of NCHW feature maps (one per
            stride, at slim end points) instead of logits, with ``feature_info`` (``channels()``,
            ``reduction()``, ``module_name()``, ``end_point()``); the classifier is not built
            (``num_classes=0``). ResNets take ``output_stride=8`` or ``16`` (atrous blocks).
        out_indices: with ``features_only``, which feature levels to return (default all;
            negative indices count from the deepest).
        require_aux_head: weights without a complete auxiliary head (NASNet-A and PNASNet-5
            Large were published so) are an error instead of loading without it. By default the
            model then has no auxiliary head (``load_report.absent`` names the missing
            tensors), or, with ``aux_logits=True``, a freshly initialised one and one warning.
        **model_kwargs: passed to the network (``global_pool``, ``output_stride``, ...); an
            option the network does not have is a ``zoo.ConfigError`` listing those it has.

    Raises:
        zoo.UnknownModelError: ``name`` is not a known network (the message lists close matches).
        zoo.MappingError: the checkpoint does not fit the network (names and shapes listed).
        zoo.ConfigError: ``drop_background=True`` for a model without the 1001-class ImageNet
            classifier (vgg, resnet_v1, a fine-tuned one, another ``num_classes``).
        zoo.NoWeightsError: ``pretrained=True`` for a network without published weights.
        zoo.OfflineError, zoo.DownloadError, zoo.ArchiveError: see :func:`zoo.download_weights`.
    """
    check_load_arguments(
        name, num_classes=num_classes, checkpoint=checkpoint, weights=weights, pretrained=pretrained
    )
    given = {
        "pretrained=True": bool(pretrained),
        "checkpoint": checkpoint is not None,
        "weights": weights is not None,
    }
    sources = [source for source, used in given.items() if used]
    if len(sources) > 1:
        raise ValueError(f"pass one of pretrained=True, checkpoint=..., weights=...; got {sources}")
    _check_network_options(name, pretrained, model_kwargs)
    if out_indices is not None and not features_only:
        raise ConfigError("out_indices selects feature maps: pass features_only=True with it")
    if features_only and drop_background:
        raise ConfigError("features_only=True builds no classifier: drop_background does not apply")
    if features_only and num_classes is None:
        num_classes = 0  # no classifier (the checkpoint's is left unread), as timm
    if drop_background and num_classes not in (None, 1001):
        raise no_background_error(f"{name} with num_classes={num_classes}", num_classes)
    if pretrained:
        model = _load_pretrained(
            name,
            num_classes=num_classes,
            skip_classifier=skip_classifier,
            use_ema=use_ema,
            download={"cache_dir": cache_dir, "offline": offline, "progress": progress},
            model_kwargs=model_kwargs,
            drop_background=drop_background,
            require_aux_head=require_aux_head,
        )
    elif weights is not None:
        model = _load_weights_file(
            name,
            weights,
            num_classes=num_classes,
            skip_classifier=skip_classifier,
            model_kwargs=model_kwargs,
            require_aux_head=require_aux_head,
        )
        if not allow_nonfinite:
            check_finite_state(model.state_dict(), f"the weights file {weights}")
    else:
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
                allow_nonfinite=allow_nonfinite,
                require_aux_head=require_aux_head,
            )
    if drop_background:
        drop_background_class(model, name)
    if optimize_for_inference:
        optimize_model(model)
    elif fuse_bn:
        fold_batch_norms(model)
    else:
        model.train()  # timm's and torchvision's convention (loading may have left eval mode)
    model.pretrained_cfg = pretrained_cfg(name, model, pretrained=pretrained)
    if features_only:
        model = FeatureNet(model, out_indices)
        model.pretrained_cfg = model.body.pretrained_cfg
    return model


def _check_network_options(name: str, pretrained: bool, options: Mapping[str, Any]) -> None:
    """A clear error for a keyword argument neither :func:`load` nor the network takes."""
    if not options:
        return
    from .hub_entries import load_options, network_options

    network = name
    if pretrained:
        from .registry import model_info

        try:
            network = model_info(name).architecture
        except UnknownModelError:
            return  # load's own lookup says so, with close matches
    try:
        constructor = architectures.get_constructor(network)
    except UnknownModelError:
        return
    known = network_options(constructor)
    if not known:  # a constructor whose options cannot be read: let it judge
        return
    names = [o.split("=")[0] for o in known]
    unknown = [k for k in options if k not in names]
    if unknown:
        everything = [*names, *load_options()]
        hints = "".join(close_matches(k, everything) for k in unknown)
        raise ConfigError(
            f"{network} takes no option {', '.join(map(repr, unknown))}.{hints} Its own options: "
            f"{', '.join(known)}; zoo.load's: {', '.join(load_options())}."
        )


def _load_pretrained(
    name: str,
    *,
    num_classes: int | None,
    skip_classifier: bool,
    use_ema: bool,
    download: dict[str, Any],
    model_kwargs: dict[str, Any],
    drop_background: bool = False,
    require_aux_head: bool = False,
) -> nn.Module:
    """Build the network of registry entry ``name`` and fill it from the weights cache."""
    from .pretrained import download_weights, released_model_info

    info = released_model_info(name)  # a clear error first if nothing was published
    if drop_background and info.num_classes != 1001:  # before any download
        raise no_background_error(f"{name} (published weights)", info.num_classes)
    try:
        constructor = architectures.get_constructor(info.architecture)  # before any download
    except UnknownModelError:
        raise UnknownModelError(
            f"{name!r} has published weights, but its network {info.architecture!r} is not "
            f"available in this slimzoo (networks: {', '.join(list_models())})."
        ) from None
    path = download_weights(name, use_ema=use_ema, **download)
    state, owned = read_safetensors(path)
    model = _model_from_state(
        constructor,
        state,
        owned=owned,
        stored_classes=info.num_classes,
        num_classes=num_classes,
        skip_classifier=skip_classifier,
        model_kwargs=model_kwargs,
        source=f"the published {name} weights",
        if_unfit=(
            f"the cached weights {path} do not fit {name} as built now. If the network's code "
            "changed, delete the file to have it converted again (its mapping version should "
            "be bumped)."
        ),
        require_aux_head=require_aux_head,
    )
    model.load_report = _conversion_report(path.with_suffix(".json"), list(state))
    log.info("%s: %s", name, model.load_report)
    return model


def _conversion_report(sidecar: os.PathLike[str], tensors: list[str]) -> architectures.LoadReport:
    """The load report of a cached conversion, from its sidecar: the tensors it skipped and
    why, the EMA shadows it took and the tensors of a head the release lacks (``loaded``: the
    torch tensors read from the cache)."""
    import json

    try:
        meta = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # pragma: no cover - download_weights checked it just now
        meta = {}
    reasons = meta.get("skipped_tensors") or {}
    ignored = list(meta.get("ignored_tensors") or reasons)
    return architectures.LoadReport(
        loaded=tensors,
        ema=list(meta.get("ema_shadows_used") or ()),
        ignored=ignored,
        reasons={n: reasons.get(n, "not needed") for n in ignored},
        absent=list(meta.get("absent_tensors") or ()),
        dropped_heads=list(meta.get("dropped_heads") or ()),
    )


def _load_weights_file(
    name: str,
    path: str | os.PathLike[str],
    *,
    num_classes: int | None,
    skip_classifier: bool,
    model_kwargs: dict[str, Any],
    require_aux_head: bool = False,
) -> nn.Module:
    """Build the network ``name`` and fill it from a torch weights file (state dict)."""
    constructor = architectures.get_constructor(name)
    state, owned = read_weights_file(path)
    try:  # the network's classifier name and default class count, without memory
        with torch.device("meta"):
            probe = constructor(**model_kwargs)
    except Exception:  # a constructor that cannot run on meta: build it for real
        probe = constructor(**model_kwargs)
    bias = state.get(f"{probe.classifier_name}.bias")
    stored = int(bias.shape[0]) if bias is not None and bias.dim() == 1 else probe.num_classes
    return _model_from_state(
        constructor,
        state,
        owned=owned,
        stored_classes=stored,
        num_classes=num_classes,
        skip_classifier=skip_classifier,
        model_kwargs=model_kwargs,
        source=f"the weights file {path}",
        if_unfit=(
            f"the weights file {path} does not fit {name} as built (with {model_kwargs or 'no'} "
            "model arguments): is it the state dict of another network, or of one built with "
            "other arguments (depth_multiplier, create_aux_logits, ...)?"
        ),
        require_aux_head=require_aux_head,
    )


def _model_from_state(
    constructor: Callable[..., nn.Module],
    state: dict[str, torch.Tensor],
    *,
    owned: bool,
    stored_classes: int,
    num_classes: int | None,
    skip_classifier: bool,
    model_kwargs: dict[str, Any],
    source: str,
    if_unfit: str,
    require_aux_head: bool = False,
) -> nn.Module:
    """The network built by ``constructor`` holding the torch state dict ``state``, whose
    classifier has ``stored_classes`` classes (kept only when that is the wanted count).

    An optional head (the auxiliary head) that ``state`` lacks in whole or part is dropped from
    the model, or kept freshly initialised with one warning when the model runs it
    (``aux_logits=True``); ``require_aux_head=True`` makes it an error."""
    wanted = stored_classes if num_classes is None else num_classes
    if wanted != stored_classes and not (skip_classifier or wanted == 0):
        raise MappingError(
            f"num_classes={num_classes} but {source} have {stored_classes} classes. Leave "
            f"num_classes unset for the {stored_classes}-class classifier, or pass "
            "skip_classifier=True to load everything but the classifier (for fine-tuning)."
        )
    # Every tensor is about to be loaded: when that is safe, skip the random initialisation
    # (most of the time of building a large network) and take the loaded tensors as they are.
    skeleton = None
    if wanted == stored_classes:  # (otherwise the new classifier keeps its random initialisation)
        skeleton = build_on_meta(constructor, num_classes=wanted, **model_kwargs)
    if skeleton is not None and owned:
        model, assign = skeleton, True
    elif skeleton is not None:
        model, assign = skeleton.to_empty(device="cpu"), False
    else:
        model, assign = constructor(num_classes=wanted, **model_kwargs), False
    heads = classifier_scopes(model) if wanted != stored_classes else ()
    shapes = _state_shapes(model)  # one walk of a big network, not one per use
    absent_heads, absent = _absent_optional_heads(model, shapes, state)
    if absent_heads and require_aux_head:
        raise MappingError(
            f"{source} hold no complete auxiliary head ({len(absent)} tensors absent, e.g. "
            f"{', '.join(absent[:3])}) and require_aux_head=True. Load without "
            "require_aux_head (inference never runs the auxiliary head), or train one."
        )
    kept = bool(absent_heads) and getattr(model, "aux_logits", False)
    if kept:  # freshly initialised: a model built for real (no meta or empty storage)
        model, assign = constructor(num_classes=wanted, **model_kwargs), False
        heads += absent_heads
    else:
        for head in absent_heads:
            model.drop_optional_head(head)
    if absent_heads:  # another model, or heads dropped: walk it again
        shapes = _state_shapes(model)
    unbuilt = tuple(getattr(model, "unbuilt_heads", ()))  # e.g. create_aux_logits=False
    state = {k: v for k, v in state.items() if not under(k, heads + unbuilt)}
    expected = {k: v for k, v in shapes.items() if not under(k, heads)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [
        f"{k} {tuple(state[k].shape)} (expected {shape})"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    if missing or unexpected or misshaped:
        problems = [
            f"{what} ({len(names)}): {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for what, names in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", misshaped),
            )
            if names
        ]
        raise MappingError(f"{if_unfit} {'; '.join(problems)}.")
    if assign and not heads:
        assign_state(model, state)  # (checked above: the same names and shapes)
    else:
        model.load_state_dict(state, strict=not heads, assign=assign)
    if kept:
        settle_optional_heads(model, list(absent_heads), absent)  # the one warning
    return model


def _state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _absent_optional_heads(
    model: nn.Module, names: Iterable[str], state: Mapping[str, torch.Tensor]
) -> tuple[tuple[str, ...], list[str]]:
    """The optional heads of ``model`` (whose state dict has ``names``) that ``state`` lacks in
    whole or part, and the missing tensors' names."""
    names = list(names)
    heads, absent = [], []
    for head in getattr(model, "optional_heads", ()):
        missing = [k for k in names if under(k, (head,)) and k not in state]
        if missing:
            heads.append(head)
            absent += [k for k in missing if not k.endswith("num_batches_tracked")]
    return tuple(heads), absent


def load_checkpoint_into(
    model: nn.Module,
    checkpoint: CheckpointLike,
    *,
    num_classes: int | None = None,
    skip_classifier: bool = False,
    use_ema: bool = True,
    allow_nonfinite: bool = False,
    require_aux_head: bool = False,
) -> architectures.LoadReport:
    """Fill ``model`` from a TF checkpoint, adapting or checking its class count first (see
    :func:`architectures.load_tf_weights` for an auxiliary head the checkpoint lacks)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        from .checkpoint import open_checkpoint

        checkpoint = open_checkpoint(checkpoint)
    stored = checkpoint_num_classes(model, checkpoint)
    skip: tuple[str, ...] = ()
    if stored is not None and stored != model.num_classes:
        if num_classes is None and model.num_classes:
            model.reset_classifier(stored)  # a fine-tuned checkpoint: follow its class count
        elif skip_classifier or not model.num_classes:  # (a model without classifier: the
            skip = classifier_scopes(model)  # features of a checkpoint with one, as in timm)
        else:
            raise MappingError(
                f"num_classes={num_classes} but the checkpoint's classifier has {stored} classes. "
                f"Leave num_classes unset to load its {stored}-class classifier, or pass "
                "skip_classifier=True to load everything but the classifier (for fine-tuning)."
            )
    report = load_tf_weights(
        model,
        checkpoint,
        skip=skip,
        use_ema=use_ema,
        allow_nonfinite=allow_nonfinite,
        require_aux_head=require_aux_head,
    )
    log.info("%s: %s", type(model).__name__, report)
    model.load_report = report
    return report
