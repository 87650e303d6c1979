"""``zoo.load(name, pretrained=True)`` end to end, over real HTTP on 127.0.0.1.

Real releases (one session-wide tarball each, built from the reference weights in the published
layout: vgg_16 always, resnet_v2_50 and mobilenet_v2 once ported) prove the whole chain against
TensorFlow's logits. The many pipeline behaviours (cache hits,
rebuilds, offline mode, concurrency, kills, bad tarballs, mirrors) use the tiny test network of
``_tinynet`` in a MobileNet-v2-style V2 bundle with EMA shadows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import signal
import socket
import time

import _tinynet
import numpy as np
import pytest
import torch
from _http import Fault, FileServer
from _pipeline import finish, isolate, spawn
from _tarballs import (
    describe,
    make_tarball,
    release_tarball,
    unsafe_tarball,
    write_checkpoint,
    write_registry,
)
from conftest import expected, reference_input, runs, tolerance
from safetensors.torch import load_file

import zoo

TINY_PATH = f"/models/{_tinynet.TARBALL}"


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    with _tinynet.registered():
        yield


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory):
    """The tiny release tarball (with a 3 MB eval.graph beside the checkpoint, so that a
    throttled download lasts long enough to be killed) and the weights a load must give."""
    work = tmp_path_factory.mktemp("tiny_release")
    tensors, ema = _tinynet.release_tensors()
    write_checkpoint(tensors, work / "model.ckpt", "v2")
    members = {
        "eval.graph": np.random.default_rng(1).bytes(3_000_000),
        "model.ckpt.index": work / "model.ckpt.index",
        "model.ckpt.data-00000-of-00001": work / "model.ckpt.data-00000-of-00001",
    }
    tarball = make_tarball(work / _tinynet.TARBALL, members, level=0)
    return tarball, tensors, ema


class Served:
    """A running server with the tiny release and a ZOO_REGISTRY pointing at it."""

    def __init__(self, server, registry_path, tarball):
        self.server, self.registry_path, self.tarball = server, registry_path, tarball

    @property
    def gets(self):
        return self.server.gets(TINY_PATH)

    def write_registry(self, *, url=None, size=..., sha256=..., extra=None):
        entry = _tinynet.registry_entry(
            url or self.server.url(TINY_PATH),
            self.tarball.size if size is ... else size,
            self.tarball.sha256 if sha256 is ... else sha256,
        )
        write_registry(
            self.registry_path,
            {"resnet_v1_200": None, "vgg_16": None},
            {_tinynet.NAME: entry, **(extra or {})},
        )


@pytest.fixture
def served(zoo_env, tiny_release, monkeypatch, tmp_path):
    tarball = tiny_release[0]
    with FileServer() as server:
        server.add(TINY_PATH, tarball.path)
        s = Served(server, tmp_path / "registry.json", tarball)
        s.write_registry()
        monkeypatch.setenv("ZOO_REGISTRY", str(s.registry_path))
        yield s


def tiny_expected(ema: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The state dict a correct conversion gives: the in-memory TF loader's result."""
    return zoo.load(_tinynet.NAME, checkpoint=ema).eval().state_dict()


