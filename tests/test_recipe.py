"""Our weight and input recipe (tests/_recipe.py, written from the specification) gives exactly
what the generator's own recipe gave: values and sums recorded from it in
tests/reference/recipe_samples.json, for several architectures, every kind of variable and every
gain the reference runs use."""

from __future__ import annotations

import json

import _recipe
import numpy as np
import pytest
from conftest import REFERENCE, manifest

SAMPLES = json.loads((REFERENCE / "recipe_samples.json").read_text())


def _by_arch() -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for sample in SAMPLES["weights"]:
        groups.setdefault(sample["arch"], []).append(sample)
    return groups


@pytest.mark.parametrize("arch", sorted(_by_arch()))
def test_weights_reproduce_the_generator_exactly(arch):
    shapes = {v["name"]: v["shape"] for v in manifest(arch)}
    samples = _by_arch()[arch]
    assert {s["gain"] for s in samples} == {0.95, 2.0**0.5, 1.1, 1.25}
    kinds = {s["name"].rsplit("/", 1)[-1] for s in samples}
    assert "weights" in kinds and len(kinds) >= 4, kinds
    for s in samples:
        value = _recipe.reference_tensor(s["name"], shapes[s["name"]], 0, s["gain"])
        assert value.dtype == np.float32
        flat = value.reshape(-1)
        assert [float(v) for v in flat[:4]] == s["first"], (s["name"], s["gain"])
        assert float(flat.astype(np.float64).sum()) == s["sum"], (s["name"], s["gain"])


@pytest.mark.parametrize("case", SAMPLES["inputs"], ids=lambda c: "x".join(map(str, c["shape"])))
def test_input_reproduces_the_generator_exactly(case):
    batch, h, w, _ = case["shape"]
    x = _recipe.reference_input(case["seed"], batch, h, w)
    assert x.dtype == np.float32 and list(x.shape) == case["shape"]
    assert [float(v) for v in x.reshape(-1)[:4]] == case["first"]
    assert float(x.astype(np.float64).sum()) == case["sum"]


def test_unknown_variable_kinds_are_refused():
    with pytest.raises(ValueError, match="no rule for 'net/conv/kernel'"):
        _recipe.reference_tensor("net/conv/kernel", (3, 3, 3, 8), 0)
