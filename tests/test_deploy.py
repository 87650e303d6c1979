"""Deployment of one network per family: ``torch.export`` with a dynamic batch dimension against
eager outputs, and the ONNX file of that program run by ONNX Runtime against torch.

Tolerance: ``conftest.tolerance`` (1e-4 * max(1, max|logit|)), the project's parity bound, for
both. Inputs are the smallest each network accepts as built by default, batches of 1 and 2.
"""

from __future__ import annotations

import functools

import onnxruntime
import pytest
import torch
from conftest import ONE_PER_FAMILY, reference_weights, tolerance

import architectures
import zoo

pytestmark = pytest.mark.slow  # torch.export and ONNX conversions: minutes in all

# the smallest square input each default network takes (fixed 7x7 pools need 224)
SMALLEST = {"vgg_16": 224, "inception_v1": 224, "inception_v3": 75, "inception_v4": 75}
SMALLEST["inception_resnet_v2"] = 75


@functools.cache
def exported(arch: str):
    """(model in eval mode, a batch of 2, the dynamic-batch program), once per network."""
    model = zoo.load(arch, checkpoint=reference_weights(arch))
    size = SMALLEST.get(arch, 32)
    program = zoo.export_program(model, input_size=(size, size))
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    return model, x, program


@pytest.mark.parametrize("arch", ONE_PER_FAMILY)
def test_torch_export_with_a_dynamic_batch_matches_eager(arch):
    model, x, program = exported(arch)
    assert not model.training  # exported in eval mode
    images = program.graph_signature.user_inputs[0]
    node = next(n for n in program.graph.nodes if n.name == images)
    assert isinstance(node.meta["val"].shape[0], torch.SymInt)  # the batch is symbolic
    runnable = program.module()
    with torch.no_grad():
        for batch in (x, x[:1]):
            want = model(batch)
            got = runnable(batch)
            assert got.shape == want.shape
            err = float((got - want).abs().max())
            assert err <= tolerance(want.abs().max().item()), (arch, len(batch), err)


@pytest.mark.parametrize("arch", ONE_PER_FAMILY)
def test_onnx_export_runs_in_onnxruntime_like_torch(arch, tmp_path):
    model, x, program = exported(arch)
    path = zoo.export_onnx(program, tmp_path / f"{arch}.onnx")  # the program tested above
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    with torch.no_grad():
        for batch in (x, x[:1]):  # the dynamic batch dimension survives into the file
            want = model(batch).numpy()
            (got,) = session.run(None, {"images": batch.numpy()})
            assert got.shape == want.shape
            err = float(abs(got - want).max())
            assert err <= tolerance(float(abs(want).max())), (arch, len(batch), err)


def test_export_needs_an_input_size_it_can_find(tmp_path):
    model = architectures.create_model("mobilenet_v1", depth_multiplier=0.25)
    with pytest.raises(zoo.ConfigError, match="pass input_size"):
        zoo.export_program(model)
    features = zoo.load("mobilenet_v1", depth_multiplier=0.25, features_only=True)
    program = zoo.export_program(features, input_size=(64, 64))  # a list of maps exports too
    path = zoo.export_onnx(features, tmp_path / "features.onnx", input_size=(64, 64))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert len(session.get_outputs()) == len(features.feature_info)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(program.module()(x), features(x)):
            assert torch.allclose(got, want, atol=1e-5)
