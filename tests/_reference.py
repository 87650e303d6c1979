"""Read the reference data kept in ``tests/reference`` (see its README.md).

``ZOO_REFERENCE_DIR`` may point elsewhere, to data in this layout or in the generator's own
(uncompressed manifests, one npz array per end-point statistic): both read the same.
Used by ``conftest.py`` and by the benchmarks that rebuild reference weights.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE = Path(
    os.environ.get("ZOO_REFERENCE_DIR", Path(__file__).resolve().parent / "reference")
).resolve()

# The end-point statistics of a run, stacked in tests/reference as ep<S>/<stat>.
STATS = ("mean", "std", "absmax", "sample")


def sample_index(shape) -> np.ndarray:
    """The flat NHWC indices of an end point's sampled values: the generator's ``sample_rule``
    ``default_rng(1234).choice(size, min(64, size), replace=False)``."""
    size = int(np.prod(shape))
    return np.random.default_rng(1234).choice(size, min(64, size), replace=False)


def reference_archs() -> list[str]:
    """Every architecture with reference data, sorted."""
    return sorted(p.name.split(".")[0] for p in (REFERENCE / "expected").glob("*.npz"))


@functools.cache
def manifest(arch: str) -> list[dict[str, Any]]:
    """The variables slim creates for ``arch`` (``[{"name", "shape", "dtype"}]``), in order."""
    packed = REFERENCE / "manifests" / f"{arch}.json.gz"
    if packed.is_file():
        return json.loads(gzip.decompress(packed.read_bytes()))
    return json.loads((REFERENCE / "manifests" / f"{arch}.json").read_text())


class Expected(Mapping):
    """An architecture's expected data under the generator's key names (``logits<S>``,
    ``ep<S>/<end point>/{shape,mean,std,absmax,index,sample}``), whichever layout it is stored in.
    """

    def __init__(self, path: Path) -> None:
        self._data = dict(np.load(path))
        self.meta = json.loads(str(self._data["meta"]))
        self._stacked = {}  # "ep<S>/<name>" -> (run's stacked prefix, row), for compact files
        for run in self.meta["runs"]:
            stacked = f"ep{run['suffix']}"
            if f"{stacked}/sample" in self._data:
                for row, name in enumerate(run["end_points"]):
                    self._stacked[f"{run['end_point_prefix']}/{name}"] = (stacked, row)

    def __getitem__(self, key: str) -> Any:
        if key in self._data:
            return self._data[key]
        point, _, stat = key.rpartition("/")
        if point not in self._stacked:
            raise KeyError(key)
        stacked, row = self._stacked[point]
        shape = self._data[f"{stacked}/shape"][row]
        shape = shape[shape >= 0].astype(np.int64)
        if stat == "shape":
            return shape
        if stat == "index":
            return sample_index(shape)
        if stat in STATS:
            return self._data[f"{stacked}/{stat}"][row]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        yield from (k for k in self._data if k.split("/")[0] not in self._stacked_prefixes())
        for point in self._stacked:
            for stat in ("shape", "index", *STATS):
                yield f"{point}/{stat}"

    def _stacked_prefixes(self) -> set[str]:
        return {stacked for stacked, _ in self._stacked.values()}

    def __len__(self) -> int:
        return sum(1 for _ in self)


@functools.cache
def expected(arch: str) -> Expected:
    return Expected(REFERENCE / "expected" / f"{arch}.npz")


def meta(arch: str) -> dict[str, Any]:
    return expected(arch).meta
