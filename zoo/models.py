"""``zoo.list_models`` and ``zoo.load``: build a network and fill it from a TF checkpoint."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Union

import numpy as np
from torch import nn

import architectures
from architectures._tf import checkpoint_num_classes, load_tf_weights

from .errors import MappingError

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
    **model_kwargs: Any,
) -> nn.Module:
    """Build the slim network ``name``, optionally filled with TF weights, in eval mode.

    Args:
        name: slim network name, see :func:`list_models`.
        pretrained: download (once), verify, convert and cache the published checkpoint.
        checkpoint: a TF checkpoint path (V1 file, V2 prefix or ``.index``, or a directory with
            one checkpoint) or a ``{tf_variable_name: array}`` mapping, e.g. a fine-tuned model.
        num_classes: classifier size. ``None`` takes it from the checkpoint (any class count of a
            fine-tuned model is detected) or else the released model's (1000 or 1001).
        skip_classifier: with a ``num_classes`` that differs from the checkpoint's, load
            everything but the classifier (which keeps its random initialisation), for fine-tuning.
        use_ema: take ``ExponentialMovingAverage`` shadows where the checkpoint has them.
        **model_kwargs: passed to the network (``global_pool``, ``output_stride``, ...).

    Raises:
        zoo.UnknownModelError: ``name`` is not a known network (the message lists close matches).
        zoo.MappingError: the checkpoint does not fit the network (names and shapes listed).
    """
    constructor = architectures.get_constructor(name)
    if pretrained and checkpoint is not None:
        raise ValueError("pass either pretrained=True or checkpoint=..., not both")
    if pretrained:
        raise NotImplementedError(
            f"pretrained=True is not available yet for {name!r}: convert a checkpoint you have "
            f"with zoo.load({name!r}, checkpoint='path/to/model.ckpt')"
        )

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
