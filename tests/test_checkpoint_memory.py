"""The reader reads what is asked for and holds one tensor at a time (~200 MB checkpoints)."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

import zoo
from zoo.checkpoint import write_v1, write_v2

MB = 1 << 20
SHAPES = {  # ~200 MB of float32; the largest tensor is 64 MB
    "net/block1/weights": (4096, 4096),
    "net/block2/weights": (3, 3, 1024, 1024),
    "net/block3/weights": (3, 3, 1024, 1024),
    "net/block4/weights": (3, 3, 1024, 1024),
    "net/fc/weights": (2048, 4096),
    "net/fc/biases": (4096,),
    "global_step": (),
}
LARGEST = 64 * MB


@pytest.fixture(scope="module", params=["v1", "v2"])
def big_checkpoint(request, tmp_path_factory):
    tensors = {
        name: np.full(shape, i + 0.5, np.float32) for i, (name, shape) in enumerate(SHAPES.items())
    }
    assert max(v.nbytes for v in tensors.values()) == LARGEST
    writer = write_v1 if request.param == "v1" else write_v2
    path = writer(tmp_path_factory.mktemp(request.param) / "model.ckpt", tensors)
    del tensors
    return path


class ReadCounter:
    """Counts the bytes the process reads with pread/preadv (how the reader reads files)."""

    def __init__(self, monkeypatch) -> None:
        self.bytes = 0
        pread, preadv = os.pread, os.preadv

        def counting_pread(fd, n, offset):
            data = pread(fd, n, offset)
            self.bytes += len(data)
            return data

        def counting_preadv(fd, buffers, offset):
            n = preadv(fd, buffers, offset)
            self.bytes += n
            return n

        monkeypatch.setattr(os, "pread", counting_pread)
        monkeypatch.setattr(os, "preadv", counting_preadv)


def test_checkpoint_is_big(big_checkpoint) -> None:
    files = zoo.open_checkpoint(big_checkpoint).files
    assert sum(p.stat().st_size for p in files) > 190 * MB


def test_one_small_tensor_reads_little(big_checkpoint, monkeypatch) -> None:
    counter = ReadCounter(monkeypatch)
    tracemalloc.start()
    try:
        with zoo.open_checkpoint(big_checkpoint) as reader:
            assert reader.shape("net/block1/weights") == (4096, 4096)
            value = reader["net/fc/biases"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value.tolist() == [list(SHAPES).index("net/fc/biases") + 0.5] * 4096
    assert counter.bytes < 1 * MB, f"read {counter.bytes / MB:.1f} MB for a 16 KB tensor"
    assert peak < 1 * MB, f"peak allocation {peak / MB:.1f} MB"


def test_iterating_holds_one_tensor(big_checkpoint, monkeypatch) -> None:
    counter = ReadCounter(monkeypatch)
    tracemalloc.start()
    try:
        with zoo.open_checkpoint(big_checkpoint) as reader:
            seen = []
            for name in reader:
                seen.append(name)
                value = reader[name]
                assert value.shape == SHAPES[name]
                assert float(value.reshape(-1)[-1]) == list(SHAPES).index(name) + 0.5, name
                del value  # the caller lets it go: nothing else keeps it alive
            total = sum(p.stat().st_size for p in reader.files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == sorted(SHAPES)
    assert peak < LARGEST + 2 * MB, f"peak allocation {peak / MB:.1f} MB"
    assert counter.bytes < total + 2 * MB, "every byte is read about once"
