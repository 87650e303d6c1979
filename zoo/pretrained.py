"""Published weights on demand: download, verify, extract, convert and cache, once per cache.

The public functions, for users and for the warm-up script and CLI:

* :func:`download_weights` — path of a model's cached ``safetensors`` file, making it first if
  needed (download with progress, verification, safe extraction, conversion), or re-checking it
  in full with ``verify=True``;
* :func:`import_tarball` — the same from a tarball already on disk (air-gapped machines);
* :func:`cache_info` — the state of a model's cache entry, read-only, without network;
* :func:`load_pretrained_state` — the cached ``{torch name: tensor}`` state dict.

Warm path: when the entry is complete, :func:`download_weights` reads one small JSON sidecar,
the safetensors header and the file size; it takes no lock, writes nothing and never reads the
whole file (``verify=True`` checks its CRC-32C too: reads the file, about 1 s for 4 GB). So a
read-only, pre-warmed shared cache works, and the N-th load costs what
``safetensors.torch.load_file`` costs.

Integrity: the release tarball is pinned by the registry's sha256 (authenticity of the source);
the cached file carries a CRC-32C in its sidecar (corruption on disk: a checksum is enough there,
since whoever can write the cache can also rewrite its sidecar).

Cold path: the entry's inter-process lock is taken, the state re-checked (another process may
have just finished), and only then is anything downloaded or written; see :mod:`zoo.cache`
for the atomicity and locking rules and :mod:`zoo.hub` for the download.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import archive, config, hub
from .cache import SIDECAR_FORMAT, SIDECAR_VERSION, Cache, EntryState
from .convert import MAPPING_VERSION, convert_to_safetensors
from .errors import (
    ArchiveError,
    ChecksumError,
    MappingError,
    NoWeightsError,
    OfflineError,
    UnknownModelError,
    close_matches,
)
from .registry import ModelInfo, get_registry

__all__ = [
    "CacheInfo",
    "cache_info",
    "download_weights",
    "import_tarball",
    "load_pretrained_state",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

EXTRACT_FLOOR = 64 << 20  # a tarball may always decompress to this many bytes


@dataclass(frozen=True)
class CacheInfo:
    """State of one model's cache entry (see :func:`cache_info`)."""

    name: str
    path: Path  # the safetensors file (exists only when status is "complete" or "invalid")
    status: str  # "complete", "missing" or "invalid"
    problem: str | None  # why an entry is invalid
    size: int | None  # bytes of the safetensors file
    metadata: dict[str, Any] | None  # the sidecar: source URL, tarball sha256, versions, ...
    tarball: Path | None  # a verified tarball kept in the cache (ZOO_KEEP_TARBALLS=1)
    partial_bytes: int  # bytes of an interrupted download that the next download resumes

    @property
    def complete(self) -> bool:
        return self.status == "complete"


def entry_key(name: str, use_ema: bool) -> str:
    """Cache key of a model's weights (EMA shadows or raw variables give different weights)."""
    return name if use_ema else f"{name}.no_ema"


def download_weights(
    name: str,
    *,
    cache_dir: PathLike | None = None,
    offline: bool | None = None,
    progress: bool | hub.ProgressCallback = True,
    use_ema: bool = True,
    verify: bool = False,
) -> Path:
    """Path of the cached torch weights (``safetensors``) of the published model ``name``.

    Downloads, verifies, extracts and converts the release on first use; later calls only check
    the entry cheaply (see the module docstring). Safe to call from many processes at once: one
    does the work, the others wait for it and use its result.

    Args:
        name: a model of the registry, see :func:`zoo.list_pretrained`.
        cache_dir: cache directory (default ``ZOO_CACHE_DIR`` or ``~/.cache/torch/hub/slimzoo``).
        offline: never use the network (default ``ZOO_OFFLINE``); a missing entry raises
            :class:`~zoo.errors.OfflineError`.
        progress: a progress bar on a terminal (``True``), none (``False``), or a callback
            ``progress(bytes_done, bytes_total)`` for the download.
        use_ema: take the ExponentialMovingAverage shadows where the checkpoint has them.
        verify: also check the CRC-32C of the whole cached file against its sidecar (about
            1 s for 4 GB); a mismatch rebuilds the entry.

    Raises:
        zoo.UnknownModelError, zoo.NoWeightsError: no such model / no published weights.
        zoo.OfflineError, zoo.DownloadError, zoo.ArchiveError, zoo.MappingError,
        zoo.CacheError: see their documentation; every message says what to do.
    """
    return _download_weights(
        name,
        cache_dir=cache_dir,
        offline=offline,
        progress=progress,
        use_ema=use_ema,
        verify=verify,
    )[0]


