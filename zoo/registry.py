"""The weights registry: every published TF-slim checkpoint, as frozen dataclasses.

``weights_registry.json`` is the one source of truth for where a release is downloaded from, how it
is verified (size, sha256) and extracted (which tarball members), and how its network is fed
(input size, crop, mean/std, label offset). The shipped file is looked up next to this package
(``zoo/weights_registry.json``, as installed from a wheel) and then at the repository root (a
source checkout). ``ZOO_REGISTRY=/path/registry.json`` replaces it, e.g. with a company's mirror
URLs and hashes or its own fine-tuned releases.

Everything is validated when it is loaded: the shipped registry when ``zoo`` is imported, a
``ZOO_REGISTRY`` file at its first use (so a bad file cannot break ``import zoo``). A problem raises
:class:`~zoo.errors.RegistryError` naming the file, the entry and the field.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .errors import RegistryError, UnknownModelError, close_matches

__all__ = [
    "PREPROCESSING_SCHEMES",
    "SCHEMA_VERSION",
    "Accuracy",
    "ModelInfo",
    "Paper",
    "Preprocessing",
    "Registry",
    "Release",
    "get_registry",
    "list_pretrained",
    "load_registry",
    "model_info",
    "shipped_registry_path",
]

SCHEMA_VERSION = 1
REGISTRY_FILE = "weights_registry.json"

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

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    """One published tarball and what to take out of it."""

    url: str  # canonical URL (ZOO_MIRROR may rewrite it)
    size: int | None  # bytes of the tarball; None = not known
    sha256: str | None  # of the tarball; None = not known (the first download's is recorded)
    format: str  # "v1" (single TensorSlice file) or "v2" (.index + .data shards)
    checkpoint: str  # path inside the tarball given to zoo.open_checkpoint (V1 file / V2 prefix)
    files: tuple[str, ...]  # the members extracted: the checkpoint's files and nothing else
    other_files: tuple[str, ...] | None  # other members known to be there (None = not known)
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
    top5: float
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
        return sorted(
            n
            for n, info in self.models.items()
            if fnmatch.fnmatchcase(n, pattern) and (info.has_weights or not with_weights)
        )

    def by_tarball(self, file_name: str) -> list[ModelInfo]:
        """Entries whose release tarball has this file name."""
        return [i for i in self.models.values() if i.release and i.release.tarball == file_name]


# --------------------------------------------------------------------------- loading


def shipped_registry_path() -> Path:
    """The shipped registry: next to the package (wheel), else at the repository root."""
    here = Path(__file__).resolve().parent
    for candidate in (here / REGISTRY_FILE, here.parent / REGISTRY_FILE):
        if candidate.is_file():
            return candidate
    raise RegistryError(
        f"{REGISTRY_FILE} is missing: looked in {here} and {here.parent}. Reinstall slimzoo (the "
        "wheel ships it as zoo/weights_registry.json) or set ZOO_REGISTRY to a registry file."
    )


def load_registry(path: str | os.PathLike[str]) -> Registry:
    """Read and validate a registry file (no caching; see :func:`get_registry`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"cannot read the weights registry {path}: {exc}") from exc
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path} is not valid JSON: {exc}") from exc
    except _DuplicateKey as exc:
        raise RegistryError(f"{path}: key {exc.args[0]!r} appears twice in one object") from None
    return _parse(document, str(path))


_cache: dict[tuple[str, int, int], Registry] = {}


def get_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """The registry in use: ``path``, else ``ZOO_REGISTRY``, else the shipped one.

    Cached per file path, modification time and size, so an edited file is re-read.
    """
    if path is None:
        path = os.environ.get("ZOO_REGISTRY") or shipped_registry_path()
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError as exc:
        raise RegistryError(
            f"weights registry {path} not found ({exc.strerror}); check ZOO_REGISTRY"
        ) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    registry = _cache.get(key)
    if registry is None:
        registry = load_registry(path)
        _cache.clear()  # one file in use at a time; a replaced file drops the old one
        _cache[key] = registry
    return registry


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``: release URL/size/sha256, num_classes and label offset,
    input size, crop, interpolation, mean/std, accuracy, paper and licence.

    >>> zoo.model_info("resnet_v2_50").preprocessing.input_size   # doctest: +SKIP
    299
    """
    return get_registry().get(name)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Model names with published weights (``pretrained=True`` works) matching ``pattern``."""
    return get_registry().names(pattern, with_weights=True)


