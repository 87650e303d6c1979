"""What the weights registry says, as frozen dataclasses: one :class:`ModelInfo` per model name,
with its :class:`Release` (the tarball and the files inside it), :class:`Preprocessing`,
:class:`Accuracy` and :class:`Paper`, all in a :class:`Registry`.

The dataclasses only hold validated values: :mod:`zoo.registry_validation` builds them from
``weights_registry.json`` and :mod:`zoo.registry` loads the file in use.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from architectures import natural_key

from .errors import UnknownModelError, close_matches

__all__ = [
    "FORMATS",
    "INTERPOLATIONS",
    "PREPROCESSING_SCHEMES",
    "SCHEMA_VERSION",
    "Accuracy",
    "ModelInfo",
    "Paper",
    "Preprocessing",
    "Registry",
    "Release",
]

SCHEMA_VERSION = 1

# slim's two evaluation pipelines (research/slim/preprocessing): the fixed part of each scheme.
PREPROCESSING_SCHEMES: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        # x/255, central crop of 87.5 %, bilinear resize to the model size, (x - 0.5) * 2
        "inception": {
            "crop_mode": "crop_then_resize",
            "crop_fraction": 0.875,
            "value_scale": 1.0,
            "mean": (0.5, 0.5, 0.5),
            "std": (0.5, 0.5, 0.5),
        },
        # RGB 0..255, shorter side to 256, central crop 224, minus the ImageNet mean, no scaling
        "vgg": {
            "crop_mode": "resize_then_crop",
            "crop_fraction": 0.875,
            "value_scale": 255.0,
            "mean": (123.68, 116.78, 103.94),
            "std": (1.0, 1.0, 1.0),
        },
    }
)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
FORMATS = ("v1", "v2")

# --------------------------------------------------------------------------- the dataclasses


@dataclass(frozen=True)
class Preprocessing:
    """How slim fed the network at evaluation.

    Pixels are scaled to ``[0, value_scale]``, then normalised as ``(x - mean) / std``.
    ``crop_mode`` ``"crop_then_resize"`` (inception): central crop of ``crop_fraction`` of the
    image, then resize to ``input_size``; ``"resize_then_crop"`` (vgg): resize the shorter side to
    :attr:`resize_size`, then central crop ``input_size``.
    """

    kind: str
    input_size: int
    crop_mode: str
    crop_fraction: float
    interpolation: str
    value_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def resize_size(self) -> int:
        """Shorter side before the central crop (256 for vgg at 224)."""
        return round(self.input_size / self.crop_fraction)

    @property
    def unit_mean(self) -> tuple[float, ...]:
        """``mean`` for pixels in ``[0, 1]`` (torchvision ``ToTensor`` + ``Normalize``, timm)."""
        return tuple(m / self.value_scale for m in self.mean)

    @property
    def unit_std(self) -> tuple[float, ...]:
        """``std`` for pixels in ``[0, 1]``."""
        return tuple(s / self.value_scale for s in self.std)


@dataclass(frozen=True)
class Release:
    """One published tarball and what to take out of it.

    The tarball's layout is data, so any release needs only an entry (paths are as in the
    archive, without a leading ``./``):

    * a 2016 V1 file at the root: ``checkpoint`` ``"vgg_16.ckpt"``, ``files`` the same one;
    * a V2 bundle named after the release, beside its graph files (MobileNet v1/v2):
      ``checkpoint`` ``"mobilenet_v1_1.0_224.ckpt"``, ``files`` its ``.index`` and
      ``.data-00000-of-00001``, ``other_files`` the ``.ckpt.meta``, ``.tflite``,
      ``_frozen.pb``, ``_eval.pbtxt`` and ``_info.txt``;
    * a nested bundle (MobileNet v3): ``checkpoint`` ``"<n>/ema/model-540000"`` (the averaged
      weights under plain names: the one to load, so ``ema`` is false), ``other_files`` the
      ``pristine/model.ckpt-540000.*`` training checkpoint, ``<n>/<n>.pb`` and ``.tflite``.

    Only ``files`` are extracted (they must all be there, or the archive is refused naming what
    it holds); ``other_files`` are skipped unread (a listed one that is absent is a warning).
    """

    url: str  # canonical URL (ZOO_MIRROR may rewrite it)
    size: int | None  # bytes of the tarball; None = not known
    sha256: str | None  # of the tarball; None = not known (the first download's is recorded)
    format: str  # "v1" (single TensorSlice file) or "v2" (.index + .data shards)
    checkpoint: str  # path inside the tarball given to zoo.open_checkpoint (V1 file / V2 prefix)
    files: tuple[str, ...]  # the members extracted: the checkpoint's files and nothing else
    other_files: tuple[str, ...] | None  # other members known to be there, never extracted
    # (None = not known)
    ema: bool | None  # holds ExponentialMovingAverage shadows (None = not known)
    sources: str  # where the facts come from

    @property
    def tarball(self) -> str:
        """File name of the tarball (the last component of the URL path)."""
        return PurePosixPath(urlsplit(self.url).path).name


@dataclass(frozen=True)
class Accuracy:
    """ImageNet validation accuracy as reported by slim (percent)."""

    top1: float
    top5: float | None  # None: not published (the MobileNet v3 README gives top-1 only)
    source: str


@dataclass(frozen=True)
class Paper:
    title: str
    url: str


@dataclass(frozen=True)
class ModelInfo:
    """Everything known about one model name: its release, preprocessing, labels and origin.

    ``release`` is ``None`` for a network that was never published (``resnet_v1_200``): it can be
    built, but not with ``pretrained=True``. ``label_offset`` is 1 for the 1001-class models
    (logit 0 is "background", ImageNet class ``i`` is logit ``i + 1``), else 0.
    """

    name: str
    architecture: str
    release: Release | None
    num_classes: int
    label_offset: int
    preprocessing: Preprocessing | None
    accuracy: Accuracy | None
    paper: Paper | None
    license: str | None
    notes: str

    @property
    def has_weights(self) -> bool:
        return self.release is not None

    @property
    def input_size(self) -> tuple[int, int, int] | None:
        """``(3, H, W)`` of evaluation, as timm writes it."""
        p = self.preprocessing
        return None if p is None else (3, p.input_size, p.input_size)

    def pretrained_cfg(self) -> dict[str, Any]:
        """A timm-style ``pretrained_cfg`` dict (mean/std for pixels in ``[0, 1]``).

        ``crop_pct`` with timm's ``"center"`` mode is exact for vgg preprocessing; for inception
        preprocessing (central crop, then resize) it matches on square images.
        """
        p = self.preprocessing
        cfg: dict[str, Any] = {
            "architecture": self.architecture,
            "url": self.release.url if self.release else None,
            "num_classes": self.num_classes,
            "label_offset": self.label_offset,
            "license": self.license,
            "paper_name": self.paper.title if self.paper else None,
            "paper_ids": self.paper.url if self.paper else None,
        }
        if p is not None:
            cfg.update(
                input_size=self.input_size,
                interpolation=p.interpolation,
                crop_pct=p.crop_fraction,
                crop_mode="center",
                mean=p.unit_mean,
                std=p.unit_std,
            )
        if self.accuracy is not None:
            cfg.update(top1=self.accuracy.top1, top5=self.accuracy.top5)
        return cfg


@dataclass(frozen=True)
class Registry:
    """All entries of one registry file, by model name."""

    source: str
    schema_version: int
    models: Mapping[str, ModelInfo]

    def get(self, name: str) -> ModelInfo:
        """The entry ``name``; :class:`UnknownModelError` with close matches when there is none."""
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModelError(
                f"no entry {name!r} in the weights registry {self.source}."
                f"{close_matches(name, self.models)} zoo.list_pretrained() lists the models "
                "with published weights."
            ) from None

    def names(self, pattern: str = "*", *, with_weights: bool = False) -> list[str]:
        """Model names matching ``pattern``, in natural order (``mobilenet_v1_0.25_128``
        before ``mobilenet_v1_0.5_128``, ``resnet_v1_50`` before ``resnet_v1_101``)."""
        return sorted(
            (
                n
                for n, info in self.models.items()
                if fnmatch.fnmatchcase(n, pattern) and (info.has_weights or not with_weights)
            ),
            key=natural_key,
        )

    def by_tarball(self, file_name: str) -> list[ModelInfo]:
        """Entries whose release tarball has this file name."""
        return [i for i in self.models.values() if i.release and i.release.tarball == file_name]
