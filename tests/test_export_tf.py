"""Exported checkpoints in TensorFlow: ``tf.train.load_checkpoint`` reads every tensor bit for
bit, and the tf_slim network restored by ``tf.compat.v1.train.Saver`` from the export gives the
torch model's logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _export import assert_bitwise_equal, first_registered, logits, perturb
from _slim import slim_logits_from_checkpoint
from conftest import ONE_PER_FAMILY, reference_input, reference_weights, runs, tolerance

import zoo

# the tf_slim networks (pip's tf_slim has these families) that are registered here
TF_ARCHS = [
    a
    for a in ONE_PER_FAMILY
    if a.startswith(("resnet_", "vgg_")) or a in ("inception_v1", "inception_v2", "inception_v3")
]


def small_input(arch: str) -> tuple[int, int]:
    """ResNets pool globally (any size will do); pip tf_slim's VGG and Inception have fixed
    final pooling/fc6 windows, so they get their default size."""
    return (64, 64) if arch.startswith("resnet") else runs(arch)[0].input_hw


def assert_tf_reads(tensorflow, path, tensors: dict[str, np.ndarray], step: int) -> None:
    """``tf.train.load_checkpoint`` finds exactly ``tensors`` (bit for bit) and the step."""
    tf, _ = tensorflow
    reader = tf.train.load_checkpoint(str(path))
    dtypes = reader.get_variable_to_dtype_map()
    assert sorted(dtypes) == sorted([*tensors, "global_step"])
    for name, want in tensors.items():
        assert dtypes[name] == tf.float32, name
        assert_bitwise_equal(reader.get_tensor(name), want, name)
    assert dtypes["global_step"] == tf.int64
    assert reader.get_tensor("global_step") == step


def assert_slim_logits(tensorflow, arch, path, model, x: torch.Tensor) -> None:
    want = logits(model, x).numpy()
    got = slim_logits_from_checkpoint(
        tensorflow,
        arch,
        path,
        x.permute(0, 2, 3, 1).numpy(),
        num_classes=model.num_classes,
    )
    if got.ndim == 4:  # pip tf_slim's resnets have no spatial_squeeze: [N, 1, 1, classes]
        got = got.squeeze((1, 2))
    assert got.shape == want.shape
    err = float(np.max(np.abs(got - want)))
    assert err <= tolerance(want), f"max |TF - torch| {err:.3g} > {tolerance(want):.3g}"


@pytest.mark.tf
@pytest.mark.parametrize("arch", TF_ARCHS)
def test_tensorflow_restores_the_export(tensorflow, tmp_path, arch):
    # the gain at which the logits depend on the input too (the _hg runs), where there is one
    gain = max(run.gain for run in runs(arch))
    weights = reference_weights(arch, gain)
    model = zoo.load(arch, checkpoint=weights).eval()
    prefix = zoo.export_tf_checkpoint(model, arch, tmp_path / "model.ckpt", global_step=77)
    assert_tf_reads(tensorflow, prefix, weights, 77)
    del weights
    x = reference_input(arch, small_input(arch))[:1]
    assert_slim_logits(tensorflow, arch, prefix, model, x)


@pytest.mark.tf
def test_tensorflow_restores_a_fine_tuned_v1_export(tensorflow, tmp_path):
    """Another class count, every tensor moved, the V1 single-file format."""
    arch = first_registered("inception_v1", "resnet_v1_50", "vgg_16")
    torch.manual_seed(0)
    model = zoo.load(arch).eval()
    model.reset_classifier(10)
    perturb(model)
    path = zoo.export_tf_checkpoint(model, arch, tmp_path / "model.ckpt", format="v1")
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]

    with zoo.open_checkpoint(path) as reader:
        assert reader.format == "v1"
        tensors = {n: reader[n] for n in reader if n != "global_step"}
    assert_tf_reads(tensorflow, path, tensors, 0)
    x = reference_input(arch, small_input(arch))[:1]
    assert_slim_logits(tensorflow, arch, path, model, x)
