"""MobileNet specifics beyond the generic parity tests: the ExponentialMovingAverage shadows of the
released v2 checkpoints, and slim's depth-multiplier rounding against published facts.

The EMA tests give the raw variables the reference weights at GAIN and their shadows the weights at
HG_GAIN, so which set was loaded shows in the logits: they must equal slim's ``logits_hg`` (shadows)
or ``logits`` (raw) reference outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import expected, make_weights, manifest, reference_input, reference_weights, tolerance

import zoo
from architectures import create_model
from architectures._tf import EMA_SUFFIX
from architectures.mobilenet_v2 import make_divisible

ARCH = "mobilenet_v2"


def raw_and_shadows() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(raw, shadows)``: reference weights at GAIN and at HG_GAIN (two distinct nets)."""
    return reference_weights(ARCH), reference_weights(ARCH, make_weights().HG_GAIN)


def assert_logits_are(model: torch.nn.Module, key: str) -> None:
    x = reference_input(ARCH, (224, 224))[:1]  # the first image of the reference batch is enough
    with torch.no_grad():
        got = model(x).numpy()
    want = expected(ARCH)[key][:1]
    assert float(np.max(np.abs(got - want))) <= tolerance(want), f"logits are not slim's {key!r}"


def assert_loaded_from(model: torch.nn.Module, checkpoint: dict[str, np.ndarray], use_ema: bool):
    """Every tensor of the checkpoint is either loaded or reported ignored, never both."""
    report = model.load_report
    assert set(report.loaded) | set(report.ignored) == set(checkpoint)
    assert not set(report.loaded) & set(report.ignored)
    shadows = [n for n in report.loaded if n.endswith(EMA_SUFFIX)]
    assert len(shadows) == (len(report.loaded) if use_ema else 0)


# --------------------------------------------------------------------------- EMA shadows


def test_ema_shadows_are_preferred_and_reported():
    raw, shadows = raw_and_shadows()
    checkpoint = dict(raw)
    checkpoint.update({name + EMA_SUFFIX: value for name, value in shadows.items()})
    checkpoint["global_step"] = np.array(123456, np.int64)

    model = zoo.load(ARCH, checkpoint=checkpoint)  # use_ema=True is the default
    assert_logits_are(model, "logits_hg")
    assert sorted(model.load_report.ema) == sorted(raw)
    assert_loaded_from(model, checkpoint, use_ema=True)
    assert set(model.load_report.ignored) == set(raw) | {"global_step"}

    model = zoo.load(ARCH, checkpoint=checkpoint, use_ema=False)
    assert_logits_are(model, "logits")
    assert model.load_report.ema == []
    assert_loaded_from(model, checkpoint, use_ema=False)
    assert set(model.load_report.ignored) == {n + EMA_SUFFIX for n in raw} | {"global_step"}


def test_partial_shadows_are_taken_where_present():
    """A checkpoint whose EMA covered only some variables: the others load raw."""
    raw, shadows = raw_and_shadows()
    averaged = sorted(n for n in raw if "/BatchNorm/moving_" not in n)
    checkpoint = dict(raw)
    checkpoint.update({name + EMA_SUFFIX: shadows[name] for name in averaged})

    report = zoo.load(ARCH, checkpoint=checkpoint).load_report
    assert sorted(report.ema) == averaged
    assert {n for n in report.loaded if not n.endswith(EMA_SUFFIX)} == set(raw) - set(averaged)


def test_shadows_alone_load_only_with_use_ema():
    _, shadows = raw_and_shadows()
    checkpoint = {name + EMA_SUFFIX: value for name, value in shadows.items()}
    assert_logits_are(zoo.load(ARCH, checkpoint=checkpoint), "logits_hg")
    with pytest.raises(zoo.MappingError, match="MobilenetV2/Conv/weights"):
        zoo.load(ARCH, checkpoint=checkpoint, use_ema=False)


@pytest.fixture(scope="module")
def tf_ema_checkpoint(tensorflow, tmp_path_factory):
    """A V2 checkpoint written the way slim's training writes one: the variables, the shadows
    TensorFlow's own ``ExponentialMovingAverage`` creates for them, and ``global_step``."""
    tf, _ = tensorflow
    raw, shadows = raw_and_shadows()
    prefix = tmp_path_factory.mktemp("mobilenet_v2_ema") / "model.ckpt"
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in raw.items()]
        tf.compat.v1.train.get_or_create_global_step()
        averager = tf.compat.v1.train.ExponentialMovingAverage(0.9999)
        averager.apply(variables)
        # give the shadows their own values in one run (Variable.load per tensor takes minutes)
        feed, assigns = {}, []
        for variable in variables:
            value = shadows[variable.op.name]
            placeholder = tf.compat.v1.placeholder(tf.float32, value.shape)
            assigns.append(averager.average(variable).assign(placeholder))
            feed[placeholder] = value
        saver = tf.compat.v1.train.Saver()  # every global variable, shadows included
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(assigns, feed)
            saver.save(sess, str(prefix), write_meta_graph=False, write_state=False)
    return prefix