def _download_weights(
    name: str,
    *,
    cache_dir: PathLike | None,
    offline: bool | None,
    progress: bool | hub.ProgressCallback,
    use_ema: bool,
    verify: bool,
) -> tuple[Path, bool]:
    """:func:`download_weights`, and whether this call made the entry (False: it was complete
    already, or another process made it while this one waited for the lock)."""
    info = released_model_info(name)
    settings = config.resolve(cache_dir=cache_dir, offline=offline)
    cache = Cache(settings.cache_dir)
    release_sha = info.release.sha256
    key = cache.key_for(entry_key(name, use_ema), release_sha)
    state = cache.inspect(key, model=name, tarball_sha256=release_sha, deep=verify)
    if state.complete:
        return cache.weights_path(key), False
    if settings.offline and not cache.tarball_path(info.release.tarball).exists():
        raise _offline_error(info, cache, state)

    cache.ensure_dirs()
    while True:
        with cache.lock(key, settings.lock_timeout, f"downloading and converting {name}"):
            if cache.key_for(entry_key(name, use_ema), release_sha) != key:
                # another process just made this key the entry of another release: ours is
                # the alternate key (never build over another release's complete entry)
                key = cache.key_for(entry_key(name, use_ema), release_sha)
                continue
            state = cache.inspect(key, model=name, tarball_sha256=release_sha, deep=verify)
            if state.complete:  # another process made it while we waited
                return cache.weights_path(key), False
            recorded = _recorded_sha256(state)
            if state.status == "invalid":
                log.warning("cache entry of %s is invalid (%s): rebuilding it", name, state.problem)
            # (the old entry stays until its replacement is committed: a failed download
            # leaves it as it was)
            cache.remove_temporaries(key)
            # The tarball's own lock (entries with and without EMA share it) is held until the
            # conversion is done and the tarball deleted, so no other entry reads it meanwhile.
            download_lock = f"download.{info.release.tarball}"
            with cache.lock(download_lock, settings.lock_timeout, f"downloading {info.name}"):
                tarball, tarball_hash, source, origin = _obtain_tarball(
                    info, cache, settings, progress, recorded
                )
                try:
                    _build_entry(
                        cache, key, info, tarball, tarball_hash, source, use_ema, origin,
                        max_extract=settings.max_extract_ratio,
                    )  # fmt: skip
                finally:
                    if not settings.keep_tarballs:
                        tarball.unlink(missing_ok=True)
            return cache.weights_path(key), True


def import_tarball(
    path: PathLike,
    name: str | None = None,
    *,
    cache_dir: PathLike | None = None,
    use_ema: bool = True,
) -> Path:
    """Convert a release tarball already on disk into the cache; returns the cached path.

    For machines without network: copy the tarball (``zoo.model_info(name).release.url``) there
    and import it. ``name`` defaults to the model whose release has this file name. The file is
    verified against the registry (size and sha256 where known; else the hash recorded by an
    earlier entry) and never modified. Never touches the network.
    """
    return _import_tarball(path, name, cache_dir=cache_dir, use_ema=use_ema)[0]


