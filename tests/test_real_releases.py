"""Release-like tarballs in exactly the published layouts, written by TensorFlow, through
``zoo.load(name, pretrained=True)`` over real HTTP on 127.0.0.1, giving TensorFlow's logits.

One release per kind of real layout (checkpoint_facts.md):

* ``resnet_v1_50``: a 2016 V1 single file ``resnet_v1_50.ckpt`` with ``global_step`` and the
  unused ``resnet_v1_50/mean_rgb``;
* ``resnet_v2_50``: a 2017 V1 file beside ``eval.graph`` and ``train.graph``;
* ``mobilenet_v1``: the seven-file bundle (``mobilenet_v1_1.0_224.ckpt.{index,data,meta}``,
  ``.tflite``, ``_frozen.pb``, ``_eval.pbtxt``, ``_info.txt``) whose checkpoint holds EMA shadows
  (the reference values: the ones that must be loaded) and RMSProp slots;
* ``nasnet_large`` and ``pnasnet_large``: ``model.ckpt.*`` without the aux head's batch norms,
  as published (tensorflow/models #2648, #3822, #8643); NASNet's aux FC spelled
  ``fully_connected`` as in its re-upload, PNASNet's ``FC``;
* ``mobilenet_v3_large`` and ``adv_inception_v3``: the catalogue's layouts (everything under
  ``v3-large_224_1.0_float/``, the ``ema/model-540000`` checkpoint loaded, ``pristine/`` and the
  graphs skipped; ``adv_inception_v3.ckpt.{index,data,meta}``), from registry entries alone;
* ``mobilenet_v1_0.25_128`` and ``mobilenet_v2_0.35_96``: a width and resolution variant of each
  MobileNet family, seven-file bundles with EMA shadows and RMSProp slots.

Each tarball is built once per session. The large networks run one image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _http import FileServer
from _pipeline import isolate
from _slim import write_tf_checkpoint
from _tarballs import release_tarball, release_tensors, write_registry
from conftest import expected, reference_input, runs, tolerance

import zoo
from architectures._load_report import Reason

pytestmark = [pytest.mark.tf, pytest.mark.slow]

AUX_BN = ("aux_bn0", "aux_bn1")


def nas_without_aux_bn(arch: str, aux_fc: str) -> dict[str, np.ndarray]:
    """The reference weights as the large NAS releases hold them: no aux batch norms."""
    tensors = {
        n: v for n, v in release_tensors(arch).items() if not any(f"/{b}/" in n for b in AUX_BN)
    }
    if aux_fc != "FC":
        for name in [n for n in tensors if "/aux_logits/FC/" in n]:
            tensors[name.replace("/FC/", f"/{aux_fc}/")] = tensors.pop(name)
    return tensors


# name: (checkpoint tensors, images to run)
RELEASES = {
    "resnet_v1_50": (lambda: release_tensors("resnet_v1_50"), None),
    "resnet_v2_50": (lambda: release_tensors("resnet_v2_50"), None),
    "mobilenet_v1": (
        lambda: release_tensors("mobilenet_v1", ema=True, slots=("RMSProp", "RMSProp_1")),
        None,
    ),
    "nasnet_large": (lambda: nas_without_aux_bn("nasnet_large", "fully_connected"), 1),
    "pnasnet_large": (lambda: nas_without_aux_bn("pnasnet_large", "FC"), 1),
    # the catalogue's layouts: everything under <n>/ with ema/model-<step> (averaged weights
    # under plain names: the one loaded) beside pristine/; the adversarial V2 <name>.ckpt.*
    "mobilenet_v3_large": (lambda: release_tensors("mobilenet_v3_large"), None),
    "adv_inception_v3": (lambda: release_tensors("inception_v3"), 1),
    # width and resolution variants of the catalogue, in the seven-file bundle layout
    "mobilenet_v1_0.25_128": (
        lambda: release_tensors("mobilenet_v1_025", ema=True, slots=("RMSProp", "RMSProp_1")),
        None,
    ),
    "mobilenet_v2_0.35_96": (
        lambda: release_tensors("mobilenet_v2_035", ema=True, slots=("RMSProp", "RMSProp_1")),
        None,
    ),
}
EMA = {"mobilenet_v1", "mobilenet_v1_0.25_128", "mobilenet_v2_0.35_96"}


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def tf_releases(tmp_path_factory, tensorflow):
    """ONE TensorFlow-written tarball per release and session, built on first use."""
    built = {}

    def writer(tensors, path, fmt):
        return write_tf_checkpoint(tensorflow, tensors, path, version=fmt)

    def get(name):
        if name not in built:
            tensors = RELEASES[name][0]()
            directory = tmp_path_factory.mktemp(f"{name}_tf_release")
            tarball = release_tarball(name, directory, tensors=tensors, writer=writer)
            built[name] = tarball, sorted(tensors)
        return built[name]

    return get


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_real_layout_loads_with_the_reference_logits(name, zoo_env, tf_releases, monkeypatch):
    tarball, names = tf_releases(name)
    release = zoo.model_info(name).release
    path = f"/models/{release.tarball}"
    with FileServer() as server:
        url = server.add(path, tarball.path)
        registry = write_registry(
            zoo_env.parent / "registry.json",
            {name: {"url": url, "size": tarball.size, "sha256": tarball.sha256}},
        )
        monkeypatch.setenv("ZOO_REGISTRY", str(registry))
        arch = zoo.model_info(name).architecture
        run = runs(arch)[0]
        model = zoo.load(name, pretrained=True, progress=False, **run.kwargs).eval()
        assert len(server.gets(path)) == 1

    images = RELEASES[name][1]
    x = reference_input(arch, run.input_hw)[:images]
    with torch.no_grad():
        logits = model(x).numpy()
    want = expected(arch)["logits" + run.suffix][:images]
    assert np.abs(logits - want).max() <= tolerance(want)

    report = model.load_report
    assert set(report.ignored) <= set(names) and report.reasons["global_step"] == Reason.STEP
    assert set(report.reasons) == set(report.ignored)
    if name.startswith(("resnet_v1", "vgg")):
        assert report.reasons[f"{name}/mean_rgb"] == Reason.MEAN_RGB
    if name in EMA:  # the EMA values were loaded, raw variables and slots skipped
        groups = report.by_reason()
        assert len(groups[Reason.RAW_REPLACED]) == len(report.ema) > 0
        rms = groups["optimizer slot (RMSProp mean square)"]
        assert len(rms) == len(groups["optimizer slot (RMSProp momentum)"]) == len(report.ema)
    if name.endswith("nasnet_large"):
        head = report.dropped_heads[0]
        assert model.unbuilt_heads == (head,) and not hasattr(model, head)
        assert sorted(report.absent) == sorted(
            f"{head}/aux_logits/{bn}/{leaf}"
            for bn in AUX_BN
            for leaf in ("gamma", "beta", "moving_mean", "moving_variance")
        )
        left = [n for n in names if n.startswith(f"{head}/")]  # proj, Conv, FC: not loaded
        assert len(left) == 4 and {report.reasons[n] for n in left} == {Reason.INCOMPLETE_HEAD}
    else:
        assert not report.absent and not report.dropped_heads
    sidecar = zoo.cache_info(name).metadata
    assert sidecar["skipped_tensors"] == report.reasons
    assert sidecar["absent_tensors"] == report.absent


def test_the_large_nas_release_with_aux_logits_gets_a_fresh_head_and_one_warning(
    zoo_env, tf_releases, monkeypatch
):
    """Training on the published weights: the aux head is built freshly initialised."""
    name = "pnasnet_large"
    tarball, _ = tf_releases(name)
    release = zoo.model_info(name).release
    with FileServer() as server:
        url = server.add(f"/models/{release.tarball}", tarball.path)
        registry = write_registry(
            zoo_env.parent / "registry.json",
            {name: {"url": url, "size": tarball.size, "sha256": tarball.sha256}},
        )
        monkeypatch.setenv("ZOO_REGISTRY", str(registry))
        with pytest.warns(UserWarning, match="freshly initialised") as caught:
            model = zoo.load(name, pretrained=True, progress=False, aux_logits=True)
        assert len(caught) == 1, [str(w.message) for w in caught]
        assert model.aux_head() is not None and model.aux_logits
        with pytest.raises(zoo.MappingError, match="require_aux_head"):
            zoo.load(name, pretrained=True, progress=False, require_aux_head=True)


def test_a_registry_entry_with_the_wrong_layout_is_refused_naming_both(
    zoo_env, tf_releases, monkeypatch
):
    """The old entry (``model.ckpt.*``) against the real MobileNet bundle: no guessing, a clear
    error naming the expected files and the checkpoint the tarball holds; nothing cached."""
    name = "mobilenet_v1"
    tarball, _ = tf_releases(name)
    release = zoo.model_info(name).release
    with FileServer() as server:
        url = server.add(f"/models/{release.tarball}", tarball.path)
        old = {
            "url": url,
            "size": tarball.size,
            "sha256": tarball.sha256,
            "checkpoint": "model.ckpt",
            "files": ["model.ckpt.index", "model.ckpt.data-00000-of-00001"],
        }
        registry = write_registry(zoo_env.parent / "registry.json", {name: old})
        monkeypatch.setenv("ZOO_REGISTRY", str(registry))
        with pytest.raises(zoo.ArchiveError) as err:
            zoo.load(name, pretrained=True, progress=False)
    message = str(err.value)
    assert "missing model.ckpt.data-00000-of-00001, model.ckpt.index" in message
    assert "mobilenet_v1_1.0_224.ckpt (mobilenet_v1_1.0_224.ckpt.data-00000-of-00001" in message
    assert not zoo.cache_info(name).complete
    left = {p.relative_to(zoo_env).parts[0] for p in zoo_env.rglob("*") if p.is_file()}
    assert left <= {"locks"}  # no weights, no half-written entry, no tarball
