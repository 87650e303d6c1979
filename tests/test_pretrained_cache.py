"""The weights cache: entry checks, atomic commit, temporaries, and inter-process locks."""

from __future__ import annotations

import json
import signal
import time

import google_crc32c
import numpy as np
import pytest
from _pipeline import isolate, spawn
from safetensors.torch import load_file

import zoo
from zoo.cache import SIDECAR_FORMAT, SIDECAR_VERSION, Cache
from zoo.convert import MAPPING_VERSION
from zoo.safetensors_stream import TensorSpec, read_header, write_streaming

TARBALL_SHA = "ab" * 32


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


def make_entry(cache: Cache, key: str = "m", model: str = "m") -> dict:
    """A complete entry written the way the pipeline writes one."""
    cache.ensure_dirs()
    tensors = {
        "a.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "a.num_batches_tracked": np.zeros((), np.int64),
    }
    specs = [TensorSpec(n, v.dtype, v.shape) for n, v in tensors.items()]
    tmp = cache.temp_file(key, ".safetensors")
    size, crc = write_streaming(tmp, specs, iter(tensors.values()))
    sidecar = {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "model": model,
        "mapping_version": MAPPING_VERSION,
        "tarball_sha256": TARBALL_SHA,
        "safetensors_size": size,
        "safetensors_crc32c": crc,
    }
    cache.commit(key, tmp, sidecar)
    return tensors


def inspect(cache, key="m", **kw):
    kw.setdefault("model", "m")
    kw.setdefault("tarball_sha256", TARBALL_SHA)
    return cache.inspect(key, **kw)


def test_committed_entry_is_complete_and_loads_with_safetensors(tmp_path):
    cache = Cache(tmp_path)
    tensors = make_entry(cache)
    state = inspect(cache, deep=True)
    assert state.complete and state.problem is None
    loaded = load_file(cache.weights_path("m"))
    assert np.array_equal(loaded["a.weight"].numpy(), tensors["a.weight"])
    assert sorted(p.name for p in cache.weights_dir.iterdir()) == ["m.json", "m.safetensors"]


def test_missing_entry(tmp_path):
    assert inspect(Cache(tmp_path)).status == "missing"


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("delete_sidecar", "sidecar is missing"),
        ("garble_sidecar", "unreadable"),
        ("truncate_weights", "bytes, the sidecar says"),
        ("delete_weights", "missing"),
        ("garble_header", "header"),
    ],
)
def test_damaged_entries_are_invalid(tmp_path, damage, problem):
    cache = Cache(tmp_path)
    make_entry(cache)
    weights, sidecar = cache.weights_path("m"), cache.sidecar_path("m")
    if damage == "delete_sidecar":
        sidecar.unlink()
    elif damage == "garble_sidecar":
        sidecar.write_text("{not json")
    elif damage == "truncate_weights":
        weights.write_bytes(weights.read_bytes()[:-7])
    elif damage == "delete_weights":
        weights.unlink()
    elif damage == "garble_header":
        data = bytearray(weights.read_bytes())
        data[8:20] = b"X" * 12  # same size, broken JSON header
        weights.write_bytes(bytes(data))
    state = inspect(cache)
    assert state.status == "invalid" and problem in state.problem


def test_flipped_data_byte_is_found_only_by_the_deep_check(tmp_path):
    cache = Cache(tmp_path)
    make_entry(cache)
    weights = cache.weights_path("m")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x40
    weights.write_bytes(bytes(data))
    assert inspect(cache).complete  # the warm path reads header and size only
    state = inspect(cache, deep=True)
    assert state.status == "invalid" and "CRC-32C" in state.problem


def test_entry_of_another_mapping_version_or_tarball_is_stale(tmp_path):
    cache = Cache(tmp_path)
    make_entry(cache)
    assert "registry now says" in inspect(cache, tarball_sha256="cd" * 32).problem
    assert inspect(cache, tarball_sha256=None).complete  # registry without a hash: kept
    assert "not 'other'" in inspect(cache, model="other").problem
    sidecar = cache.sidecar_path("m")
    data = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**data, "mapping_version": 0}))
    assert "mapping version 0" in inspect(cache).problem


def test_safetensors_header_check_rejects_gaps(tmp_path):
    path = tmp_path / "x.safetensors"
    specs = [TensorSpec("a", np.dtype(np.float32), (4,))]
    write_streaming(path, specs, [np.ones(4, np.float32)])
    assert list(read_header(path)) == ["a"]
    with open(path, "ab") as f:
        f.write(b"\0\0\0\0")  # bytes no tensor owns
    with pytest.raises(ValueError, match="describes"):
        read_header(path)