def _import_tarball(
    path: PathLike,
    name: str | None = None,
    *,
    cache_dir: PathLike | None = None,
    use_ema: bool = True,
) -> tuple[Path, bool]:
    """:func:`import_tarball`, and whether this call converted the tarball (False: the entry
    was already made from this very file, perhaps by another process while this one waited
    for the lock)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tarball at {path}")
    info = released_model_info(name) if name is not None else _model_of_tarball(path.name)
    settings = config.resolve(cache_dir=cache_dir)
    cache = Cache(settings.cache_dir)
    key = cache.key_for(entry_key(info.name, use_ema), info.release.sha256)

    size = path.stat().st_size
    cache.ensure_dirs()
    with cache.lock(key, settings.lock_timeout, f"converting {info.name}"):
        if cache.key_for(entry_key(info.name, use_ema), info.release.sha256) != key:
            # another process just made our key another release's entry: start again
            return _import_tarball(path, name, cache_dir=cache_dir, use_ema=use_ema)
        state = cache.inspect(key, model=info.name, tarball_sha256=info.release.sha256)
        expected = info.release.sha256 or _recorded_sha256(state)
        if info.release.size is not None and size != info.release.size:
            raise _not_the_release(path, info, f"expected {info.release.size} bytes, found {size}")
        # hashed before anything is extracted: a file that is not the release writes nothing
        sha256 = hub.sha256_of_file(path)
        if expected is not None and sha256 != expected:
            raise _not_the_release(path, info, f"expected sha256 {expected}, found {sha256}")
        made_from = state.sidecar.get("tarball_sha256") if state.complete else None
        if made_from and made_from == sha256:
            return cache.weights_path(key), False  # already imported from this very file
        source = "registry" if info.release.sha256 else ("recorded" if expected else "observed")
        cache.remove_temporaries(key)  # (an old entry stays until the new one is committed)
        _build_entry(
            cache, key, info, path, (sha256, size), source, use_ema, str(path),
            max_extract=settings.max_extract_ratio,
        )  # fmt: skip
    return cache.weights_path(key), True


def _not_the_release(path: Path, info: ModelInfo, problem: str) -> ChecksumError:
    return ChecksumError(
        f"{path} is not the {info.name} release {info.release.tarball}: {problem}. Copy the "
        "original file again (or import it with the registry that lists it: ZOO_REGISTRY)."
    )


def cache_info(
    name: str,
    *,
    cache_dir: PathLike | None = None,
    use_ema: bool = True,
    verify: bool = False,
) -> CacheInfo:
    """What the cache holds for ``name`` (read-only, no network, no lock).

    ``verify=True`` also hashes the cached file and compares it with its sidecar.
    """
    info = released_model_info(name)
    cache = Cache(config.resolve(cache_dir=cache_dir).cache_dir)
    key = cache.key_for(entry_key(name, use_ema), info.release.sha256)
    state = cache.inspect(key, model=name, tarball_sha256=info.release.sha256, deep=verify)
    weights = cache.weights_path(key)
    tarball = cache.tarball_path(info.release.tarball)
    partial = cache.partial_path(info.release.tarball)
    return CacheInfo(
        name=name,
        path=weights,
        status=state.status,
        problem=state.problem,
        size=weights.stat().st_size if weights.exists() else None,
        metadata=dict(state.sidecar) if state.sidecar else None,
        tarball=tarball if tarball.exists() else None,
        partial_bytes=partial.stat().st_size if partial.exists() else 0,
    )


def load_pretrained_state(name: str, **kwargs: Any) -> dict[str, torch.Tensor]:
    """The cached state dict of ``name`` (``safetensors``, never pickle); ``kwargs`` as for
    :func:`download_weights`."""
    from safetensors.torch import load_file

    return load_file(download_weights(name, **kwargs))


# --------------------------------------------------------------------------- internals


def released_model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; :class:`NoWeightsError` if it has no published weights."""
    registry = get_registry()
    if name not in registry.models:
        import architectures

        if name in architectures.list_architectures():
            raise NoWeightsError(
                f"{name!r} is a network but the weights registry ({registry.source}) has no "
                f"release for it. Build it untrained (pretrained=False) or load your own "
                f"checkpoint with zoo.load({name!r}, checkpoint=...)."
            )
        registry.get(name)  # raises UnknownModelError with close matches
    info = registry.models[name]
    if info.release is None:
        raise NoWeightsError(
            f"no pretrained weights were published for {name!r}: build it untrained "
            f"(pretrained=False) or load your own checkpoint with zoo.load({name!r}, "
            f"checkpoint=...). Models with published weights: "
            f"{', '.join(registry.names(with_weights=True))}."
        )
    return info


