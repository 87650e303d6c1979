"""zoo.hub.download against a real HTTP server on 127.0.0.1: resume, retries, verification."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import time

import numpy as np
import pytest
from _http import Fault, FileServer
from _pipeline import finish, isolate, spawn

import zoo
from zoo import config, hub

DATA = np.random.default_rng(0).bytes(3_000_000)
SHA = hashlib.sha256(DATA).hexdigest()
PATH = "/models/test_2016_08_28.tar.gz"


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture
def server():
    with FileServer() as s:
        s.add(PATH, DATA)
        yield s


def fetch(url, dest, **kwargs):
    kwargs.setdefault("size", len(DATA))
    kwargs.setdefault("sha256", SHA)
    return hub.download(url, dest, settings=config.resolve(), progress=False, **kwargs)


def leftovers(dest):
    return sorted(p.name for p in dest.parent.iterdir() if p.name != dest.name)


def test_download_is_verified_and_renamed_into_place(server, zoo_env, tmp_path):
    dest = tmp_path / "dl" / "test.tar.gz"
    got = fetch(server.url(PATH), dest)
    assert dest.read_bytes() == DATA
    assert (got.size, got.sha256, got.resumed_from, got.requests) == (len(DATA), SHA, 0, 1)
    assert leftovers(dest) == []  # no .part, no .part.json
    assert server.ranges(PATH) == [None]
    assert server.gets(PATH)[0].headers["accept-encoding"] == "identity"


def test_connection_dropped_mid_body_resumes_with_range(server, zoo_env, tmp_path):
    server.script(PATH, Fault(cut_after=1_000_000))
    dest = tmp_path / "test.tar.gz"
    got = fetch(server.url(PATH), dest)
    assert dest.read_bytes() == DATA and got.sha256 == SHA
    assert server.ranges(PATH) == [None, "bytes=1000000-"]
    _, second = server.gets(PATH)
    assert second.headers["if-range"] == server._files[PATH].etag  # resume only the same file


def test_503_then_success(server, zoo_env, tmp_path):
    server.script(PATH, Fault(status=503), Fault(status=502))
    got = fetch(server.url(PATH), tmp_path / "t.tar.gz")
    assert got.sha256 == SHA and got.requests == 3
    assert server.ranges(PATH) == [None, None, None]


def test_server_without_range_support_restarts_from_zero(zoo_env, tmp_path):
    with FileServer(ranges=False) as server:
        server.add(PATH, DATA)
        server.script(PATH, Fault(cut_after=700_000))
        dest = tmp_path / "t.tar.gz"
        got = fetch(server.url(PATH), dest)
        assert server.ranges(PATH) == [None, "bytes=700000-"]  # asked, got 200 with everything
    assert dest.read_bytes() == DATA and got.sha256 == SHA  # not 700 kB + the whole file


def _leave_partial(dest, content: bytes, url: str, validator: str | None = None):
    """What an interrupted earlier download leaves behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.with_name(dest.name + ".part").write_bytes(content)
    state = {"url": url, "sha256": SHA, "validator": validator, "total": len(DATA)}
    dest.with_name(dest.name + ".part.json").write_text(json.dumps(state))


def test_partial_file_of_an_earlier_process_is_resumed(server, zoo_env, tmp_path):
    dest = tmp_path / "t.tar.gz"
    url = server.url(PATH)
    _leave_partial(dest, DATA[:123_456], url, server._files[PATH].etag)
    got = fetch(url, dest)
    assert dest.read_bytes() == DATA
    assert got.resumed_from == 123_456 and server.ranges(PATH) == ["bytes=123456-"]


def test_416_restarts_from_zero(server, zoo_env, tmp_path):
    dest = tmp_path / "t.tar.gz"
    url = server.url(PATH)
    _leave_partial(dest, DATA[:10], url)
    server.script(PATH, Fault(status=416))
    got = fetch(url, dest)
    assert got.sha256 == SHA and server.ranges(PATH) == ["bytes=10-", None]


def test_changed_file_on_the_server_is_downloaded_whole(server, zoo_env, tmp_path):
    """If-Range with the old validator: the server sends the whole (new) file, not the tail."""
    dest = tmp_path / "t.tar.gz"
    url = server.url(PATH)
    _leave_partial(dest, b"old version " * 1000, url, '"old-etag"')
    got = fetch(url, dest)
    assert dest.read_bytes() == DATA and got.resumed_from == 12_000
    assert server.gets(PATH)[0].headers["if-range"] == '"old-etag"'


def test_corrupt_partial_without_validator_is_discarded_after_the_hash_fails(
    server, zoo_env, tmp_path
):
    """Resumed garbage makes the hash fail: the whole file is fetched once more, then it fits."""
    dest = tmp_path / "t.tar.gz"
    url = server.url(PATH)
    _leave_partial(dest, b"\0" * 5000, url)  # no validator: the server sends the tail
    got = fetch(url, dest)
    assert dest.read_bytes() == DATA and got.sha256 == SHA
    assert server.ranges(PATH) == ["bytes=5000-", None]


