"""Release tarballs for the pipeline tests, built like the published ones, and a test registry.

* :func:`release_tarball` writes a model's checkpoint from the reference weights in the layout of
  its real release (``zoo.model_info(name).release``: the V1 file or V2 ``model.ckpt.*`` files,
  plus the other files the release is known to hold, e.g. resnet_v2's ``eval.graph``), tars and
  gzips it, and returns its path, size and sha256.
* :func:`write_registry` writes a ``ZOO_REGISTRY`` file: the shipped entries with the release URL,
  size and sha256 replaced (127.0.0.1 URLs and the test tarballs' real hashes).
* :func:`make_tarball` / :func:`unsafe_tarball` build arbitrary and hostile archives.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import zoo
from zoo.registry import shipped_registry_path

__all__ = [
    "Tarball",
    "describe",
    "make_tarball",
    "release_tarball",
    "sha256_file",
    "unsafe_tarball",
    "write_registry",
]


@dataclass(frozen=True)
class Tarball:
    path: Path
    size: int
    sha256: str


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def describe(path: Path) -> Tarball:
    """Path, size and sha256 of an existing file."""
    return Tarball(path, path.stat().st_size, sha256_file(path))


def make_tarball(
    path: Path, members: Mapping[str, bytes | Path], *, gzip: bool = True, level: int = 1
) -> Tarball:
    """A tarball of regular files ``{member name: bytes or file to copy}``, in this order.

    ``level`` is the gzip level; 0 (stored blocks, still a gzip stream with its CRC) keeps the
    hundreds of MB of random test weights fast to pack: they would not compress anyway.
    """
    options = {"compresslevel": level} if gzip else {}
    with tarfile.open(path, "w:gz" if gzip else "w", **options) as tar:
        for name, content in members.items():
            if isinstance(content, Path):
                tar.add(content, arcname=name, recursive=False)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(content))
    return describe(path)


def unsafe_tarball(path: Path, kind: str, wanted: str = "model.ckpt") -> Tarball:
    """A tarball holding ``wanted`` plus one hostile member of ``kind``: ``traversal``
    (``../escape``), ``absolute`` (``/tmp/...``), ``symlink``, ``hardlink``, ``device``, ``fifo``,
    or ``wanted_symlink`` (the wanted member itself is a link to a file outside)."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, data: bytes = b"x", **attrs) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data) if attrs.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
            for key, value in attrs.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if info.size else None)

        if kind != "wanted_symlink":
            add(wanted, b"checkpoint bytes")
        if kind == "traversal":
            add("../escape.txt", b"escaped")
        elif kind == "nested_traversal":
            add("dir/../../escape.txt", b"escaped")
        elif kind == "absolute":
            add(str(path.parent / "absolute_escape.txt"), b"escaped")
        elif kind == "symlink":
            add("link", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "wanted_symlink":
            add(wanted, type=tarfile.SYMTYPE, linkname="/etc/passwd")
        elif kind == "hardlink":
            add("hard", type=tarfile.LNKTYPE, linkname=wanted)
        elif kind == "device":
            add("null", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        elif kind == "fifo":
            add("pipe", type=tarfile.FIFOTYPE)
        else:
            raise ValueError(kind)
    return describe(path)


# --------------------------------------------------------------------------- real layouts


def release_tensors(
    arch: str, *, ema: bool = False, slots: tuple[str, ...] = (), gain: float | None = None
) -> dict[str, np.ndarray]:
    """What the published checkpoint of ``arch`` holds: the reference weights, ``global_step``
    and, for vgg and resnet_v1, the unused ``<scope>/mean_rgb``.

    ``ema``: as the MobileNet v2 releases, every trainable variable also has an
    ``/ExponentialMovingAverage`` shadow. The shadow holds the reference weights and the raw
    variable something else, so only a load that takes the shadows gives the reference logits.
    ``slots``: optimizer slots of every trainable variable (``("RMSProp", "RMSProp_1")`` as in
    the MobileNet v2 releases).
    """
    from conftest import reference_weights

    tensors = reference_weights(arch, gain)
    for name in list(tensors):
        if name.endswith(("moving_mean", "moving_variance")):  # not trainable
            continue
        if ema:
            tensors[f"{name}/ExponentialMovingAverage"] = tensors[name]
            tensors[name] = tensors[name] + np.float32(1.0)
        for slot in slots:
            tensors[f"{name}/{slot}"] = np.full_like(tensors[name], 0.01)
    if arch.startswith(("vgg_", "resnet_v1_")):
        tensors[f"{arch}/mean_rgb"] = np.array([123.68, 116.78, 103.94], np.float32)
    tensors["global_step"] = np.array(123456, np.int64)
    return tensors


def write_checkpoint(tensors: Mapping[str, np.ndarray], path: Path, fmt: str) -> None:
    """A TF checkpoint at ``path`` (V1 file or V2 prefix) with zoo's own writer."""
    from zoo.checkpoint import write_v1, write_v2

    (write_v1 if fmt == "v1" else write_v2)(path, dict(tensors))


def release_tarball(
    name: str,
    directory: Path,
    *,
    tensors: Mapping[str, np.ndarray] | None = None,
    file_name: str | None = None,
    writer: Callable[[Mapping[str, np.ndarray], Path, str], object] = write_checkpoint,
) -> Tarball:
    """The release tarball of registry model ``name``, in its published layout (the registry's
    ``files`` and, as placeholders, its ``other_files``), with the reference weights (plus EMA
    shadows where the release has them), or ``tensors``. ``writer(tensors, path, format)``
    writes the checkpoint (zoo's own writer; the tests of real layouts pass TensorFlow's)."""
    info = zoo.model_info(name)
    release = info.release
    work = directory / f"{name}.contents"
    work.mkdir(parents=True, exist_ok=True)
    if tensors is None:
        tensors = release_tensors(info.architecture, ema=bool(release.ema))
    checkpoint = work.joinpath(*release.checkpoint.split("/"))
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    writer(tensors, checkpoint, release.format)
    members: dict[str, bytes | Path] = {}
    for other in release.other_files or ():  # e.g. resnet_v2's eval.graph, before the checkpoint
        members[other] = f"dummy {other} of the test release\n".encode()
    for member in release.files:
        members[member] = work.joinpath(*member.split("/"))
    tarball = make_tarball(directory / (file_name or release.tarball), members, level=0)
    for member in release.files:
        work.joinpath(*member.split("/")).unlink()
    return tarball


def write_registry(
    path: Path,
    releases: Mapping[str, Mapping[str, object] | None],
    extra: Mapping[str, dict] | None = None,
) -> Path:
    """A registry file with the shipped entries of ``releases``' models, their ``release``
    fields updated from ``releases[name]`` (e.g. ``url``, ``size``, ``sha256``; ``None`` keeps
    the entry as shipped), plus the complete ``extra`` entries."""
    shipped = json.loads(shipped_registry_path().read_text())
    models = {}
    for name, changes in releases.items():
        entry = copy.deepcopy(shipped["models"][name])
        if changes:
            entry["release"].update(changes)
        models[name] = entry
    models.update(extra or {})
    document = {**shipped, "models": models}
    path.write_text(json.dumps(document, indent=1))
    return path