def _model_of_tarball(file_name: str) -> ModelInfo:
    registry = get_registry()
    matches = registry.by_tarball(file_name)
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(m.name for m in matches)
        raise UnknownModelError(
            f"{file_name} is the release of several models ({names}): pass name=..."
        )
    tarballs = sorted(i.release.tarball for i in registry.models.values() if i.release)
    raise UnknownModelError(
        f"no model's release is named {file_name!r}.{close_matches(file_name, tarballs)} "
        "Pass name=... to import it as a given model's release."
    )


def _recorded_sha256(state: EntryState) -> str | None:
    """The tarball hash an earlier entry recorded (checked on re-downloads when the registry
    has none): trust on first use, then pinned."""
    if state.sidecar and isinstance(state.sidecar.get("tarball_sha256"), str):
        return state.sidecar["tarball_sha256"]
    return None


def _obtain_tarball(
    info: ModelInfo,
    cache: Cache,
    settings: config.Settings,
    progress: bool | hub.ProgressCallback,
    recorded: str | None,
) -> tuple[Path, tuple[str, int], str, str]:
    """A verified tarball in the cache: kept from earlier, or downloaded now (call with the
    tarball's lock held).

    Returns its path, ``(sha256, size)``, where the expected hash came from, and the URL (or
    file) it came from.
    """
    release = info.release
    expected = release.sha256 or recorded
    source = "registry" if release.sha256 else ("recorded" if recorded else "observed")
    dest = cache.tarball_path(release.tarball)
    url = config.apply_mirror(release.url, settings.mirror)
    if dest.exists():
        size, sha256 = dest.stat().st_size, hub.sha256_of_file(dest)
        if (release.size in (None, size)) and expected in (None, sha256):
            return dest, (sha256, size), source, str(dest)
        log.warning("%s does not match the registry: deleting it", dest)
        dest.unlink()
    if settings.offline:
        raise OfflineError(
            f"{info.name}: the kept tarball {dest} was invalid and offline mode is on; "
            "copy a good one and use zoo.import_tarball(path)"
        )
    log.info("downloading %s", url)
    got = hub.download(
        url,
        dest,
        settings=settings,
        size=release.size,
        sha256=expected,
        progress=progress,
        description=info.name,
    )
    return got.path, (got.sha256, got.size), source, url


