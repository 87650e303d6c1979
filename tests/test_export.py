"""``zoo.export_tf_checkpoint`` without TensorFlow: torch weights back to slim checkpoints.

Every registered architecture goes TF tensors → ``zoo.load`` → export → ``zoo.open_checkpoint``
(the very same TF tensors, bit for bit) → ``zoo.load`` (the very same torch tensors; the same
logits for one network per family). Then fine-tuned class counts, other dtypes and devices,
and every way an export is refused or fails, without leaving files behind. The checks that
need no real network run on a small slim-style network (``_export.TinyNet``) or on networks
built on the meta device (no memory, no initialisation).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from _export import (
    V2_FILES,
    assert_checkpoint_holds,
    assert_same_state,
    first_registered,
    logits,
    perturb,
    tf_state,
    tiny_net,
    trained_tiny_net,
)
from conftest import expected, reference_archs, reference_input, reference_weights, runs, tolerance
from torch import nn

import zoo
from architectures import get_constructor, load_tf_weights, tf_mapping
from zoo.checkpoint import write_v2
from zoo.export import _fitted_mapping

ARCHS = zoo.list_models()
# the logits are compared for a few networks covering the layouts (depthwise, separable,
# pre-activation, inception branches); VGG where none of them is registered
REPRESENTATIVE = {"mobilenet_v1", "inception_v1", "resnet_v2_50", "nasnet_mobile"} & set(ARCHS)
REPRESENTATIVE = REPRESENTATIVE or {"vgg_16"}
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def on_meta(name: str, **kwargs) -> nn.Module:
    """The network with shapes only: enough for every check that happens before writing."""
    with torch.device("meta"):
        return zoo.load(name, **kwargs)


# --------------------------------------------------------------------------- round trips


def mapping_weights(arch: str) -> dict[str, np.ndarray]:
    """Distinct random TF tensors for every variable the network's mapping names (variances
    positive), for a network without reference data."""
    rng = np.random.default_rng(0)
    weights = {}
    for target in tf_mapping(get_constructor(arch)()).values():
        value = rng.standard_normal(target.shape)
        if target.name.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        weights[target.name] = value.astype(np.float32)
    return weights


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_every_architecture(arch, tmp_path):
    if arch in reference_archs():
        run = runs(arch)[0]  # the default input size and the main gain
        weights, kwargs = reference_weights(arch, run.gain), run.kwargs
    else:  # a depth-multiplier variant: its mapping is proven on the one slim's reference has
        weights, kwargs = mapping_weights(arch), {}
    model = zoo.load(arch, checkpoint=weights, **kwargs)
    prefix = zoo.export_tf_checkpoint(model, arch, tmp_path / "model.ckpt", global_step=4321)

    assert prefix == tmp_path / "model.ckpt"
    assert sorted(p.name for p in tmp_path.iterdir()) == V2_FILES
    assert_checkpoint_holds(prefix, weights, 4321)
    del weights
    again = zoo.load(arch, checkpoint=prefix, **kwargs)
    assert again.load_report.ignored == ["global_step"]
    assert_same_state(again, model)

    if arch in REPRESENTATIVE:
        x = reference_input(arch, run.input_hw)[:1]
        got = logits(again, x)
        assert torch.equal(got, logits(model, x))
        slim = expected(arch)["logits"][:1]  # and they are slim's, not merely equal
        assert float(np.max(np.abs(got.numpy() - slim))) <= tolerance(slim)


# the smallest network, and inception_v3 (a second classifier: the auxiliary head) if registered
FINE_TUNED = sorted(
    {
        first_registered("mobilenet_v1", "mobilenet_v2", "inception_v1", "resnet_v1_50", "vgg_16"),
        *(a for a in ["inception_v3"] if a in ARCHS),
    }
)


@pytest.mark.parametrize("arch", FINE_TUNED)
def test_fine_tuned_model_with_a_new_class_count(arch, tmp_path):
    run = runs(arch)[0]
    torch.manual_seed(0)
    model = zoo.load(arch, **run.kwargs)
    model.reset_classifier(10)
    perturb(model)

    prefix = zoo.export_tf_checkpoint(model, arch, tmp_path / "model.ckpt", global_step=1)
    again = zoo.load(arch, checkpoint=prefix, **run.kwargs)
    assert again.num_classes == 10
    assert_same_state(again, model)  # (test_export_tf compares a fine-tuned model's logits)
    mapping = tf_mapping(again)
    with zoo.open_checkpoint(prefix) as reader:
        for classifier in getattr(again, "classifier_names", (again.classifier_name,)):
            assert reader.shape(mapping[f"{classifier}.bias"].name) == (10,)


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_any_slim_style_network_given_by_its_constructor(tmp_path, fmt):
    """Every layout (conv, depthwise, pointwise, 1x1 conv as linear, batch norm), inverted."""
    model = trained_tiny_net(num_classes=7)
    path = zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt", format=fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["model.ckpt"] if fmt == "v1" else V2_FILES
    )
    with zoo.open_checkpoint(path) as reader:
        assert reader.format == fmt
        assert reader.shape("TinyNet/Conv2d_1/depthwise_weights") == (3, 3, 8, 2)
        assert reader.shape("TinyNet/Conv2d_1/pointwise_weights") == (1, 1, 16, 16)
        assert reader.shape("TinyNet/Logits/weights") == (1, 1, 16, 7)
        assert reader.shape("TinyNet/Conv2d_0/BatchNorm/moving_variance") == (8,)
        assert len(reader) == len(tf_mapping(model)) + 1  # and global_step
        again = tiny_net(num_classes=7).eval()
        load_tf_weights(again, reader)
    assert_same_state(again, model)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(logits(again, x), logits(model, x))


@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device_do_not_matter(tmp_path, device):
    """float32 values whatever the model's device and floating dtype: its own values, rounded
    to float32 only where its dtype is wider."""
    model = trained_tiny_net()
    reference = zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "reference.ckpt")
    with zoo.open_checkpoint(reference) as reader:
        want = {name: reader[name] for name in reader}

    for dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        moved = trained_tiny_net().to(device, dtype)
        path = zoo.export_tf_checkpoint(moved, tiny_net, tmp_path / f"{dtype}.ckpt")
        with zoo.open_checkpoint(path) as reader:
            assert {reader.dtype(n) for n in reader} == {np.dtype(np.float32), np.dtype(np.int64)}
            got = {name: reader[name] for name in reader}
        if dtype in (torch.float32, torch.float64):  # float32 → float64 → float32 is exact
            assert all(np.array_equal(got[n], want[n]) for n in want)
        else:
            again = tiny_net()
            load_tf_weights(again, got)
            state = {n: t.to("cpu", torch.float32) for n, t in tf_state(moved).items()}
            assert all(torch.equal(t, state[n]) for n, t in tf_state(again).items())
        assert (tmp_path / f"{dtype}.ckpt.index").is_file()
    assert next(moved.parameters()).device.type == device  # the model was not moved


def test_wrapped_models_export_the_network_inside(tmp_path):
    """``torch.compile`` and ``DataParallel`` prefix the state names; the network is exported."""
    model = trained_tiny_net()
    zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt")
    want = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for wrap in (torch.compile, nn.DataParallel, lambda m: nn.DataParallel(torch.compile(m))):
        zoo.export_tf_checkpoint(wrap(model), tiny_net, tmp_path / "model.ckpt", overwrite=True)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == want


# --------------------------------------------------------------------------- refusals


def test_another_architecture_is_refused_with_the_names(tmp_path):
    with pytest.raises(zoo.MappingError) as info:
        zoo.export_tf_checkpoint(on_meta("vgg_19"), "vgg_16", tmp_path / "model.ckpt")
    message = str(info.value)
    assert "the model does not fit vgg_16 (VGG, 1000 classes); nothing was written" in message
    assert "the model's TF scope is 'vgg_19', vgg_16's is 'vgg_16'" in message
    assert "tensors vgg_16 does not have (6):" in message
    assert "conv5.conv5_4.weight [512, 512, 3, 3]" in message

    # another family, e.g. a resnet_v1_50 exported as vgg_16 (a TinyNet while only VGG exists)
    other = next((on_meta(a) for a in ARCHS if not a.startswith("vgg")), tiny_net())
    with pytest.raises(zoo.MappingError) as info:
        zoo.export_tf_checkpoint(other, "vgg_16", tmp_path / "model.ckpt")
    message = str(info.value)
    assert f"the model is a {type(other).__name__}, vgg_16 builds a VGG" in message
    assert "tensors vgg_16 needs that the model lacks (32):" in message
    assert "conv1.conv1_1.weight  (vgg_16/conv1/conv1_1/weights)" in message
    assert list(tmp_path.iterdir()) == []


def test_extra_missing_and_misshaped_tensors_are_listed(tmp_path):
    model = on_meta("vgg_16")
    with torch.device("meta"):
        model.fc7.register_parameter("scale", nn.Parameter(torch.ones(3)))
        model.conv2.conv2_1.register_buffer("ema", torch.zeros(128))
        model.conv3.conv3_2.bias = None
        model.fc6 = nn.Conv2d(512, 1024, 7)
    with pytest.raises(zoo.MappingError) as info:
        zoo.export_tf_checkpoint(model, "vgg_16", tmp_path / "model.ckpt")
    message = str(info.value)
    assert "tensors vgg_16 does not have (2):" in message
    assert "fc7.scale [3]" in message and "conv2.conv2_1.ema [128]" in message
    assert "tensors vgg_16 needs that the model lacks (1):" in message
    assert "conv3.conv3_2.bias  (vgg_16/conv3/conv3_2/biases)" in message
    assert "shape mismatches (2):" in message
    assert (
        "fc6.weight: model [1024, 512, 7, 7], vgg_16 needs [4096, 512, 7, 7]  (vgg_16/fc6/weights)"
    ) in message
    assert "fc6.bias: model [1024], vgg_16 needs [4096]" in message
    assert list(tmp_path.iterdir()) == []


def test_other_tf_naming_is_refused(tmp_path):
    """Same tensors, but a module that maps them to other TF names: not the slim network."""
    model = on_meta("vgg_16")
    model.conv1.tf_scopes = {"conv1_1": "first"}
    with pytest.raises(zoo.MappingError) as info:
        zoo.export_tf_checkpoint(model, "vgg_16", tmp_path / "model.ckpt")
    assert (
        "conv1.conv1_1.weight: model vgg_16/conv1/first/weights [3, 3, 3, 64] (conv), "
        "vgg_16 vgg_16/conv1/conv1_1/weights [3, 3, 3, 64] (conv)"
    ) in str(info.value)


def fold_batch_norm(model: nn.Module) -> None:
    """``architectures._fuse.fuse_bn`` where it exists, else its effect by hand."""
    try:
        importlib.import_module("architectures._fuse").fuse_bn(model)
        return
    except ImportError:
        pass
    for module in list(model.modules()):
        conv, bn = getattr(module, "conv", None), getattr(module, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.modules.batchnorm._BatchNorm):
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
            module.bn = nn.Identity()


def test_fused_batch_norm_is_refused(tmp_path):
    """Batch norm folded into the convs cannot be exported back to slim: said so, with names."""
    model = trained_tiny_net()
    fold_batch_norm(model)
    with pytest.raises(zoo.MappingError) as info:
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt")
    message = str(info.value)
    assert "folded into its convolutions (fuse_bn)" in message
    assert "Conv2d_0.conv.bias [8]" in message
    assert "Conv2d_0.bn.running_mean  (TinyNet/Conv2d_0/BatchNorm/moving_mean)" in message
    assert list(tmp_path.iterdir()) == []


def test_constructor_arguments_and_class_counts():
    """Arguments that change the variables go to the reference build; the class count is the
    model's classifier's (also none at all: slim's num_classes=0)."""
    model = trained_tiny_net(width=32)
    with pytest.raises(zoo.MappingError, match=r"Conv2d_1\.pointwise\.weight: model \[32"):
        _fitted_mapping(model, "tiny_net", tiny_net)
    mapping = _fitted_mapping(model, "tiny_net", tiny_net, width=32)
    assert mapping["Conv2d_1.pointwise.weight"].shape == (1, 1, 16, 32)

    vgg_16 = get_constructor("vgg_16")
    headless = _fitted_mapping(on_meta("vgg_16", num_classes=0), "vgg_16", vgg_16)
    assert len(headless) == 30 and not any(n.startswith("fc8.") for n in headless)
    model = on_meta("vgg_16")
    with torch.device("meta"):
        model.fc8 = type(model.fc8)(4096, 3, 1)  # replaced by hand, num_classes not updated
    assert _fitted_mapping(model, "vgg_16", vgg_16)["fc8.bias"].shape == (3,)


def test_bad_arguments(tmp_path):
    model = trained_tiny_net()
    with pytest.raises(zoo.UnknownModelError, match="vgg_16"):
        zoo.export_tf_checkpoint(model, "vgg16", tmp_path / "model.ckpt")
    with pytest.raises(TypeError, match="name_or_arch must be a network name"):
        zoo.export_tf_checkpoint(model, 16, tmp_path / "model.ckpt")
    with pytest.raises(ValueError, match="format must be one of"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt", format="v3")
    with pytest.raises(ValueError, match="is a directory"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path)
    with pytest.raises(ValueError, match=r"pass its prefix \('model.ckpt'\)"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt.index")
    with pytest.raises(TypeError, match="global_step must be an integer"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt", global_step=1.5)
    with pytest.raises(ValueError, match="int64"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt", global_step=2**63)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- files


def test_existing_checkpoint_is_kept_unless_asked(tmp_path):
    model = trained_tiny_net()
    write_v2(tmp_path / "model.ckpt", {"old": np.ones(2, np.float32)})
    (tmp_path / "model.ckpt.data-00001-of-00002").write_bytes(b"stale shard")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError) as info:
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt")
    for name in before:  # every file of the checkpoint is named
        assert str(tmp_path / name) in str(info.value)
    assert "overwrite=True" in str(info.value)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == V2_FILES  # the stale shards are gone
    with zoo.open_checkpoint(tmp_path / "model.ckpt") as reader:
        assert "old" not in reader and "TinyNet/Logits/biases" in reader

    (tmp_path / "single.ckpt").write_bytes(b"v1")
    with pytest.raises(FileExistsError, match=r"single\.ckpt"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "single.ckpt", format="v1")
    assert (tmp_path / "single.ckpt").read_bytes() == b"v1"


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_a_value_that_cannot_be_converted_leaves_nothing(tmp_path, fmt):
    """The failure comes half-way through the write: no new file, the old checkpoint intact."""
    model = trained_tiny_net()
    zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "model.ckpt", format=fmt)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    model.Logits.bias = nn.Parameter(torch.zeros(5, dtype=torch.complex64))
    with pytest.raises(TypeError, match=r"Logits\.bias is torch\.complex64, .*/Logits/biases"):
        zoo.export_tf_checkpoint(
            model, tiny_net, tmp_path / "model.ckpt", format=fmt, overwrite=True
        )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before

    model.Logits.bias = nn.Parameter(torch.zeros(5, device="meta"))
    with pytest.raises(ValueError, match=r"Logits\.bias has no data"):
        zoo.export_tf_checkpoint(model, tiny_net, tmp_path / "new.ckpt", format=fmt)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_unwritable_target_leaves_nothing(tmp_path):
    """A prefix whose directory cannot be made (a file is in the way: tests may run as root,
    who writes into read-only directories)."""
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(OSError):
        zoo.export_tf_checkpoint(trained_tiny_net(), tiny_net, tmp_path / "file" / "model.ckpt")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
