"""Bring reference data made by the TensorFlow generator into this folder, compactly.

For maintainers (the tests only read what this writes). ``SOURCE`` is a directory in the
generator's layout (``manifests/<arch>.json``, ``expected/<arch>.npz`` with one array per end-point
statistic, ``ckpt_formats/``, ``make_weights.py``); see README.md here for how it is made.

    python tests/reference/vendor.py SOURCE                 # every architecture and fixture
    python tests/reference/vendor.py SOURCE --arch mobilenet_v3_large

What changes on the way, and why it loses nothing a test reads:
- a manifest becomes ``manifests/<arch>.json.gz`` (the same JSON list, gzip-compressed);
- ``expected/<arch>.npz`` keeps ``meta``, ``logits<S>`` and ``pre_logits<S>`` as they are, and
  stacks each run's end-point statistics into five arrays in the order of ``run["end_points"]``
  (``ep<S>/shape`` padded with -1, ``mean``, ``std``, ``absmax``, ``sample``). The sampled
  indices are left out: the generator drew them with ``meta["sample_rule"]`` from the tensor's
  size, and ``tests/_reference.py`` draws them again (checked here for every end point before
  anything is written);
- ``recipe_samples.json`` records values of the generator's own ``make_weights.py`` for a few
  architectures and gains, which ``tests/test_recipe.py`` compares with ``tests/_recipe.py``.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _reference import STATS, sample_index  # noqa: E402

# The recipe check covers every kind of variable and every gain the runs use.
RECIPE_ARCHS = (
    "resnet_v1_50",
    "inception_v3",
    "mobilenet_v2_035",
    "mobilenet_v3_large",
    "nasnet_mobile",
)
RECIPE_GAINS = (0.95, 2.0**0.5, 1.1, 1.25)


def compact_expected(source: Path) -> dict[str, np.ndarray]:
    """The compact arrays of one generator npz (see the module docstring)."""
    data = np.load(source)
    meta = json.loads(str(data["meta"]))
    out = {"meta": data["meta"]}
    for run in meta["runs"]:
        s, prefix, names = run["suffix"], run["end_point_prefix"], run["end_points"]
        out["logits" + s] = data["logits" + s]
        out["pre_logits" + s] = data["pre_logits" + s]
        shapes = np.full((len(names), 4), -1, np.int32)
        for i, name in enumerate(names):
            key = f"{prefix}/{name}"
            shape = data[f"{key}/shape"]
            shapes[i, : len(shape)] = shape
            if not np.array_equal(sample_index(shape), data[f"{key}/index"]):
                raise SystemExit(f"{source}: {key}/index is not {meta['sample_rule']!r}")
        out[f"ep{s}/shape"] = shapes
        for stat in STATS:
            out[f"ep{s}/{stat}"] = np.stack([data[f"{prefix}/{n}/{stat}"] for n in names])
    return out


def recipe_samples(source: Path, archs: tuple[str, ...]) -> dict:
    """Sums and first values of the generator recipe's weights and inputs."""
    spec = importlib.util.spec_from_file_location("make_weights", source / "make_weights.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    samples = {"weights": [], "inputs": []}
    for arch in archs:
        manifest = json.loads((source / "manifests" / f"{arch}.json").read_text())
        first_of_kind = {v["name"].rsplit("/", 1)[-1]: v for v in reversed(manifest)}
        spread = manifest[:: max(1, len(manifest) // 7)]
        picked = list({v["name"]: v for v in [*first_of_kind.values(), *spread]}.values())
        for gain in RECIPE_GAINS:
            weights = generator.reference_weights(picked, 0, gain=gain)
            for name, value in weights.items():
                flat = value.reshape(-1)
                samples["weights"].append(
                    {
                        "arch": arch,
                        "gain": gain,
                        "name": name,
                        "sum": float(flat.astype(np.float64).sum()),
                        "first": [float(v) for v in flat[:4]],
                    }
                )
    for seed, batch, h, w in ((0, 2, 224, 224), (0, 2, 97, 97), (7, 1, 35, 33)):
        x = generator.reference_input(seed, batch, h, w)
        samples["inputs"].append(
            {
                "seed": seed,
                "shape": [batch, h, w, 3],
                "sum": float(x.astype(np.float64).sum()),
                "first": [float(v) for v in x.reshape(-1)[:4]],
            }
        )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--arch", action="append", help="only these (default: all)")
    args = parser.parse_args()
    source = args.source.resolve()
    archs = args.arch or sorted(p.stem for p in (source / "expected").glob("*.npz"))

    for sub in ("manifests", "expected"):
        (HERE / sub).mkdir(exist_ok=True)
    for arch in archs:
        manifest = json.loads((source / "manifests" / f"{arch}.json").read_text())
        text = json.dumps(manifest, separators=(",", ":")).encode()
        # mtime=0: the same data gives the same bytes (no spurious git diff)
        with gzip.GzipFile(HERE / "manifests" / f"{arch}.json.gz", "wb", mtime=0) as f:
            f.write(text)
        np.savez_compressed(
            HERE / "expected" / f"{arch}.npz",
            **compact_expected(source / "expected" / f"{arch}.npz"),
        )
        print(f"{arch}: {len(manifest)} variables")
    if not args.arch:
        shutil.rmtree(HERE / "ckpt_formats", ignore_errors=True)
        shutil.copytree(source / "ckpt_formats", HERE / "ckpt_formats")
        samples = recipe_samples(source, RECIPE_ARCHS)
        (HERE / "recipe_samples.json").write_text(json.dumps(samples, indent=1) + "\n")


if __name__ == "__main__":
    main()
