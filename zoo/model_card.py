"""``model.pretrained_cfg``: the model card every :func:`zoo.load` result carries, in timm's form.

timm's data helpers read it (``timm.data.resolve_data_config(model=model)`` then
``timm.data.create_transform(**config)``), so they find slim's input size, mean/std (for pixels
in ``[0, 1]``), crop fraction and interpolation instead of timm's ImageNet defaults. Those
helpers resize and crop in another order and with antialiasing, so their images differ slightly
from slim's; :func:`zoo.get_transform` is the exact preprocessing (README: by how much).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .errors import UnknownModelError

__all__ = ["pretrained_cfg"]


def pretrained_cfg(name: str, model: nn.Module, *, pretrained: bool) -> dict[str, Any]:
    """The timm-style card of ``model``, built as ``zoo.load(name, pretrained=pretrained)``.

    Keys: timm's ``input_size``, ``mean``, ``std``, ``crop_pct``, ``crop_mode``,
    ``interpolation``, ``num_classes`` (the model's own: 0 without classifier, a fine-tuned
    count), ``label_offset`` (1 where logit 0 is slim's background class), ``classifier``,
    ``architecture``, ``license``, ``paper_name``/``paper_ids``, accuracy where published;
    ``url`` and ``sha256`` (of the release tarball; ``None`` where not published) only for
    ``pretrained=True``, and ``tag`` ``"tf_slim"``.
    """
    from ._model_facts import model_facts

    classes = int(getattr(model, "num_classes", 0) or 0)
    cfg: dict[str, Any] = {"architecture": name, "tag": "tf_slim"}
    try:
        info = model_facts(name)
    except UnknownModelError:  # a network the registry in use does not describe
        info = None
    if info is not None:
        cfg.update(info.pretrained_cfg())
        p = info.preprocessing
        if p is not None and p.crop_mode == "crop_then_resize":
            # slim's inception preprocessing takes the central crop_pct of each side and
            # resizes it to a square, aspect ratio not kept: timm's "squash" mode (resize to
            # input/crop_pct squared, central crop) cuts the same region, "center" another one
            cfg["crop_mode"] = "squash"
    release = getattr(info, "release", None) if pretrained else None
    cfg["url"] = getattr(release, "url", None)
    cfg["sha256"] = getattr(release, "sha256", None)
    offset = getattr(info, "label_offset", 0) if classes == getattr(info, "num_classes", -1) else 0
    cfg.update(num_classes=classes, label_offset=offset)
    classifier = getattr(model, "classifier_name", None)
    if classifier is not None and classes:
        cfg["classifier"] = classifier
    return cfg
