"""One cache shared by processes whose registries name different releases of the same model
(another ``ZOO_REGISTRY``, or a release updated in the registry): the entries coexist, and no
process deletes a complete entry that it has not replaced."""

from __future__ import annotations

import json

import _tinynet
import pytest
from _http import FileServer
from _pipeline import finish, isolate, spawn
from _tarballs import make_tarball, write_checkpoint, write_registry
from safetensors.numpy import load_file

import zoo


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    with _tinynet.registered():
        yield


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Two releases of the tiny model under the same file name, with different weights."""
    out = {}
    for label, seed in (("a", 0), ("b", 5)):
        work = tmp_path_factory.mktemp(f"release_{label}")
        tensors, _ = _tinynet.release_tensors(seed=seed)
        write_checkpoint(tensors, work / "model.ckpt", "v2")
        members = {m: work / m for m in ("model.ckpt.index", "model.ckpt.data-00000-of-00001")}
        (work / "out").mkdir()
        out[label] = make_tarball(work / "out" / _tinynet.TARBALL, members)
    assert out["a"].sha256 != out["b"].sha256
    return out


@pytest.fixture
def served(releases, tmp_path, monkeypatch):
    """A server with both releases; ``registries[label]`` names release ``label``."""
    isolate(tmp_path, monkeypatch)
    with FileServer() as server:
        registries = {}
        for label, tarball in releases.items():
            path = f"/{label}/{_tinynet.TARBALL}"
            server.add(path, tarball.path)
            entry = _tinynet.registry_entry(server.url(path), tarball.size, tarball.sha256)
            registries[label] = write_registry(
                tmp_path / f"registry_{label}.json", {"vgg_16": None}, {_tinynet.NAME: entry}
            )
        yield server, registries


def weights_of(path):
    return {k: v.tobytes() for k, v in load_file(path).items()}


def test_two_registries_share_one_cache(served, releases, monkeypatch):
    server, registries = served
    children = []
    for label in ("a", "b"):  # at the same time, on an empty cache
        monkeypatch.setenv("ZOO_REGISTRY", str(registries[label]))
        children.append(
            spawn(
                f"""
                import json, _tinynet, zoo
                with _tinynet.registered():
                    path = zoo.download_weights({_tinynet.NAME!r}, progress=False)
                    meta = zoo.cache_info({_tinynet.NAME!r}).metadata
                print(json.dumps([str(path), meta["tarball_sha256"]]))
                """
            )
        )
    paths = {}
    for label, child in zip(("a", "b"), children):
        path, sha256 = json.loads(finish(child))
        assert sha256 == releases[label].sha256
        paths[label] = path
    assert paths["a"] != paths["b"]
    assert weights_of(paths["a"]) != weights_of(paths["b"])
    for label in ("a", "b", "a", "b"):  # each process finds its own entry, nothing is rebuilt
        monkeypatch.setenv("ZOO_REGISTRY", str(registries[label]))
        info = zoo.cache_info(_tinynet.NAME, verify=True)
        assert info.complete and str(info.path) == paths[label]
        assert str(zoo.download_weights(_tinynet.NAME, progress=False)) == paths[label]
    assert [len(server.gets(f"/{label}/{_tinynet.TARBALL}")) for label in "ab"] == [1, 1]


def test_failing_download_after_a_registry_change_keeps_the_old_entry(served, monkeypatch):
    server, registries = served
    monkeypatch.setenv("ZOO_REGISTRY", str(registries["a"]))
    path = zoo.download_weights(_tinynet.NAME, progress=False)
    before = weights_of(path)
    server.add(f"/b/{_tinynet.TARBALL}", b"not the release")  # release b now fails to download
    monkeypatch.setenv("ZOO_REGISTRY", str(registries["b"]))
    assert not zoo.cache_info(_tinynet.NAME).complete  # b's entry: not there yet
    with pytest.raises(zoo.DownloadError):
        zoo.download_weights(_tinynet.NAME, progress=False)
    monkeypatch.setenv("ZOO_REGISTRY", str(registries["a"]))
    info = zoo.cache_info(_tinynet.NAME, verify=True)
    assert info.complete and info.path == path and weights_of(path) == before
    assert len(server.gets(f"/a/{_tinynet.TARBALL}")) == 1


def test_rebuilt_entry_replaces_the_old_one_only_when_committed(served, releases, monkeypatch):
    """A corrupt entry of the same release is rebuilt in place; a failing rebuild leaves it as
    it was (invalid, not deleted); a good rebuild replaces it."""
    server, registries = served
    monkeypatch.setenv("ZOO_REGISTRY", str(registries["a"]))
    path = zoo.download_weights(_tinynet.NAME, progress=False)
    good = path.read_bytes()
    path.write_bytes(good[:-10])  # damaged on disk
    server.add(f"/a/{_tinynet.TARBALL}", b"gone")
    with pytest.raises(zoo.DownloadError, match=f"/a/{_tinynet.TARBALL}"):
        zoo.download_weights(_tinynet.NAME, progress=False)
    assert path.read_bytes() == good[:-10]  # untouched by the failed rebuild
    assert zoo.cache_info(_tinynet.NAME).status == "invalid"
    server.add(f"/a/{_tinynet.TARBALL}", releases["a"].path)
    assert zoo.download_weights(_tinynet.NAME, progress=False) == path
    assert path.read_bytes() == good
