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


def _run_once(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, dict]:
    """Logits and pre-logits (the classifier's output and input) and the end points, from ONE
    forward pass (the large networks take a minute per pass on a small CI machine)."""
    captured = {}

    def keep(_module, inputs, output):
        captured["pre_logits"] = inputs[0].detach().clone()
        captured["logits"] = output.detach().clone()

    hook = model.get_submodule(model.classifier_name).register_forward_hook(keep)
    try:
        points = model.end_points(x)
    finally:
        hook.remove()
    return captured["logits"].numpy(), captured["pre_logits"].numpy(), points


@pytest.mark.parametrize("run", RUNS, ids=[r.id for r in RUNS])
def test_logits_and_end_points_match_slim(run):
    model = zoo.load(
        run.arch, checkpoint=reference_weights(run.arch, run.gain), **run.kwargs
    ).eval()
    x = reference_input(run.arch, run.input_hw)
    with torch.no_grad():
        logits, pre_logits, points = _run_once(model, x)
    problems = compare_end_points(run, points)

    want = expected(run.arch)["logits" + run.suffix]
    want_pre = expected(run.arch)["pre_logits" + run.suffix]
    assert logits.size == want.size, (logits.shape, want.shape)
    logits = logits.reshape(want.shape)  # a 1x1-conv classifier gives (N, C, 1, 1)
    err = float(np.max(np.abs(logits - want)))
    assert err <= tolerance(want) and not problems, (
        f"logits max|diff| {err:.3g} (tolerance {tolerance(want):.3g}); "
        "end points that differ, first divergence first:\n  " + "\n  ".join(problems)
    )
    assert pre_logits.size == want_pre.size, (pre_logits.shape, want_pre.shape)
    pre_logits = pre_logits.reshape(want_pre.shape)  # a 1x1-conv classifier sees (N, C, 1, 1)
    assert float(np.max(np.abs(pre_logits - want_pre))) <= tolerance(want_pre)


FIRST_RUNS = [runs(a)[0] for a in PORTED]


@pytest.mark.parametrize("run", FIRST_RUNS, ids=[r.id for r in FIRST_RUNS])
def test_head_api_gives_the_slim_pre_logits_and_logits(run):
    """``forward_head(forward_features(x), pre_logits=True)`` is slim's pre-logits and
    ``forward_head(forward_features(x))`` its logits (the parity test reads them from hooks)."""
    model = zoo.load(
        run.arch, checkpoint=reference_weights(run.arch, run.gain), **run.kwargs
    ).eval()
    x = reference_input(run.arch, run.input_hw)[:1]
    with torch.no_grad():
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True).numpy()
        logits = model.forward_head(features).numpy()
    want = expected(run.arch)["logits" + run.suffix][:1]
    want_pre = expected(run.arch)["pre_logits" + run.suffix][:1]
    assert pre_logits.shape == want_pre.shape
    assert float(np.max(np.abs(pre_logits - want_pre))) <= tolerance(want_pre)
    assert float(np.max(np.abs(logits - want))) <= tolerance(want)