def _build_entry(
    cache: Cache,
    key: str,
    info: ModelInfo,
    tarball: Path,
    tarball_hash: tuple[str | None, int],
    sha256_source: str,
    use_ema: bool,
    origin: str,
    expected_sha256: str | None = None,
    max_extract: float | None = None,
) -> None:
    """Extract the checkpoint, convert it, and commit the entry (with the entry lock held).

    ``tarball_hash`` is ``(sha256, size)``; a ``None`` sha256 is computed while extracting and
    checked against ``expected_sha256`` before anything is converted. ``max_extract``: the
    most the tarball may decompress to, as a multiple of its size (at least ``EXTRACT_FLOOR``).
    """
    from . import __version__
    from .checkpoint import open_checkpoint

    release = info.release
    sha256, size = tarball_hash
    workdir = cache.temp_dir(key)
    weights_tmp = cache.temp_file(key, ".safetensors")
    try:
        digest = hashlib.sha256() if sha256 is None else None
        try:
            limit = None if max_extract is None else max(int(max_extract * size), EXTRACT_FLOOR)
            extracted = archive.extract_members(
                tarball,
                release.files,
                workdir,
                digest=digest,
                max_bytes=limit,
                known=release.other_files or (),
            )
        except ArchiveError:
            # a file that is not the release at all: say that, not what it lacks
            if digest is not None and expected_sha256 is not None:
                found = hub.sha256_of_file(tarball)
                if found != expected_sha256:
                    problem = f"expected sha256 {expected_sha256}, found {found}"
                    raise _not_the_release(tarball, info, problem) from None
            raise
        if digest is not None:
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                problem = f"expected sha256 {expected_sha256}, found {sha256}"
                raise _not_the_release(tarball, info, problem)
        log.info("converting %s (%s)", info.name, ", ".join(p.name for p in extracted.values()))
        checkpoint = open_checkpoint(workdir.joinpath(*release.checkpoint.split("/")))
        try:
            conversion = convert_to_safetensors(
                checkpoint,
                info.architecture,
                weights_tmp,
                num_classes=info.num_classes,
                use_ema=use_ema,
                metadata={"format": "pt", "slimzoo_model": info.name, "source_sha256": sha256},
            )
        except MappingError as exc:
            raise MappingError(
                f"the release of {info.name} ({release.tarball}, sha256 {sha256}) does not fit "
                f"the network {info.architecture!r} with {info.num_classes} classes; check the "
                f"registry entry (ZOO_REGISTRY?). {exc}"
            ) from None
        finally:
            close = getattr(checkpoint, "close", None)
            if callable(close):
                close()
        sidecar = {
            "format": SIDECAR_FORMAT,
            "format_version": SIDECAR_VERSION,
            "model": info.name,
            "architecture": info.architecture,
            "num_classes": info.num_classes,
            "use_ema": use_ema,
            "ema_variables": len(conversion.ema),
            "ema_shadows_used": list(conversion.ema),
            "ignored_tensors": list(conversion.ignored),
            "skipped_tensors": dict(conversion.reasons),  # ignored tensor → why
            "absent_tensors": list(conversion.absent),  # of a head the release lacks in part
            "dropped_heads": list(conversion.dropped_heads),  # not in the cached weights
            "source_url": release.url,
            "obtained_from": origin,  # the URL after ZOO_MIRROR, or the imported file
            "tarball": release.tarball,
            "tarball_sha256": sha256,
            "tarball_sha256_source": sha256_source,
            "tarball_size": size,
            "checkpoint": release.checkpoint,
            "checkpoint_format": release.format,
            "tensors": conversion.tensors,
            "safetensors_size": conversion.size,
            "safetensors_crc32c": conversion.crc32c,  # detects corruption (verify=True)
            "package_version": __version__,
            "mapping_version": MAPPING_VERSION,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        cache.commit(key, weights_tmp, sidecar)
        log.info("cached %s in %s", info.name, cache.weights_path(key))
    finally:
        weights_tmp.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def _offline_error(info: ModelInfo, cache: Cache, state: EntryState) -> OfflineError:
    why = f" (the entry is invalid: {state.problem})" if state.status == "invalid" else ""
    return OfflineError(
        f"{info.name}: no usable weights in the cache {cache.root}{why}, and offline mode is on "
        "(ZOO_OFFLINE=1 or offline=True), so nothing is downloaded. Warm the cache first: run "
        f"`slimzoo-warm {info.name}` with network access and the same ZOO_CACHE_DIR, or copy "
        f"the tarball ({info.release.url}) onto this machine and run "
        f"zoo.import_tarball('{info.release.tarball}')."
    )