def test_temporaries_are_removed_per_key_only(tmp_path):
    cache = Cache(tmp_path)
    cache.ensure_dirs()
    mine = [cache.temp_file("vgg_16", ".safetensors"), cache.temp_file("vgg_16", ".json")]
    other = cache.temp_file("vgg_16.no_ema", ".safetensors")
    for path in [*mine, other]:
        path.write_bytes(b"partial")
    work_mine, work_other = cache.temp_dir("vgg_16"), cache.temp_dir("vgg_16.no_ema")
    cache.remove_temporaries("vgg_16")
    assert not any(p.exists() for p in mine) and not work_mine.exists()
    assert other.exists() and work_other.exists()


def test_remove_entry_deletes_the_sidecar_first(tmp_path, monkeypatch):
    cache = Cache(tmp_path)
    make_entry(cache)
    order = []
    original = type(cache.weights_path("m")).unlink

    def spy(self, missing_ok=False):
        order.append(self.name)
        original(self, missing_ok=missing_ok)

    monkeypatch.setattr(type(cache.weights_path("m")), "unlink", spy)
    cache.remove_entry("m")
    assert order == ["m.json", "m.safetensors"]


# --------------------------------------------------------------------------- locks

# The holder uses filelock directly on the lock file Cache.lock uses: starting it stays fast
# (no torch import), and what is tested is Cache.lock's behaviour towards another process.
HOLD_LOCK = """
    import time, filelock
    with filelock.FileLock({path!r}):
        print("locked", flush=True)
        time.sleep(600)
"""


def _holder(cache):
    child = spawn(HOLD_LOCK.format(path=str(cache.locks_dir / "m.lock")))
    assert child.stdout.readline().strip() == "locked", child.communicate()
    return child


def test_lock_of_a_killed_holder_is_free_at_once(zoo_env):
    cache = Cache(zoo_env)
    cache.ensure_dirs()
    child = _holder(cache)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert (cache.locks_dir / "m.lock").exists()  # the file stays; the OS lock does not
    start = time.monotonic()
    with cache.lock("m", 30, "testing"):
        waited = time.monotonic() - start
    assert waited < 25  # acquired, not timed out (the bound is only a sanity check)


def test_lock_held_by_a_live_process_times_out_with_a_clear_error(zoo_env):
    cache = Cache(zoo_env)
    cache.ensure_dirs()
    child = _holder(cache)
    try:
        with pytest.raises(zoo.CacheError) as info, cache.lock("m", 0.3, "converting m"):
            pass
        message = str(info.value)
        assert "m.lock" in message and "converting m" in message and "ZOO_LOCK_TIMEOUT" in message
    finally:
        child.kill()
        child.wait()


# --------------------------------------------------------------------------- streaming writer


def test_streaming_writer_copies_strided_views_block_by_block(tmp_path, monkeypatch):
    import zoo.safetensors_stream as stream

    monkeypatch.setattr(stream, "_BLOCK_BYTES", 64)  # many blocks even for small tensors
    rng = np.random.default_rng(0)
    hwio = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    arrays = {
        "conv.weight": hwio.transpose(3, 2, 0, 1),  # the CONV layout view, not contiguous
        "fc.weight": rng.standard_normal((6, 4)).astype(np.float16),  # cast to float32
        "bn.num_batches_tracked": np.zeros((), np.int64),
        "empty": np.zeros((0, 3), np.float32),
    }
    specs = [
        TensorSpec("conv.weight", np.dtype(np.float32), (7, 5, 3, 3)),
        TensorSpec("fc.weight", np.dtype(np.float32), (6, 4)),
        TensorSpec("bn.num_batches_tracked", np.dtype(np.int64), ()),
        TensorSpec("empty", np.dtype(np.float32), (0, 3)),
    ]
    path = tmp_path / "w.safetensors"
    size, crc = write_streaming(path, specs, iter(arrays.values()), {"model": "x"})
    assert size == path.stat().st_size
    assert int(crc, 16) == google_crc32c.value(path.read_bytes())
    loaded = {name: t.numpy() for name, t in load_file(path).items()}
    for spec in specs:
        got = loaded[spec.name]
        assert got.dtype == spec.dtype and got.shape == spec.shape
        assert np.array_equal(got, arrays[spec.name].astype(spec.dtype))


def test_streaming_writer_refuses_a_wrong_shape_or_kind(tmp_path):
    spec = [TensorSpec("a", np.dtype(np.float32), (4,))]
    with pytest.raises(ValueError, match="header says"):
        write_streaming(tmp_path / "x.safetensors", spec, [np.ones(5, np.float32)])
    with pytest.raises(ValueError, match="header says"):
        write_streaming(tmp_path / "y.safetensors", spec, [np.ones(4, np.complex64)])
