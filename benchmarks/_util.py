"""Timing and memory helpers shared by the benchmark scripts (speed goals live here, as ratios
against a baseline measured in the same run, never as assertions in tests)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "Worker",
    "machine_info",
    "markdown_table",
    "measure",
    "only_networks",
    "paired_rounds",
    "random_model",
    "reference",
    "run_isolated",
]


def reference() -> Any:
    """``tests/_reference.py`` (the reference data kept in tests/reference: ``manifest``,
    ``meta``, ...) with the weight recipe of ``tests/_recipe.py`` as its ``recipe`` attribute."""
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import _recipe
    import _reference

    _reference.recipe = _recipe
    return _reference


def measure(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_isolated(code: str, *, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a fresh Python process and return the dict it leaves in ``result``.

    The dict gains ``peak_rss_mb``, the child's own maximum resident set, so memory figures of
    different approaches measured in one run do not contaminate each other.
    """
    # VmHWM is the peak RSS of this process's own address space. ru_maxrss is not usable here:
    # Linux carries the parent's RSS at fork time over the exec into the child's ru_maxrss, so
    # a benchmark process holding 2 GB would report >= 2 GB for every child it starts.
    epilogue = (
        "\nimport json as _json, resource as _resource\n"
        "try:\n"
        "    _hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "    result['peak_rss_mb'] = int(_hwm.split()[1]) / 1024\n"
        "except (OSError, IndexError):\n"
        "    result['peak_rss_mb'] = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(_json.dumps(result))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code + epilogue],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# The loop a Worker's child runs after its set-up code: it times the callables of ``benches`` on
# request and answers on a line of its own (libraries may print to stdout too).
_WORKER_LOOP = """
import json as _json, sys as _sys, time as _time
_REPLY = {reply!r}
print(_REPLY + "null", flush=True)  # set-up done
for _line in _sys.stdin:
    _request = _json.loads(_line)
    if _request is None:
        break
    _fn = benches[_request["key"]]
    for _ in range(_request["warmup"]):
        _fn()
    _times = []
    for _ in range(_request["repeat"]):
        _start = _time.perf_counter()
        _fn()
        _times.append(_time.perf_counter() - _start)
    print(_REPLY + _json.dumps(_times), flush=True)
print(_REPLY + _json.dumps(result), flush=True)
"""


class Worker:
    """A benchmark child process that sets up once, then times its callables on request.

    ``code`` runs first in a fresh Python process and must leave ``benches`` (key → callable
    that runs one timed pass) and ``result`` (a JSON-able dict returned by :meth:`close`).
    Several workers can then take turns on one machine (:func:`paired_rounds`): every side is
    set up once, yet each is measured in the same minutes as the others, so drifting machine
    load hits all of them alike.
    """

    _REPLY = "\x00worker: "

    def __init__(self, name: str, code: str, *, env: dict[str, str] | None = None) -> None:
        import tempfile

        self.name = name
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code + _WORKER_LOOP.format(reply=self._REPLY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._ready = False

    def _reply(self) -> Any:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(self._REPLY):
                return json.loads(line[len(self._REPLY) :])
        self._stderr.seek(0)
        error = self._stderr.read()[-3000:]
        raise RuntimeError(f"benchmark worker {self.name!r} died ({self._proc.wait()}):\n{error}")

    def wait_ready(self) -> None:
        if not self._ready:
            self._reply()
            self._ready = True

    def time(self, key: str, *, repeat: int, warmup: int) -> list[float]:
        """Seconds of each of ``repeat`` passes of ``benches[key]``, after ``warmup`` untimed."""
        self.wait_ready()
        assert self._proc.stdin is not None
        request = {"key": key, "repeat": repeat, "warmup": warmup}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._reply()

    def close(self) -> dict[str, Any]:
        """End the child; returns its ``result``."""
        self.wait_ready()
        assert self._proc.stdin is not None
        self._proc.stdin.write("null\n")
        self._proc.stdin.flush()
        result = self._reply()
        self._proc.wait()
        self._stderr.close()
        return result

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def paired_rounds(
    workers: Sequence[Worker], key: str, *, rounds: int, repeat: int, warmup: int = 1
) -> list[list[float]]:
    """Time ``key`` on every worker in ``rounds`` turns; returns, per worker, the median seconds
    of each of its turns.

    A turn is ``warmup`` untimed passes (the other processes ran since, so the caches are
    cold) and ``repeat`` timed ones. The order of the workers rotates from round to round, and
    each turn starts after a short pause, so one side's idle threads (OpenMP and TF's pool
    spin for a while after their last task) do not eat into the next side's time.
    """
    for worker in workers:  # no set-up still running beside a timed turn
        worker.wait_ready()
    medians: list[list[float]] = [[] for _ in workers]
    for r in range(rounds):
        for i in range(len(workers)):
            w = (i + r) % len(workers)
            time.sleep(0.1)
            times = workers[w].time(key, repeat=repeat, warmup=warmup)
            medians[w].append(statistics.median(times))
    return medians


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""
    import numpy
    import torch

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cores": str(os.cpu_count()),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "numpy": numpy.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats get 3 significant digits."""

    def cell(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def random_model(name: str, *, fuse_bn: bool = False) -> Any:
    """``zoo.load(name)`` with seeded random weights and randomised batch-norm statistics (so
    every layer, and a fused batch norm, changes the logits), in eval mode."""
    import torch

    import zoo

    torch.manual_seed(0)
    model = zoo.load(name)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return zoo.fuse_bn(model) if fuse_bn else model.eval()


def only_networks(names: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """``names`` (in their order) that are in ``wanted`` (a benchmark's ``--networks``); a
    wanted name the benchmark does not measure stops it with the names it has."""
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"unknown network(s) {unknown}; choose from {list(names)}")
    return [n for n in names if n in wanted]
