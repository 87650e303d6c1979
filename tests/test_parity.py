"""Numerical parity with the original slim code, for every architecture and every reference run.

The weights are rebuilt with the reference's numpy recipe and go in through the public
``zoo.load(name, checkpoint={tf_name: array})``, so these tests exercise the TF-name mapping too.
On a mismatch, the first diverging slim end point is named.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import (
    compare_end_points,
    expected,
    reference_archs,
    reference_input,
    reference_weights,
    runs,
    tolerance,
)

import zoo

PORTED = [a for a in reference_archs() if a in zoo.list_models()]
RUNS = [r for a in PORTED for r in runs(a)]


@pytest.mark.parametrize("run", RUNS, ids=[r.id for r in RUNS])
def test_logits_and_end_points_match_slim(run):
    model = zoo.load(run.arch, checkpoint=reference_weights(run.arch, run.gain), **run.kwargs)
    x = reference_input(run.arch, run.input_hw)
    with torch.no_grad():
        logits = model(x).numpy()
        pre_logits = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    problems = compare_end_points(run, model.end_points(x))

    want = expected(run.arch)["logits" + run.suffix]
    want_pre = expected(run.arch)["pre_logits" + run.suffix]
    assert logits.shape == want.shape
    err = float(np.max(np.abs(logits - want)))
    assert err <= tolerance(want) and not problems, (
        f"logits max|diff| {err:.3g} (tolerance {tolerance(want):.3g}); "
        "end points that differ, first divergence first:\n  " + "\n  ".join(problems)
    )
    assert pre_logits.shape == want_pre.shape
    assert float(np.max(np.abs(pre_logits - want_pre))) <= tolerance(want_pre)
