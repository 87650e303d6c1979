"""Shared test helpers: the reference data of tests/reference and how to compare against it.

The data lies in the repository (``tests/reference``, see its README.md; ``ZOO_REFERENCE_DIR``
may point to other data in the same or the generator's layout), and the weights and inputs of
the reference runs are rebuilt by ``tests/_recipe.py``. Missing reference data fails the run,
it never skips.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import _recipe
import numpy as np
import pytest
import torch
from _reference import REFERENCE, expected, manifest, meta, reference_archs

__all__ = ["REFERENCE", "expected", "manifest", "meta", "reference_archs"]

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def pytest_configure(config: pytest.Config) -> None:
    if not (REFERENCE / "expected").is_dir() or not reference_archs():
        raise pytest.UsageError(
            f"reference data not found at {REFERENCE}: tests/reference is part of the "
            "repository (check out the whole tree), or set ZOO_REFERENCE_DIR to such data"
        )


def make_weights() -> ModuleType:
    """The weight and input recipe (``tests/_recipe.py``: ``reference_weights``,
    ``reference_input``, ``GAIN``, ``HG_GAIN``, ``NAS_HG_GAIN``)."""
    return _recipe


@dataclass(frozen=True)
class Run:
    """One reference run of an architecture: the weights, input and kwargs used in TF."""

    arch: str
    suffix: str
    input_hw: tuple[int, int]
    kwargs: dict[str, Any]
    gain: float
    end_points: tuple[str, ...]
    prefix: str

    @property
    def id(self) -> str:
        return f"{self.arch}{self.suffix or '_default'}"


# One network per family module, for checks where depth and width change no code path: BN +
# ReLU (resnet_v1), biased convs and pre-activations (resnet_v2), no BN and a whole-map fc6
# (vgg), TF 'SAME' on stride 2 at even sizes (inception_v1/v2), VALID strides (v3/v4/IRv2),
# depthwise + ReLU6 (mobilenets), hard-swish, squeeze-excite and a bias-only 1x1 conv after the
# pool (mobilenet_v3), separable convs (nasnet/pnasnet).
ONE_PER_FAMILY = (
    "resnet_v1_50",
    "resnet_v2_50",
    "vgg_16",
    "inception_v1",
    "inception_v2",
    "inception_v3",
    "inception_v4",
    "inception_resnet_v2",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "nasnet_mobile",
    "pnasnet_mobile",
)


def runs(arch: str) -> list[Run]:
    return [
        Run(
            arch=arch,
            suffix=r["suffix"],
            input_hw=tuple(r["input_hw"]),
            kwargs=dict(r["kwargs"]),
            gain=float(r["gain"]),
            end_points=tuple(r["end_points"]),
            prefix=r["end_point_prefix"],
        )
        for r in meta(arch)["runs"]
    ]


@functools.lru_cache(maxsize=4)
def _weights(arch: str, gain: float) -> dict[str, np.ndarray]:
    return make_weights().reference_weights(manifest(arch), meta(arch)["seed"], gain=gain)


def reference_weights(arch: str, gain: float | None = None) -> dict[str, np.ndarray]:
    """The TF-named float32 weights of the reference runs (a fresh dict; arrays shared)."""
    return dict(_weights(arch, make_weights().GAIN if gain is None else gain))


def reference_input(arch: str, hw: tuple[int, int]) -> torch.Tensor:
    """The reference input batch as NCHW float32 (the npz data is NHWC)."""
    m = meta(arch)
    x = make_weights().reference_input(m["seed"], m["batch"], hw[0], hw[1])
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def tolerance(want: np.ndarray | float) -> float:
    """The parity tolerance of the reference README: 1e-4 * max(1, max|expected|)."""
    return 1e-4 * max(1.0, float(np.max(np.abs(want))))


def compare_end_points(run: Run, points: dict[str, torch.Tensor]) -> list[str]:
    """Differences between our end points and TF's, in slim order (empty list when equal).

    Shapes are compared in NHWC; the 64 sampled values of each end point must agree within
    1e-4 * max(1, absmax); mean and std within the same bound.
    """
    ref = expected(run.arch)
    problems = []
    for name in run.end_points:
        key = f"{run.prefix}/{name}"
        if name not in points:
            problems.append(f"{name}: missing (have {list(points)[:5]}...)")
            continue
        t = points[name]
        t = t.permute(0, 2, 3, 1) if t.dim() == 4 else t
        want_shape = tuple(int(d) for d in ref[f"{key}/shape"])
        if tuple(t.shape) != want_shape:
            problems.append(f"{name}: shape {tuple(t.shape)} (NHWC), TF has {want_shape}")
            continue
        flat = t.reshape(-1).double().numpy()
        tol = 1e-4 * max(1.0, float(ref[f"{key}/absmax"]))
        got = flat[ref[f"{key}/index"]]
        err = float(np.max(np.abs(got - ref[f"{key}/sample"].astype(np.float64))))
        if err > tol:
            problems.append(f"{name}: max |sample diff| {err:.3g} > {tol:.3g}")
        elif abs(flat.mean() - float(ref[f"{key}/mean"])) > tol:
            problems.append(f"{name}: mean {flat.mean():.6g} vs TF {float(ref[f'{key}/mean']):.6g}")
    return problems


# --------------------------------------------------------------------------- TensorFlow (tf extra)


def tf_installed() -> bool:
    return all(
        importlib.util.find_spec(m) is not None for m in ("tensorflow", "tf_slim", "tf_keras")
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``tf`` need the tf extra. CI installs it and sets ZOO_REQUIRE_TF=1, so there
    a missing TensorFlow is an error; on a machine without it they are reported as not run."""
    if tf_installed():
        return
    tf_items = [item for item in items if "tf" in item.keywords]
    if not tf_items:
        return
    if os.environ.get("ZOO_REQUIRE_TF"):
        raise pytest.UsageError(
            f"ZOO_REQUIRE_TF is set but TensorFlow/tf_slim/tf_keras are not installed "
            f"({len(tf_items)} tests need them): see the README's TensorFlow set-up"
        )
    reason = "needs the tf extra (TensorFlow cross-check); see the README"
    for item in tf_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def tensorflow():
    """``(tf, tf_slim)`` with graph mode ready (torch imported first, tf_keras alias applied)."""
    from zoo._tensorflow import import_tensorflow

    return import_tensorflow()
