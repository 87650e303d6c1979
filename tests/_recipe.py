"""The deterministic weights and input of the reference runs, written from the recipe's
specification (tests/reference/README.md, "Weight and input recipe").

Pure numpy: every tensor is a function of ``(seed, variable name, shape, gain)`` alone, so a test
rebuilds exactly the weights TensorFlow was given when it produced ``expected/<arch>.npz``.
``tests/test_recipe.py`` checks this module against values recorded from the generator's own recipe.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

GAIN = 0.95  # the main runs (suffix "" and "_<H>x<W>")
HG_GAIN = math.sqrt(2.0)  # the "_hg" runs of vgg, inception and mobilenet v1/v2/v3_small
NAS_HG_GAIN = 1.1  # the "_hg" runs of nasnet/pnasnet and the minimalistic MobileNet v3
# mobilenet_v3_large's "_hg" runs use 1.25: a run's gain is always read from its meta.


def _fan_in(kind: str, shape: tuple[int, ...]) -> int:
    if kind == "depthwise_weights":  # [kh, kw, in, multiplier]: one kh x kw window per output
        return shape[0] * shape[1]
    return math.prod(shape[:-1])  # conv HWIO and FC [in, out]: everything but the outputs


def reference_tensor(name: str, shape: Iterable[int], seed: int, gain: float = GAIN) -> np.ndarray:
    """The float32 value of the variable ``name``: a draw chosen by its last path component."""
    shape = tuple(int(d) for d in shape)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    kind = name.rsplit("/", 1)[-1]
    if kind in ("weights", "pointwise_weights", "depthwise_weights"):
        value = rng.standard_normal(shape) * (gain / math.sqrt(_fan_in(kind, shape)))
    elif kind in ("biases", "beta", "moving_mean"):
        value = 0.1 * rng.standard_normal(shape)
    elif kind == "gamma":
        value = 1.0 + 0.1 * rng.standard_normal(shape)
    elif kind == "moving_variance":
        value = rng.uniform(0.5, 1.5, shape)
    else:
        raise ValueError(f"the recipe has no rule for {name!r} (last component {kind!r})")
    return value.astype(np.float32)


def reference_weights(
    manifest: Iterable[Mapping[str, Any]], seed: int, gain: float = GAIN
) -> dict[str, np.ndarray]:
    """``{tf_name: float32 array}`` for every variable of a manifest, in its order."""
    return {v["name"]: reference_tensor(v["name"], v["shape"], seed, gain) for v in manifest}


def reference_input(seed: int, batch: int, height: int, width: int) -> np.ndarray:
    """The input batch, NHWC float32, uniform in [-1, 1)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (batch, height, width, 3)).astype(np.float32)
