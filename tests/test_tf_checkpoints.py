"""Checkpoint files written by TensorFlow itself load through ``zoo.load(checkpoint=path)``.

For every architecture the reference weights are saved with TF's own save ops in the format of
the published checkpoint (V1 TensorSlice for the 2016 releases, V2 bundles for the later ones),
read back by our TensorFlow-free reader and must give the reference logits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _slim import write_tf_checkpoint
from conftest import expected, reference_archs, reference_input, reference_weights, runs, tolerance

import zoo


def _release_formats(arch: str) -> tuple[str, ...]:
    """The format(s) the published checkpoint of ``arch`` uses (see shared/checkpoint_facts.md).

    resnet_v2's 2017 tarballs hold a single ``.ckpt`` file (V1) by the facts, while the issue
    expected V2: both are exercised.
    """
    if arch.startswith(("mobilenet", "nasnet", "pnasnet")) or arch.endswith("_200"):
        return ("v2",)
    if arch.startswith("resnet_v2"):
        return ("v1", "v2")
    return ("v1",)


CASES = [
    (arch, fmt)
    for arch in reference_archs()
    if arch in zoo.list_models()
    for fmt in _release_formats(arch)
]


@pytest.mark.tf
@pytest.mark.parametrize("arch,fmt", CASES, ids=[f"{a}-{f}" for a, f in CASES])
def test_tf_written_checkpoint_gives_reference_logits(tensorflow, tmp_path, arch, fmt):
    run = runs(arch)[0]  # default input size, main gain
    weights = reference_weights(arch, run.gain)
    weights["global_step"] = np.array(1234, np.int64)  # as in every real checkpoint
    name = f"{arch}.ckpt" if fmt == "v1" else "model.ckpt"
    path = write_tf_checkpoint(tensorflow, weights, tmp_path / name, version=fmt)

    with zoo.open_checkpoint(path) as reader:
        assert reader.format == fmt
        assert set(reader) == set(weights)
    model = zoo.load(arch, checkpoint=path, **run.kwargs).eval()
    with torch.no_grad():
        logits = model(reference_input(arch, run.input_hw)).numpy()
    want = expected(arch)["logits"]
    assert float(np.max(np.abs(logits - want))) <= tolerance(want)
    assert model.load_report.ignored == ["global_step"]
