"""Fixtures shared by the pretrained-pipeline tests: an isolated ``ZOO_*`` environment and a
way to run zoo in a separate process (for concurrency and kill tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

# Fast failure in tests: 3 retries 10 ms apart, short timeouts (everything is on 127.0.0.1).
FAST = {"ZOO_RETRIES": "3", "ZOO_BACKOFF": "0.01", "ZOO_TIMEOUT": "5,10", "ZOO_LOCK_TIMEOUT": "120"}


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """For a ``zoo_env`` fixture: a fresh cache directory and no inherited ZOO_* settings;
    returns the cache directory.

    Requests to anything but 127.0.0.1 go to a dead proxy, so a test that would reach the
    internet by mistake fails instead.
    """
    for key in list(os.environ):
        if key.startswith("ZOO_") and key != "ZOO_REFERENCE_DIR" and key != "ZOO_REQUIRE_TF":
            monkeypatch.delenv(key)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ZOO_CACHE_DIR", str(cache))
    for key, value in FAST.items():
        monkeypatch.setenv(key, value)
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(key, "http://127.0.0.1:9")  # discard port: nothing listens
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return cache


def spawn(code: str, **popen) -> subprocess.Popen:
    """Start ``code`` in a fresh Python with this worktree's packages and the tests' helpers
    importable and the current environment (so the ZOO_* settings of ``zoo_env``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for ``process``; its stdout, or an AssertionError with its stderr if it failed."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"child failed ({process.returncode}):\n{err[-3000:]}"
    return out
