"""The benchmarks' worker processes (``benchmarks._util.Worker``, ``paired_rounds``): the
machinery behind the speed tables must time what it is asked to, in the order it says, and
report a broken child instead of a number. No timing is asserted here (speed goals live in
``benchmarks/``); the children record what they ran."""

from __future__ import annotations

import pytest

from benchmarks._util import Worker, paired_rounds

# A child that counts its passes per key and records every call in order.
_COUNTING = """
import time
calls, result = [], {{"name": {name!r}}}

def make(key):
    def one_pass():
        calls.append(key)
        time.sleep({sleep})
    return one_pass

benches = {{"a": make("a"), "b": make("b")}}
result["calls"] = calls
"""


def _worker(name: str, sleep: float = 0.0) -> Worker:
    return Worker(name, _COUNTING.format(name=name, sleep=sleep))


def test_a_worker_times_the_passes_it_is_asked_for_and_returns_its_result() -> None:
    worker = _worker("w", sleep=0.02)
    try:
        times = worker.time("a", repeat=3, warmup=2)
        assert len(times) == 3
        assert all(t >= 0.02 for t in times)  # the pass itself ran inside the timing
        worker.time("b", repeat=1, warmup=0)
        result = worker.close()
    finally:
        worker.kill()
    assert result == {"name": "w", "calls": ["a"] * 5 + ["b"]}


def test_paired_rounds_gives_every_worker_one_median_per_round() -> None:
    workers = [_worker("slow", sleep=0.03), _worker("fast")]
    try:
        medians = paired_rounds(workers, "a", rounds=3, repeat=2, warmup=1)
        results = [w.close() for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [len(m) for m in medians] == [3, 3]
    assert all(s >= 0.03 for s in medians[0])  # medians stay with their own worker
    assert all(f < 0.03 for f in medians[1])
    assert [r["calls"] for r in results] == [["a"] * 9] * 2  # (1 warm-up + 2) x 3 rounds


def test_a_child_that_fails_in_set_up_is_reported_with_its_error() -> None:
    worker = Worker("broken", "raise RuntimeError('no such network: resnet_v3')\n")
    try:
        with pytest.raises(RuntimeError, match=r"(?s)'broken' died.*no such network: resnet_v3"):
            worker.time("a", repeat=1, warmup=0)
    finally:
        worker.kill()


def test_a_pass_that_fails_is_reported_with_its_error() -> None:
    code = "def fail():\n    raise ValueError('bad batch')\nbenches, result = {'a': fail}, {}\n"
    worker = Worker("failing", code)
    try:
        with pytest.raises(RuntimeError, match=r"(?s)'failing' died.*ValueError: bad batch"):
            worker.time("a", repeat=1, warmup=0)
    finally:
        worker.kill()


def test_the_tf_baseline_is_the_faster_back_end_and_each_ran_the_probe() -> None:
    from benchmarks.bench_fast_default import PROBE, _faster_tf

    workers = {"oneDNN": _worker("oneDNN", sleep=0.05), "Eigen": _worker("Eigen")}
    try:
        assert _faster_tf(workers, "a") == "Eigen"
        workers["oneDNN"], workers["Eigen"] = workers["Eigen"], workers["oneDNN"]
        assert _faster_tf(workers, "b") == "oneDNN"  # by time, not by name
        results = [w.close() for w in workers.values()]
    finally:
        for w in workers.values():
            w.kill()
    assert [r["calls"] for r in results] == [["a"] * sum(PROBE) + ["b"] * sum(PROBE)] * 2
