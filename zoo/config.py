"""Settings of the pretrained-weights pipeline: environment variables, overridable per call.

=====================  ==========================================  =============================
environment variable   meaning                                     default
=====================  ==========================================  =============================
``ZOO_CACHE_DIR``      where converted weights (and downloads)     ``torch.hub.get_dir()/slimzoo``
                       are cached; may be shared by many           (``~/.cache/torch/hub/slimzoo``)
                       processes and machines
``ZOO_MIRROR``         base URL of an internal mirror; replaces    none
                       ``http://download.tensorflow.org/models/``
                       and ``https://storage.googleapis.com/``
``ZOO_OFFLINE``        ``1``: never touch the network              ``0``
``ZOO_REGISTRY``       a JSON file replacing the shipped           the shipped one
                       ``weights_registry.json``
``ZOO_TIMEOUT``        ``CONNECT[,READ]`` seconds per request      ``10,60``
``ZOO_RETRIES``        retries after a connection error, a         ``5``
                       timeout or an HTTP 5xx
``ZOO_BACKOFF``        first wait between retries (doubled each    ``1``
                       time, at most 60 s)
``ZOO_MIN_SPEED``      ``BYTES_PER_S[,WINDOW_S]``: a download      ``1024,60``
                       slower than this over a window is dropped
                       (and retried, resuming); ``0`` turns it off
``ZOO_MAX_DOWNLOAD``   most MiB a download of unknown size may     ``4096``
                       take (the registry has no size for it)
``ZOO_MAX_EXTRACT_``   a tarball may decompress to this many       ``20``
``RATIO``              times its size (at least 64 MiB); more is
                       refused as a decompression bomb
``ZOO_LOCK_TIMEOUT``   seconds to wait for another process that    ``3600``
                       downloads or converts the same model
``ZOO_KEEP_TARBALLS``  ``1``: keep verified tarballs in            ``0``
                       ``<cache>/downloads`` after conversion
=====================  ==========================================  =============================

Keyword arguments of :func:`zoo.load` / :func:`zoo.download_weights` (``cache_dir=``,
``offline=``) take precedence over the environment, which is read at each call (so a test or a
launcher script can change it at run time).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["MIRRORED_BASES", "Settings", "apply_mirror", "default_cache_dir", "resolve"]

# URL prefixes that ZOO_MIRROR replaces; what follows them is the path kept on the mirror, e.g.
#   http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz
#     -> <mirror>/vgg_16_2016_08_28.tar.gz
#   https://storage.googleapis.com/mobilenet_v2/checkpoints/mobilenet_v2_1.0_224.tgz
#     -> <mirror>/mobilenet_v2/checkpoints/mobilenet_v2_1.0_224.tgz
# (the longest matching prefix wins, so download.tensorflow.org's files served from Google Cloud
# Storage map to the same mirror path as the canonical ones).
MIRRORED_BASES = (
    "https://storage.googleapis.com/download.tensorflow.org/models/",
    "http://download.tensorflow.org/models/",
    "https://download.tensorflow.org/models/",
    "https://storage.googleapis.com/",
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one call (see the module docstring for each field's variable)."""

    cache_dir: Path
    mirror: str | None = None
    offline: bool = False
    registry: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    min_speed: float = 1024.0  # bytes per second, averaged over speed_window; 0: no rule
    speed_window: float = 60.0
    max_download: int = 4096 << 20  # bytes, for a download whose size is unknown
    max_extract_ratio: float = 20.0  # decompressed / compressed bytes of a tarball
    lock_timeout: float = 3600.0
    keep_tarballs: bool = False

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)


def default_cache_dir() -> Path:
    """``<torch hub dir>/slimzoo``; torch's dir follows ``TORCH_HOME`` / ``XDG_CACHE_HOME``."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "slimzoo"


def resolve(
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    mirror: str | None = None,
) -> Settings:
    """Settings from the environment, with the non-``None`` keyword arguments taking precedence."""
    env = os.environ
    connect, read = _timeouts(env.get("ZOO_TIMEOUT", ""))
    min_speed, window = _min_speed(env.get("ZOO_MIN_SPEED", ""))
    registry = env.get("ZOO_REGISTRY") or None
    return Settings(
        cache_dir=Path(cache_dir or env.get("ZOO_CACHE_DIR") or default_cache_dir()).expanduser(),
        mirror=_mirror(mirror if mirror is not None else env.get("ZOO_MIRROR", "")),
        offline=offline if offline is not None else _flag("ZOO_OFFLINE"),
        registry=Path(registry).expanduser() if registry else None,
        connect_timeout=connect,
        read_timeout=read,
        retries=int(_number("ZOO_RETRIES", 5, minimum=0)),
        backoff=_number("ZOO_BACKOFF", 1.0, minimum=0),
        min_speed=min_speed,
        speed_window=window,
        max_download=int(_number("ZOO_MAX_DOWNLOAD", 4096, minimum=0) * (1 << 20)),
        max_extract_ratio=_number("ZOO_MAX_EXTRACT_RATIO", 20.0, minimum=1),
        lock_timeout=_number("ZOO_LOCK_TIMEOUT", 3600.0, minimum=0),
        keep_tarballs=_flag("ZOO_KEEP_TARBALLS"),
    )


def apply_mirror(url: str, mirror: str | None) -> str:
    """``url`` with its known public base replaced by ``mirror`` (unchanged without a mirror, or
    for a URL of another host, e.g. one a company's ``ZOO_REGISTRY`` already points inside)."""
    if not mirror:
        return url
    for base in MIRRORED_BASES:
        if url.startswith(base):
            return mirror + url[len(base) :]
    return url


def _mirror(value: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise ConfigError(
            f"ZOO_MIRROR must be an http(s) base URL such as https://mirror.example/slim/, "
            f"found {value!r}"
        )
    return value if value.endswith("/") else value + "/"


def _flag(variable: str) -> bool:
    value = os.environ.get(variable, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{variable} must be 1 or 0 (or true/false), found {value!r}")


def _number(variable: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum:  # also rejects nan
        raise ConfigError(f"{variable} must be a number >= {minimum}, found {raw!r}")
    return value


def _timeouts(raw: str) -> tuple[float, float]:
    raw = raw.strip()
    if not raw:
        return 10.0, 60.0
    parts = raw.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(v > 0 for v in values):
        raise ConfigError(
            f"ZOO_TIMEOUT must be CONNECT or CONNECT,READ in seconds (e.g. 10,60), found {raw!r}"
        )
    return values[0], values[-1]


def _min_speed(raw: str) -> tuple[float, float]:
    raw = raw.strip()
    if not raw:
        return 1024.0, 60.0
    try:
        values = [float(p) for p in raw.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not values[0] >= 0 or not values[-1] > 0:
        raise ConfigError(
            "ZOO_MIN_SPEED must be BYTES_PER_SECOND or BYTES_PER_SECOND,WINDOW_SECONDS (e.g. "
            f"1024,60; 0 turns the rule off), found {raw!r}"
        )
    return values[0], (values[1] if len(values) == 2 else 60.0)