def assert_same_state(model, want):
    got = model.state_dict()
    assert sorted(got) == sorted(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name


def state_digest(path) -> str:
    h = hashlib.sha256()
    for name, value in sorted(load_file(path).items()):
        h.update(name.encode())
        h.update(value.numpy().tobytes())
    return h.hexdigest()


def cache_listing(cache):
    """Files in the cache, lock files aside (they stay; their OS locks are what matters)."""
    files = (str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())
    return sorted(f for f in files if not f.startswith("locks/"))


# --------------------------------------------------------------------------- real releases

# Releases written by zoo's own writer: vgg_16 (a 2016 V1 file, 500 MB), mobilenet_v2 (the
# seven-file bundle with EMA shadows), nasnet_mobile and pnasnet_mobile (2017 V2 bundles). The
# other real layouts (resnet_v2's eval.graph/train.graph, the mobilenet_v1 bundle with RMSProp
# slots, the Large NAS nets without aux batch norms, MobileNet v3's nested ema/ + pristine/, the
# adversarial V2 bundles), TensorFlow-written: tests/test_real_releases.py.
REAL = ["vgg_16", "mobilenet_v2", "nasnet_mobile", "pnasnet_mobile"]


@pytest.fixture(scope="session")
def real_releases(tmp_path_factory):
    """ONE tarball per model and session, built on first use (reference weights, real layout)."""
    built = {}

    def get(name):
        if name not in built:
            built[name] = release_tarball(name, tmp_path_factory.mktemp(f"{name}_release"))
        return built[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_first_load_downloads_converts_and_matches_tf(name, zoo_env, real_releases, monkeypatch):
    tarball = real_releases(name)
    release = zoo.model_info(name).release
    path = f"/models/{release.tarball}"
    with FileServer() as server:
        url = server.add(path, tarball.path)
        registry = write_registry(
            zoo_env.parent / "registry.json",
            {name: {"url": url, "size": tarball.size, "sha256": tarball.sha256}},
        )
        monkeypatch.setenv("ZOO_REGISTRY", str(registry))

        run = runs(name)[0]  # the reference run at the default size and GAIN
        model = zoo.load(name, pretrained=True, progress=False, **run.kwargs).eval()
        assert len(server.gets(path)) == 1
        assert not model.training
        with torch.no_grad():
            logits = model(reference_input(name, run.input_hw)).numpy()
        want = expected(name)["logits" + run.suffix]
        assert np.abs(logits - want).max() <= tolerance(want)

        again = zoo.load(name, pretrained=True, **run.kwargs).eval()
        assert len(server.gets(path)) == 1  # the second load makes no request
        reloaded = again.state_dict()
        for key, value in model.state_dict().items():
            assert torch.equal(reloaded[key], value), key

    info = zoo.cache_info(name, verify=True)
    assert info.complete and info.tarball is None  # the tarball is not kept by default
    meta = info.metadata
    assert meta["source_url"] == url and meta["tarball_sha256"] == tarball.sha256
    assert meta["tarball_size"] == tarball.size
    assert meta["num_classes"] == zoo.model_info(name).num_classes
    assert "global_step" in meta["ignored_tensors"]
    assert (f"{name}/mean_rgb" in meta["ignored_tensors"]) == name.startswith("vgg")
    assert (meta["ema_variables"] > 0) == bool(release.ema)
    assert meta["package_version"] == zoo.__version__ and meta["mapping_version"] >= 1
    assert cache_listing(zoo_env) == [f"weights/{name}.json", f"weights/{name}.safetensors"]


# --------------------------------------------------------------------------- the tiny release


def test_first_load_converts_with_ema_shadows_and_second_makes_no_request(served, tiny_release):
    _, _, ema = tiny_release
    model = zoo.load(_tinynet.NAME, pretrained=True).eval()
    assert len(served.gets) == 1 and not model.training
    assert_same_state(model, tiny_expected(ema))
    zoo.load(_tinynet.NAME, pretrained=True).eval()
    assert len(served.gets) == 1
    meta = zoo.cache_info(_tinynet.NAME).metadata
    assert meta["ema_variables"] == len(ema) and meta["use_ema"] is True
    assert meta["obtained_from"] == served.server.url(TINY_PATH)


def test_use_ema_false_is_a_separate_entry_with_the_raw_variables(served, tiny_release):
    _, tensors, _ = tiny_release
    raw = {k: v for k, v in tensors.items() if "ExponentialMovingAverage" not in k}
    model = zoo.load(_tinynet.NAME, pretrained=True, use_ema=False).eval()
    want = zoo.load(_tinynet.NAME, checkpoint=raw).eval().state_dict()
    assert_same_state(model, want)
    assert zoo.cache_info(_tinynet.NAME, use_ema=False).metadata["ema_variables"] == 0
    assert not zoo.cache_info(_tinynet.NAME).complete  # the EMA entry is another one


def test_kept_tarball_serves_the_other_entry_without_a_download(served, zoo_env, monkeypatch):
    monkeypatch.setenv("ZOO_KEEP_TARBALLS", "1")
    zoo.download_weights(_tinynet.NAME)
    info = zoo.cache_info(_tinynet.NAME)
    assert info.tarball == zoo_env / "downloads" / _tinynet.TARBALL
    zoo.download_weights(_tinynet.NAME, use_ema=False, offline=True)  # from the kept tarball
    assert len(served.gets) == 1
    assert zoo.cache_info(_tinynet.NAME, use_ema=False).complete


def test_release_that_does_not_fit_the_network_caches_nothing(served, zoo_env):
    entry = _tinynet.registry_entry(
        served.server.url(TINY_PATH), served.tarball.size, served.tarball.sha256
    )
    entry["num_classes"] = 12  # the checkpoint's classifier has 10
    served.write_registry(extra={_tinynet.NAME: entry})
    with pytest.raises(zoo.MappingError) as info:
        zoo.load(_tinynet.NAME, pretrained=True).eval()
    message = str(info.value)
    assert _tinynet.TARBALL in message and "12 classes" in message and "TinyNet/Logits" in message
    assert cache_listing(zoo_env) == []


def test_download_weights_returns_the_cached_safetensors(served, tiny_release, zoo_env):
    seen = []
    path = zoo.download_weights(_tinynet.NAME, progress=lambda done, total: seen.append(done))
    assert path == zoo_env / "weights" / f"{_tinynet.NAME}.safetensors"
    assert seen[-1] == served.tarball.size
    assert zoo.cache_info(_tinynet.NAME).path == path
    assert set(load_file(path)) == set(tiny_expected(tiny_release[2]))


def test_entry_truncated_by_hand_is_rebuilt(served, tiny_release, zoo_env, caplog):
    path = zoo.download_weights(_tinynet.NAME)
    path.write_bytes(path.read_bytes()[:-100])
    assert zoo.cache_info(_tinynet.NAME).status == "invalid"
    with caplog.at_level(logging.WARNING, logger="zoo"):
        model = zoo.load(_tinynet.NAME, pretrained=True).eval()
    assert "invalid" in caplog.text and "rebuilding" in caplog.text
    assert len(served.gets) == 2
    assert_same_state(model, tiny_expected(tiny_release[2]))
    assert zoo.cache_info(_tinynet.NAME, verify=True).complete


def test_entry_without_sidecar_is_rebuilt(served, zoo_env):
    zoo.download_weights(_tinynet.NAME)
    (zoo_env / "weights" / f"{_tinynet.NAME}.json").unlink()
    zoo.download_weights(_tinynet.NAME)
    assert len(served.gets) == 2 and zoo.cache_info(_tinynet.NAME).complete


def test_verify_rebuilds_an_entry_with_a_flipped_bit(served, zoo_env):
    path = zoo.download_weights(_tinynet.NAME)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert zoo.download_weights(_tinynet.NAME) == path and len(served.gets) == 1  # cheap check
    zoo.download_weights(_tinynet.NAME, verify=True)
    assert len(served.gets) == 2 and zoo.cache_info(_tinynet.NAME, verify=True).complete


def test_offline_without_cache_is_a_clear_error_and_no_request(served, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(zoo.OfflineError) as info:
        zoo.load(_tinynet.NAME, pretrained=True).eval()
    message = str(info.value)
    assert f"slimzoo-warm {_tinynet.NAME}" in message and "import_tarball" in message
    assert served.server.requests == []


def test_offline_with_cache(served, tiny_release):
    zoo.download_weights(_tinynet.NAME)
    model = zoo.load(_tinynet.NAME, pretrained=True, offline=True).eval()
    assert len(served.gets) == 1
    assert_same_state(model, tiny_expected(tiny_release[2]))


def test_wrong_hash_caches_nothing(served, zoo_env):
    served.write_registry(sha256="0" * 64)
    with pytest.raises(zoo.DownloadError) as info:
        zoo.load(_tinynet.NAME, pretrained=True).eval()
    assert "0" * 64 in str(info.value) and served.tarball.sha256 in str(info.value)
    assert cache_listing(zoo_env) == []


def test_wrong_size_caches_nothing(served, zoo_env):
    served.write_registry(size=served.tarball.size - 1)
    with pytest.raises(zoo.DownloadError, match=str(served.tarball.size - 1)):
        zoo.download_weights(_tinynet.NAME)
    assert cache_listing(zoo_env) == []


def _serve_other(served, tarball):
    served.server.add(TINY_PATH, tarball.path)
    served.write_registry(size=tarball.size, sha256=tarball.sha256)  # its real hash


def test_truncated_tarball_with_matching_hash_caches_nothing(served, zoo_env, tmp_path):
    """E.g. a registry (or mirror) that pinned a broken file: the archive itself is checked."""
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(served.tarball.path.read_bytes()[:-5000])
    _serve_other(served, describe(broken))
    with pytest.raises(zoo.ArchiveError, match="truncated or corrupt"):
        zoo.download_weights(_tinynet.NAME)
    assert cache_listing(zoo_env) == []


def test_hostile_tarball_is_refused_and_nothing_lands_outside(served, zoo_env, tmp_path):
    evil = unsafe_tarball(tmp_path / "evil.tar.gz", "traversal", wanted="model.ckpt.index")
    _serve_other(served, evil)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(zoo.ArchiveError, match=r"\.\./escape\.txt"):
        zoo.download_weights(_tinynet.NAME)
    assert sorted(p.name for p in tmp_path.iterdir() if p != zoo_env) == before
    assert not list(zoo_env.rglob("escape.txt"))
    assert cache_listing(zoo_env) == []


def test_503_then_success_and_dropped_connection_resume_through_load(served):
    served.server.script(TINY_PATH, Fault(status=503), Fault(cut_after=1_000_000))
    zoo.load(_tinynet.NAME, pretrained=True).eval()
    assert served.server.ranges(TINY_PATH) == [None, None, "bytes=1000000-"]


def test_observed_hash_is_recorded_and_checked_on_a_redownload(served, zoo_env, tmp_path):
    served.write_registry(size=None, sha256=None)  # a registry that does not know the hash
    path = zoo.download_weights(_tinynet.NAME)
    meta = zoo.cache_info(_tinynet.NAME).metadata
    assert meta["tarball_sha256"] == served.tarball.sha256
    assert meta["tarball_sha256_source"] == "observed"
    path.write_bytes(b"")  # damaged: the next load re-downloads ...
    other = make_tarball(tmp_path / "other.tar.gz", {"model.ckpt.index": b"x"})
    served.server.add(TINY_PATH, other.path)  # ... but the server now has another file
    with pytest.raises(zoo.DownloadError) as info:
        zoo.download_weights(_tinynet.NAME)
    assert served.tarball.sha256 in str(info.value) and other.sha256 in str(info.value)


def test_mirror_rewrites_the_canonical_url(served, zoo_env, monkeypatch):
    canonical = f"http://download.tensorflow.org/models/{_tinynet.TARBALL}"
    served.write_registry(url=canonical)
    served.server.add(f"/mirror/{_tinynet.TARBALL}", served.tarball.path)
    monkeypatch.setenv("ZOO_MIRROR", served.server.url("/mirror/"))
    zoo.download_weights(_tinynet.NAME)
    assert [r.path for r in served.server.requests] == [f"/mirror/{_tinynet.TARBALL}"]
    meta = zoo.cache_info(_tinynet.NAME).metadata
    assert meta["source_url"] == canonical
    assert meta["obtained_from"] == served.server.url(f"/mirror/{_tinynet.TARBALL}")


def test_no_server_listening_is_a_download_error_at_once(served, zoo_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served.write_registry(url=f"http://127.0.0.1:{port}/models/{_tinynet.TARBALL}")
    with pytest.raises(zoo.DownloadError, match=f"^cannot reach 127.0.0.1:{port}: no network"):
        zoo.load(_tinynet.NAME, pretrained=True)
    assert not zoo.cache_info(_tinynet.NAME).complete


def test_import_tarball_then_load_offline(served, tiny_release, zoo_env, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    path = zoo.import_tarball(served.tarball.path)  # name inferred from the file name
    assert path == zoo.cache_info(_tinynet.NAME).path
    assert zoo.cache_info(_tinynet.NAME).metadata["obtained_from"] == str(served.tarball.path)
    model = zoo.load(_tinynet.NAME, pretrained=True).eval()
    assert_same_state(model, tiny_expected(tiny_release[2]))
    assert zoo.import_tarball(served.tarball.path, _tinynet.NAME) == path  # idempotent
    assert served.server.requests == []


def test_import_tarball_checks_the_file(served, tmp_path, zoo_env):
    fake = make_tarball(tmp_path / _tinynet.TARBALL, {"model.ckpt.index": b"not it"})
    with pytest.raises(zoo.ChecksumError, match=f"expected {served.tarball.size} bytes"):
        zoo.import_tarball(fake.path)
    served.write_registry(size=None)  # only the hash is known: checked while extracting
    with pytest.raises(zoo.ChecksumError, match=f"expected sha256 {served.tarball.sha256}"):
        zoo.import_tarball(fake.path)
    tensors, _ = _tinynet.release_tensors(seed=5)  # a complete release, but another one
    write_checkpoint(tensors, tmp_path / "model.ckpt", "v2")
    (tmp_path / "other").mkdir()
    other = make_tarball(
        tmp_path / "other" / _tinynet.TARBALL,
        {m: tmp_path / m for m in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")},
    )
    with pytest.raises(zoo.ChecksumError, match=other.sha256):
        zoo.import_tarball(other.path)
    assert cache_listing(zoo_env) == []
    unknown = tmp_path / "who_am_i.tar.gz"
    unknown.write_bytes(b"x")
    with pytest.raises(zoo.UnknownModelError, match="Pass name="):
        zoo.import_tarball(unknown)


def test_other_num_classes_needs_skip_classifier(served, tiny_release):
    with pytest.raises(zoo.MappingError, match="skip_classifier=True"):
        zoo.load(_tinynet.NAME, pretrained=True, num_classes=5).eval()
    model = zoo.load(_tinynet.NAME, pretrained=True, num_classes=5, skip_classifier=True).eval()
    assert model.Logits.out_features == 5 and model.num_classes == 5
    want = tiny_expected(tiny_release[2])
    got = model.state_dict()
    for name, value in want.items():
        if not name.startswith("Logits."):
            assert torch.equal(got[name], value), name
    # no classes (a feature extractor, as in timm) needs no flag: nothing is left random
    features = zoo.load(_tinynet.NAME, pretrained=True, num_classes=0).eval()
    assert features.num_classes == 0
    got = features.state_dict()
    for name, value in want.items():
        if not name.startswith("Logits."):
            assert torch.equal(got[name], value), name


def test_unknown_model_and_model_without_release(served):
    with pytest.raises(zoo.UnknownModelError, match="vgg_16"):
        zoo.load("vgg_61", pretrained=True).eval()
    with pytest.raises(zoo.UnknownModelError, match="vgg_16"):
        zoo.model_info("vgg_61")
    with pytest.raises(zoo.NoWeightsError, match="no pretrained weights were published"):
        zoo.load("resnet_v1_200", pretrained=True).eval()
    assert served.server.requests == []


@pytest.mark.parametrize("name", ["resnet_v1_200", "resnet_v2_200"])
def test_unreleased_models_in_the_shipped_registry(name, zoo_env):
    with pytest.raises(zoo.NoWeightsError, match=name):
        zoo.load(name, pretrained=True).eval()
    with pytest.raises(zoo.NoWeightsError):
        zoo.download_weights(name)
    assert not zoo_env.exists()  # nothing created, no network


# --------------------------------------------------------------------------- processes

BARRIER_LOAD = """
    import hashlib, sys, time
    from pathlib import Path
    import _tinynet
    _tinynet.register()
    import zoo
    from safetensors.torch import load_file
    print("ready", flush=True)
    go = Path({go!r})
    while not go.exists():
        time.sleep(0.01)
    path = zoo.download_weights({name!r}, progress=False)
    model = zoo.load({name!r}, pretrained=True, progress=False)
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode()); h.update(value.numpy().tobytes())
    print(path, h.hexdigest(), flush=True)
"""


def test_four_processes_at_once_download_once_and_get_identical_weights(
    served, tiny_release, zoo_env
):
    served.server.throttle = 0.01  # the download lasts while the others queue on the lock
    go = zoo_env.parent / "go"
    children = [spawn(BARRIER_LOAD.format(go=str(go), name=_tinynet.NAME)) for _ in range(4)]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.communicate()
    go.touch()
    results = {finish(child).strip() for child in children}
    assert len(served.gets) == 1  # exactly one download
    assert len(results) == 1  # same path, same weights
    path, digest = results.pop().split()
    assert path == str(zoo.cache_info(_tinynet.NAME).path)
    want = tiny_expected(tiny_release[2])
    h = hashlib.sha256()
    for key, value in sorted(want.items()):
        h.update(key.encode())
        h.update(value.numpy().tobytes())
    assert digest == h.hexdigest()


def test_process_killed_mid_download_then_next_load_resumes(served, tiny_release, zoo_env):
    served.server.throttle = 0.05  # 64 KiB every 50 ms
    part = zoo_env / "downloads" / f"{_tinynet.TARBALL}.part"
    child = spawn(
        f"""
        import _tinynet
        _tinynet.register()
        import zoo
        zoo.download_weights({_tinynet.NAME!r}, progress=False)
        """
    )
    deadline = time.monotonic() + 120
    while not (part.exists() and part.stat().st_size > 300_000):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the child never started downloading"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)  # holding the entry and download locks
    child.wait()
    kept = part.stat().st_size
    assert not zoo.cache_info(_tinynet.NAME).complete
    assert zoo.cache_info(_tinynet.NAME).partial_bytes == kept

    served.server.throttle = 0.0
    model = zoo.load(_tinynet.NAME, pretrained=True).eval()  # the dead holder's locks do not block
    ranges = served.server.ranges(TINY_PATH)
    assert ranges[0] is None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1][len("bytes=") : -1]) >= kept
    assert_same_state(model, tiny_expected(tiny_release[2]))
    assert not part.exists()
    leftovers = [p for p in cache_listing(zoo_env) if p.startswith(("tmp/", "weights/.tmp"))]
    assert leftovers == []


def test_sidecar_is_plain_json_with_the_provenance(served, zoo_env):
    zoo.download_weights(_tinynet.NAME)
    sidecar = json.loads((zoo_env / "weights" / f"{_tinynet.NAME}.json").read_text())
    for key in (
        "source_url",
        "tarball_sha256",
        "tarball_size",
        "package_version",
        "mapping_version",
        "model",
        "num_classes",
        "created",
        "ema_shadows_used",
        "safetensors_crc32c",
    ):
        assert key in sidecar, key
    assert sidecar["tarball_size"] == served.tarball.size
    weights = zoo_env / "weights" / f"{_tinynet.NAME}.safetensors"
    assert sidecar["safetensors_size"] == weights.stat().st_size
