"""``weights_registry.json`` → :class:`~zoo.registry_schema.Registry`, checking every field.

A problem raises :class:`~zoo.errors.RegistryError` naming the file, the entry and the field,
with what was expected and what was found.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from .errors import RegistryError
from .registry_schema import (
    FORMATS,
    INTERPOLATIONS,
    PREPROCESSING_SCHEMES,
    SCHEMA_VERSION,
    Accuracy,
    ModelInfo,
    Paper,
    Preprocessing,
    Registry,
    Release,
)

__all__ = ["DuplicateKey", "no_duplicate_keys", "parse_registry"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DuplicateKey(Exception):
    pass


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
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


def parse_registry(document: Any, source: str) -> Registry:
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
        top1, top5 = a.get("top1", float), a.get("top5", float, null=True)
        if not 0 < top1 <= 100:
            a.fail("top1", "a percentage in (0, 100]", top1)
        if top5 is not None and not top1 <= top5 <= 100:  # null: not published (MobileNet v3)
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