@pytest.mark.tf
def test_tensorflow_names_its_shadows_as_the_loader_expects(tensorflow, tf_ema_checkpoint):
    """The shadow names come from TensorFlow itself, and the values read back with TF's reader
    load as the shadows by default and as the raw variables with use_ema=False."""
    tf, _ = tensorflow
    raw, _ = raw_and_shadows()
    names = {name for name, _ in tf.train.list_variables(str(tf_ema_checkpoint))}
    assert names == set(raw) | {n + EMA_SUFFIX for n in raw} | {"global_step"}

    reader = tf.train.load_checkpoint(str(tf_ema_checkpoint))
    checkpoint = {name: reader.get_tensor(name) for name in names}
    model = zoo.load(ARCH, checkpoint=checkpoint)
    assert_logits_are(model, "logits_hg")
    assert_loaded_from(model, checkpoint, use_ema=True)
    assert_logits_are(zoo.load(ARCH, checkpoint=checkpoint, use_ema=False), "logits")


@pytest.mark.tf
def test_tensorflow_written_ema_checkpoint_file_loads(tf_ema_checkpoint):
    model = zoo.load(ARCH, checkpoint=tf_ema_checkpoint)
    assert_logits_are(model, "logits_hg")
    assert len(model.load_report.ema) == len(manifest(ARCH))
    assert_logits_are(zoo.load(ARCH, checkpoint=tf_ema_checkpoint, use_ema=False), "logits")


# --------------------------------------------------------------------------- depth multiplier


def test_make_divisible_rounds_like_slim():
    # nearest multiple of 8, never below min_value, one step up when rounding lost over 10 %
    assert [make_divisible(d * 1.4, 8) for d in (32, 16, 24, 64, 96, 160, 320, 1280)] == [
        48,
        24,
        32,
        88,
        136,
        224,
        448,
        1792,
    ]
    assert make_divisible(32 * 0.35, 8) == 16  # 11.2 → 8 would lose 29 %: one step up
    assert make_divisible(16 * 0.35, 8) == 8  # 5.6 → min_value
    assert make_divisible(88 * 6, 8) == 528


def test_mobilenet_v2_140_channels_are_the_manifests():
    """Every block's expansion, output and the final Conv_1 depth as slim created them at 1.4."""
    shapes = {e["name"]: e["shape"] for e in manifest("mobilenet_v2_140")}
    model = create_model("mobilenet_v2_140")
    assert model.Conv.conv.out_channels == shapes["MobilenetV2/Conv/weights"][3] == 48
    for name in model.block_names:
        block = getattr(model, name)
        scope = f"MobilenetV2/{name}"
        if block.has_expansion:
            assert block.expand.conv.out_channels == shapes[f"{scope}/expand/weights"][3]
        else:
            assert f"{scope}/expand/weights" not in shapes
        assert block.project.conv.out_channels == shapes[f"{scope}/project/weights"][3]
    assert model.num_features == shapes["MobilenetV2/Conv_1/weights"][3] == 1792


@pytest.mark.parametrize(
    ("name", "multiplier", "millions"),
    [
        ("mobilenet_v2_035", 0.35, 1.66),
        ("mobilenet_v2_050", 0.5, 1.95),
        ("mobilenet_v2_075", 0.75, 2.61),
        ("mobilenet_v2", 1.0, 3.47),
        ("mobilenet_v2_130", 1.3, 5.34),
        ("mobilenet_v2_140", 1.4, 6.06),
    ],
)
def test_mobilenet_v2_sizes_are_the_published_ones(name, multiplier, millions):
    """slim's MobileNet v2 README: parameters (M) of the released checkpoints, 1001 classes,
    counted without batch norm, for the networks as slim's nets_factory names them. The small
    ones keep Conv_1 at 1280 (finegrain mode)."""
    model = create_model(name)
    count = sum(p.numel() for n, p in model.named_parameters() if ".bn." not in n)
    assert round(count / 1e6, 2) == millions
    assert model.num_features == (1280 if multiplier <= 1 else make_divisible(1280 * multiplier, 8))
    assert model.Conv.conv.out_channels == make_divisible(32 * multiplier, 8)


def test_finegrain_mode_of_the_small_v2_can_be_turned_off():
    model = create_model("mobilenet_v2_050", finegrain_classification_mode=False)
    assert model.num_features == 640


@pytest.mark.parametrize(
    ("name", "weights"), [("mobilenet_v1", 3_185_088), ("mobilenet_v1_075", 1_800_144)]
)
def test_mobilenet_v1_conv_weights_are_slims_table(name, weights):
    """The per-layer table in slim's mobilenet_v1.py docstring: total conv kernel parameters."""
    model = create_model(name)
    count = sum(p.numel() for n, p in model.named_parameters() if n.endswith("conv.weight"))
    assert count == weights


@pytest.mark.parametrize(
    ("name", "multiplier"), [("mobilenet_v1_050", 0.5), ("mobilenet_v1_025", 0.25)]
)
def test_mobilenet_v1_low_multipliers_scale_every_layer(name, multiplier):
    """Every v1 depth is a multiple of 32, so truncation and min_depth 8 change nothing."""
    full, small = create_model("mobilenet_v1"), create_model(name)
    for layer in full.layer_names:
        want = int(getattr(full, layer).conv.out_channels * multiplier)
        assert getattr(small, layer).conv.out_channels == want, layer
    assert small.num_features == int(1024 * multiplier)
