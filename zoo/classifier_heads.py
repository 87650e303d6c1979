"""The classifiers of a model (main and auxiliary) as state-dict scopes, and the removal of
slim's background class (class 0 of a 1001-class classifier)."""

from __future__ import annotations

from torch import nn

from .errors import ConfigError, MappingError

__all__ = ["classifier_scopes", "drop_background_class", "no_background_error", "under"]


def drop_background_class(model: nn.Module, name: str = "the model") -> None:
    """Remove class 0 (background) from ``model``'s 1001-class classifiers, in place.

    Row 0 of the weights and bias of the main and (where built) auxiliary classifiers is cut
    off; the classifiers are rebuilt for 1000 classes with ``reset_classifier`` and given the
    other rows, so the model (its ``num_classes``, ``forward_head``, end points, export) is an
    ordinary 1000-class network whose logits are the 1001-class logits ``[..., 1:]``.
    """
    classes = getattr(model, "num_classes", None)
    if classes != 1001:
        raise no_background_error(name, classes)
    heads = classifier_scopes(model)
    kept = {}
    for key, value in model.state_dict().items():
        if under(key, heads):
            if value.dim() == 0 or value.shape[0] != 1001:
                raise MappingError(
                    f"cannot drop the background class of {name}: its classifier tensor {key} "
                    f"has shape {tuple(value.shape)}, expected 1001 rows first"
                )
            kept[key] = value[1:]
    model.reset_classifier(1000)
    problems = model.load_state_dict(kept, strict=False)
    missing = [k for k in problems.missing_keys if under(k, heads)]
    if missing or problems.unexpected_keys:  # pragma: no cover - a family's reset_classifier bug
        raise MappingError(
            f"{type(model).__name__}.reset_classifier(1000) rebuilt other classifier tensors "
            f"than it had (missing: {missing}, unexpected: {problems.unexpected_keys})"
        )


def no_background_error(what: str, classes: int | None) -> ConfigError:
    """The error for ``drop_background=True`` on ``what``, which has ``classes`` classes."""
    if classes == 1000:
        why = (
            "1000 classes and no background class (vgg and resnet_v1 were converted from "
            "Caffe): its logits are already in torchvision's order; load it without "
            "drop_background"
        )
    else:
        why = f"{classes} classes"
    return ConfigError(
        "drop_background=True removes the background class of a 1001-class ImageNet "
        f"classifier, but {what} has {why}."
    )


def classifier_scopes(model: nn.Module) -> tuple[str, ...]:
    """Torch names of every classifier (the main one and, where present, the auxiliary one)."""
    return tuple(getattr(model, "classifier_names", (model.classifier_name,)))


def under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)