def test_wrong_size_is_an_error_and_nothing_is_kept(server, zoo_env, tmp_path):
    dest = tmp_path / "t.tar.gz"
    with pytest.raises(zoo.DownloadError) as info:
        fetch(server.url(PATH), dest, size=len(DATA) + 1)
    message = str(info.value)
    assert server.url(PATH) in message
    assert str(len(DATA) + 1) in message and str(len(DATA)) in message
    assert not dest.exists() and leftovers(dest) == []


def test_wrong_hash_is_an_error_and_the_partial_file_is_deleted(server, zoo_env, tmp_path):
    dest = tmp_path / "t.tar.gz"
    wrong = "0" * 64
    with pytest.raises(zoo.DownloadError) as info:
        fetch(server.url(PATH), dest, sha256=wrong)
    message = str(info.value)
    assert server.url(PATH) in message and wrong in message and SHA in message
    assert "ZOO_REGISTRY" in message  # says what to do
    assert not dest.exists() and leftovers(dest) == []


def test_more_bytes_than_expected_is_an_error(zoo_env, tmp_path):
    with FileServer() as server:
        server.add(PATH, DATA + b"tail")
        with pytest.raises(zoo.DownloadError, match="bytes"):
            fetch(server.url(PATH), tmp_path / "t.tar.gz")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_listening_fails_at_once(zoo_env, tmp_path, caplog, monkeypatch):
    """Connection refused cannot heal by waiting: one attempt, a short first line."""
    monkeypatch.setenv("ZOO_BACKOFF", "30")  # a retry would sleep 30 s (and log a warning)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/x.tar.gz"
    with pytest.raises(zoo.DownloadError) as info:
        fetch(url, tmp_path / "x.tar.gz")
    first, rest = str(info.value).split("\n", 1)
    assert first == (
        f"cannot reach 127.0.0.1:{port}: no network? set ZOO_MIRROR or use slimzoo-warm --from-dir"
    )
    assert url in rest and "connection refused" in rest and "import_tarball" in rest
    assert "not retried" in rest
    assert not [r for r in caplog.records if "retry" in r.getMessage()]


def test_malformed_url_fails_at_once(zoo_env, tmp_path):
    with pytest.raises(zoo.DownloadError, match="invalid download URL"):
        fetch("http://127.0.0.1:99999999/x.tar.gz", tmp_path / "x.tar.gz")


def test_persistent_503_is_retried_a_bounded_number_of_times(server, zoo_env, tmp_path):
    server.script(PATH, *[Fault(status=503)] * 10)
    with pytest.raises(zoo.DownloadError, match="HTTP 503"):
        fetch(server.url(PATH), tmp_path / "t.tar.gz")
    assert len(server.gets(PATH)) == 4


def test_404_is_not_retried(server, zoo_env, tmp_path):
    url = server.url("/missing.tar.gz")
    with pytest.raises(zoo.DownloadError, match="HTTP 404"):
        fetch(url, tmp_path / "t.tar.gz")
    assert len(server.gets("/missing.tar.gz")) == 1


def test_progress_callback_sees_every_byte(server, zoo_env, tmp_path):
    seen = []
    hub.download(
        server.url(PATH),
        tmp_path / "t.tar.gz",
        settings=config.resolve(),
        size=len(DATA),
        sha256=SHA,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (len(DATA), len(DATA))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_process_killed_mid_download_is_resumed_by_the_next(zoo_env, tmp_path):
    dest = tmp_path / "t.tar.gz"
    part = dest.with_name(dest.name + ".part")
    with FileServer(throttle=0.05) as server:  # 64 KiB every 50 ms: ~2.3 s for the file
        url = server.add(PATH, DATA)
        child = spawn(
            f"""
            from pathlib import Path
            from zoo import config, hub
            hub.download({url!r}, Path({str(dest)!r}), settings=config.resolve(),
                         size={len(DATA)}, sha256={SHA!r}, progress=False)
            """
        )
        deadline = time.monotonic() + 120
        while not (part.exists() and part.stat().st_size > 300_000):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never started downloading"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        kept = part.stat().st_size
        assert 0 < kept < len(DATA) and not dest.exists()

        got = fetch(url, dest)
        assert dest.read_bytes() == DATA
        assert got.resumed_from >= kept - 0  # everything the killed process wrote is reused
        assert server.ranges(PATH)[0] is None
        assert server.ranges(PATH)[-1] == f"bytes={got.resumed_from}-"
    assert leftovers(dest) == []


def test_child_helper_reports_failures():
    """The subprocess helper itself must surface a failing child (used by the tests above)."""
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        finish(spawn("1 / 0"))