# --------------------------------------------------------------------------- validation


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _Fields:
    """Typed access to one JSON object that names the entry and field in every error."""

    def __init__(self, obj: Any, where: str, source: str, allowed: tuple[str, ...]) -> None:
        self.where, self.source = where, source
        if not isinstance(obj, dict):
            self.fail("", f"an object, found {type(obj).__name__}")
        unknown = sorted(set(obj) - set(allowed))
        if unknown:
            self.fail(unknown[0], f"one of the known fields {', '.join(allowed)} (a typo?)")
        missing = [k for k in allowed if k not in obj]
        if missing:
            self.fail(missing[0], "this field (use null for an unknown value)")
        self.obj = obj

    def fail(self, field: str, expected: str, found: Any = ...) -> None:
        location = f"{self.where}, field {field!r}" if field else self.where
        got = "" if found is ... else f", found {found!r}"
        raise RegistryError(
            f"{self.source}: {location}: expected {expected}{got}. Fix the file "
            "(or unset ZOO_REGISTRY to use the shipped registry)."
        )

    def get(self, key: str, kind: type | tuple[type, ...], *, null: bool = False) -> Any:
        value = self.obj[key]
        if value is None and null:
            return None
        ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, float))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            self.fail(key, f"a {names}" + (" or null" if null else ""), value)
        return value

    def text(self, key: str, *, null: bool = False) -> str | None:
        value = self.get(key, str, null=null)
        if value is not None and not value.strip():
            self.fail(key, "a non-empty string", value)
        return value

    def url(self, key: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
        value = self.text(key)
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.netloc:
            self.fail(key, f"an absolute {'/'.join(schemes)} URL", value)
        return value

    def floats(self, key: str, n: int) -> tuple[float, ...]:
        value = self.get(key, list)
        if len(value) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            self.fail(key, f"a list of {n} numbers", value)
        return tuple(float(v) for v in value)

    def paths(self, key: str, *, null: bool = False) -> tuple[str, ...] | None:
        value = self.get(key, list, null=null)
        if value is None:
            return None
        for v in value:
            if not isinstance(v, str) or not _safe_member(v):
                self.fail(key, "relative member paths without '..'", v)
        if len(set(value)) != len(value):
            self.fail(key, "distinct paths", value)
        return tuple(value)


def _safe_member(path: str) -> bool:
    p = PurePosixPath(path)
    return bool(path) and not p.is_absolute() and ".." not in p.parts and "\\" not in path


def _family_num_classes(architecture: str) -> int:
    """1000 classes for the Caffe-converted VGG and ResNet v1, 1001 (with background) otherwise."""
    return 1000 if architecture.startswith(("vgg_", "resnet_v1_")) else 1001


def _parse(document: Any, source: str) -> Registry:
    top = _Fields(document, "top level", source, ("schema_version", "description", "models"))
    version = top.get("schema_version", int)
    if version != SCHEMA_VERSION:
        top.fail("schema_version", f"{SCHEMA_VERSION} (this slimzoo's registry format)", version)
    top.text("description")
    entries = top.get("models", dict)
    if not entries:
        top.fail("models", "at least one model")
    models = {}
    for name, entry in entries.items():
        if not _NAME.match(name):
            top.fail("models", "model names of letters, digits, '_', '.', '-'", name)
        models[name] = _parse_model(name, entry, source)
    return Registry(source, version, MappingProxyType(models))


_MODEL_FIELDS = (
    "architecture",
    "release",
    "num_classes",
    "label_offset",
    "preprocessing",
    "accuracy",
    "paper",
    "license",
    "notes",
)


def _parse_model(name: str, entry: Any, source: str) -> ModelInfo:
    f = _Fields(entry, f"entry {name!r}", source, _MODEL_FIELDS)
    # Networks are ported in parallel, so an architecture need not be registered yet: that is
    # checked when the model is built (and tests check every registered one in depth).
    architecture = f.text("architecture")
    if not _NAME.match(architecture):
        f.fail("architecture", "a network name", architecture)

    num_classes = f.get("num_classes", int)
    label_offset = f.get("label_offset", int)
    if num_classes < 1:
        f.fail("num_classes", "a positive class count", num_classes)
    if num_classes in (1000, 1001):
        family = _family_num_classes(architecture)
        if num_classes != family:
            f.fail("num_classes", f"{family} for {architecture} (slim's releases)", num_classes)
        if label_offset != num_classes - 1000:
            f.fail(
                "label_offset",
                f"{num_classes - 1000} for {num_classes} classes (1 = background at index 0)",
                label_offset,
            )
    elif label_offset not in (0, 1) or label_offset >= num_classes:
        f.fail("label_offset", "0 or 1 (1 when index 0 is a background class)", label_offset)

    release = _parse_release(name, f.get("release", dict, null=True), source)
    preprocessing = _parse_preprocessing(name, f.get("preprocessing", dict, null=True), source)
    if preprocessing is not None and num_classes in (1000, 1001):
        want = "vgg" if num_classes == 1000 else "inception"
        if preprocessing.kind != want:
            f.fail(
                "preprocessing",
                f"kind {want!r}: slim's {num_classes}-class releases use {want} preprocessing",
                preprocessing.kind,
            )
    license = f.text("license", null=True)
    if release is not None:
        if preprocessing is None:
            f.fail("preprocessing", "the evaluation preprocessing of a released model", None)
        if license is None:
            f.fail("license", "the licence of the released weights", None)

    accuracy = None
    acc = f.get("accuracy", dict, null=True)
    if acc is not None:
        a = _Fields(acc, f"entry {name!r} accuracy", source, ("top1", "top5", "source"))
        top1, top5 = a.get("top1", float), a.get("top5", float)
        if not 0 < top1 <= top5 <= 100:
            a.fail("top5", f"0 < top1 <= top5 <= 100 (top1 is {top1})", top5)
        accuracy = Accuracy(top1, top5, a.text("source"))

    paper = None
    pap = f.get("paper", dict, null=True)
    if pap is not None:
        p = _Fields(pap, f"entry {name!r} paper", source, ("title", "url"))
        paper = Paper(p.text("title"), p.url("url"))

    return ModelInfo(
        name=name,
        architecture=architecture,
        release=release,
        num_classes=num_classes,
        label_offset=label_offset,
        preprocessing=preprocessing,
        accuracy=accuracy,
        paper=paper,
        license=license,
        notes=f.get("notes", str),
    )


_RELEASE_FIELDS = (
    "url",
    "size",
    "sha256",
    "format",
    "checkpoint",
    "files",
    "other_files",
    "ema",
    "sources",
)


def _parse_release(name: str, obj: dict | None, source: str) -> Release | None:
    if obj is None:
        return None
    f = _Fields(obj, f"entry {name!r} release", source, _RELEASE_FIELDS)
    url = f.url("url")
    tarball = PurePosixPath(urlsplit(url).path).name
    if not _NAME.match(tarball):
        f.fail("url", "a URL ending in a plain file name (it names the cached download)", url)
    size = f.get("size", int, null=True)
    if size is not None and size <= 0:
        f.fail("size", "a positive byte count or null", size)
    sha256 = f.get("sha256", str, null=True)
    if sha256 is not None and not _SHA256.match(sha256):
        f.fail("sha256", "64 lowercase hex digits or null", sha256)
    fmt = f.get("format", str)
    if fmt not in FORMATS:
        f.fail("format", " or ".join(map(repr, FORMATS)), fmt)
    checkpoint = f.text("checkpoint")
    if not _safe_member(checkpoint):
        f.fail("checkpoint", "a relative path inside the tarball", checkpoint)
    files = f.paths("files")
    if fmt == "v1" and files != (checkpoint,):
        f.fail("files", f"[{checkpoint!r}] for a V1 checkpoint (one file)", list(files))
    if fmt == "v2":
        data = [m for m in files if m.startswith(checkpoint + ".data-")]
        if checkpoint + ".index" not in files or not data or len(data) + 1 != len(files):
            f.fail(
                "files",
                f"{checkpoint}.index and its {checkpoint}.data-* shards for a V2 checkpoint",
                list(files),
            )
    other = f.paths("other_files", null=True)
    if other is not None and set(other) & set(files):
        f.fail("other_files", "members not in 'files'", list(other))
    ema = f.get("ema", bool, null=True)
    return Release(url, size, sha256, fmt, checkpoint, files, other, ema, f.text("sources"))


_PREPROCESSING_FIELDS = (
    "kind",
    "input_size",
    "crop_mode",
    "crop_fraction",
    "interpolation",
    "value_scale",
    "mean",
    "std",
)


def _parse_preprocessing(name: str, obj: dict | None, source: str) -> Preprocessing | None:
    if obj is None:
        return None
    f = _Fields(obj, f"entry {name!r} preprocessing", source, _PREPROCESSING_FIELDS)
    kind = f.get("kind", str)
    if kind not in PREPROCESSING_SCHEMES:
        f.fail("kind", " or ".join(map(repr, PREPROCESSING_SCHEMES)), kind)
    size = f.get("input_size", int)
    if not 32 <= size <= 2048:
        f.fail("input_size", "an image side in pixels (32..2048)", size)
    interpolation = f.get("interpolation", str)
    if interpolation not in INTERPOLATIONS:
        f.fail("interpolation", " or ".join(map(repr, INTERPOLATIONS)), interpolation)
    values = {
        "crop_mode": f.get("crop_mode", str),
        "crop_fraction": f.get("crop_fraction", float),
        "value_scale": f.get("value_scale", float),
        "mean": f.floats("mean", 3),
        "std": f.floats("std", 3),
    }
    # The scheme's constants are facts of slim's code: a registry may not redefine them.
    for key, want in PREPROCESSING_SCHEMES[kind].items():
        if values[key] != want:
            f.fail(key, f"{want!r} for {kind} preprocessing", values[key])
    return Preprocessing(kind=kind, input_size=size, interpolation=interpolation, **values)


# The shipped registry is validated when zoo is imported: a broken file fails loudly and early.
SHIPPED = get_registry(shipped_registry_path())
