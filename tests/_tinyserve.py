"""Several tiny-network releases served on 127.0.0.1 with a ``ZOO_REGISTRY`` listing them.

For the warm-up and torch.hub tests: registry models ``slimzoo_tiny``, ``slimzoo_tiny_b``, ...
all of architecture ``slimzoo_tiny`` (see ``_tinynet``), each with its own tarball name, served at
``/models/<tarball>``. The tarballs hold the same checkpoint (so one expected state dict fits all)
plus ``padding`` bytes of ``eval.graph`` (a throttled download then lasts long enough to overlap
or be interrupted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import _tinynet
import numpy as np
from _http import FileServer
from _tarballs import Tarball, make_tarball, write_checkpoint, write_registry

__all__ = ["TinyReleases", "build_tiny_tarball", "tarball_name"]


def tarball_name(model: str) -> str:
    return f"{model}_2017_01_01.tar.gz"


def build_tiny_tarball(directory: Path, padding: int = 0) -> tuple[Tarball, dict[str, np.ndarray]]:
    """A tiny release tarball in ``directory`` and the (EMA) weights a load of it must give."""
    tensors, ema = _tinynet.release_tensors()
    write_checkpoint(tensors, directory / "model.ckpt", "v2")
    members: dict[str, bytes | Path] = {
        "eval.graph": np.random.default_rng(1).bytes(padding),
        "model.ckpt.index": directory / "model.ckpt.index",
        "model.ckpt.data-00000-of-00001": directory / "model.ckpt.data-00000-of-00001",
    }
    return make_tarball(directory / "tiny.tar.gz", members, level=0), ema


@dataclass
class TinyReleases:
    """``models`` served by ``server`` from ``tarball``; :meth:`write` makes the registry."""

    server: FileServer
    tarball: Tarball
    models: tuple[str, ...]

    def __post_init__(self) -> None:
        for model in self.models:
            self.server.add(self.path(model), self.tarball.path)

    @staticmethod
    def path(model: str) -> str:
        return f"/models/{tarball_name(model)}"

    def gets(self, model: str) -> int:
        return len(self.server.gets(self.path(model)))

    def write(self, registry: Path, *, urls: dict[str, str] | None = None) -> Path:
        """The registry: the tiny models (``urls`` overrides some URLs), plus ``resnet_v1_200``
        (a network without weights) and ``vgg_16`` as shipped."""
        urls = urls or {}
        extra = {
            m: _tinynet.registry_entry(
                urls.get(m, self.server.url(self.path(m))), self.tarball.size, self.tarball.sha256
            )
            for m in self.models
        }
        return write_registry(registry, {"resnet_v1_200": None, "vgg_16": None}, extra)
