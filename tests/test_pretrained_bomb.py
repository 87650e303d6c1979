"""A gzip bomb named like a release: ``zoo.import_tarball`` verifies the file before extracting
anything, and decompression is bounded (``ZOO_MAX_EXTRACT_RATIO``, at least 64 MiB).

The imports run in a child process with a file size limit (``RLIMIT_FSIZE``, 8 MiB): a member of
128 MiB written to the cache would fail there as a full disk (``CacheError``), so the errors seen
prove that nothing of the sort was written.
"""

from __future__ import annotations

import json
import tarfile

import _tinynet
import pytest
from _pipeline import isolate, spawn
from _tarballs import describe, write_registry

BOMB_MEMBER = 128 << 20  # zeros: ~0.1% of this once gzipped


class Zeros:
    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def gzip_bomb(path, members: dict[str, int]):
    """A gzipped tarball of members made of zeros, ``{name: size}``."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, Zeros(size))
    return describe(path)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    work = tmp_path_factory.mktemp("bombs")
    (work / "wanted").mkdir()
    (work / "unwanted").mkdir()
    wanted = gzip_bomb(  # the checkpoint itself is the bomb
        work / "wanted" / _tinynet.TARBALL,
        {"model.ckpt.index": 100, "model.ckpt.data-00000-of-00001": BOMB_MEMBER},
    )
    unwanted = gzip_bomb(  # a member that is never extracted is the bomb
        work / "unwanted" / _tinynet.TARBALL,
        {"eval.graph": BOMB_MEMBER, "model.ckpt.index": 100},
    )
    assert wanted.size < 1 << 20 and unwanted.size < 1 << 20
    return {"wanted": wanted, "unwanted": unwanted}


CASES = {  # name: (bomb, registry sha256, ZOO_MAX_EXTRACT_RATIO)
    "hash_wanted": ("wanted", "0" * 64, None),  # the release's hash, not the bomb's
    "hash_unwanted": ("unwanted", "0" * 64, None),
    "no_hash_wanted": ("wanted", None, None),  # nothing to check the file against
    "no_hash_unwanted": ("unwanted", None, "1"),
}


@pytest.fixture(scope="module")
def imported(bombs, tmp_path_factory):
    """Each case imported in one child process with an 8 MiB file size limit (one process:
    starting one costs seconds); ``{case: (error class, message, files left in the cache)}``."""
    work = tmp_path_factory.mktemp("bomb_imports")
    monkeypatch = pytest.MonkeyPatch()
    isolate(work, monkeypatch)
    try:
        plan = {}
        for case, (bomb, sha256, ratio) in CASES.items():
            entry = _tinynet.registry_entry(
                f"http://127.0.0.1:9/models/{_tinynet.TARBALL}", None, sha256
            )
            registry = work / f"{case}.json"
            write_registry(registry, {"vgg_16": None}, {_tinynet.NAME: entry})
            plan[case] = [str(bombs[bomb].path), str(registry), str(work / case), ratio]
        child = spawn(
            f"""
            import json, os, resource
            from pathlib import Path
            import _tinynet
            import zoo

            resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))
            results = {{}}
            with _tinynet.registered():
                for case, (tarball, registry, cache, ratio) in {plan!r}.items():
                    os.environ.update(ZOO_REGISTRY=registry, ZOO_CACHE_DIR=cache)
                    os.environ.pop("ZOO_MAX_EXTRACT_RATIO", None)
                    if ratio:
                        os.environ["ZOO_MAX_EXTRACT_RATIO"] = ratio
                    try:
                        zoo.import_tarball(tarball)
                        kind, message = "imported", ""
                    except Exception as exc:
                        kind, message = type(exc).__name__, str(exc)
                    files = sorted(
                        str(p.relative_to(cache)) for p in Path(cache).rglob("*")
                        if p.is_file() and not p.relative_to(cache).parts[0] == "locks"
                    )
                    results[case] = [kind, message, files]
            print(json.dumps(results))
            """
        )
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
        return json.loads(out)
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("case", ["hash_wanted", "hash_unwanted"])
def test_bomb_is_refused_by_its_hash_before_extraction(bombs, imported, case):
    kind, message, files = imported[case]
    assert kind == "ChecksumError", message
    bomb = bombs[CASES[case][0]]
    assert f"expected sha256 {'0' * 64}, found {bomb.sha256}" in message
    assert files == []


def test_bomb_in_a_wanted_member_is_refused_unwritten(imported):
    kind, message, files = imported["no_hash_wanted"]
    assert kind == "ArchiveError", message
    assert "decompression bomb" in message and "declares 134217728 bytes" in message
    assert "ZOO_MAX_EXTRACT_RATIO" in message
    assert files == []


def test_bomb_in_a_skipped_member_is_cut_short(imported):
    kind, message, files = imported["no_hash_unwanted"]
    assert kind == "ArchiveError", message
    assert "decompression bomb" in message and "67108864 bytes" in message  # the 64 MiB floor
    assert files == []
