"""zoo.hub.download against hostile networks: trickling and endless servers, a full disk, no
network at all. Everything stays on 127.0.0.1 (a host that does not resolve is made by a
getaddrinfo that fails for it, so no DNS query leaves the machine)."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest
from _http import Fault, FileServer
from _pipeline import isolate, spawn

import zoo
from zoo import config, hub

DATA = np.random.default_rng(1).bytes(3_000_000)
SHA = hashlib.sha256(DATA).hexdigest()
PATH = "/models/hostile_2016_08_28.tar.gz"
NO_NETWORK = "no network? set ZOO_MIRROR or use slimzoo-warm --from-dir"


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture
def server():
    with FileServer() as s:
        s.add(PATH, DATA)
        yield s


def fetch(url, dest, **kwargs):
    return hub.download(url, dest, settings=config.resolve(), progress=False, **kwargs)


def retries_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]


def test_trickling_server_hits_the_speed_floor(server, zoo_env, tmp_path, monkeypatch):
    """One byte every 20 ms (50 bytes/s) against a floor of 1000 bytes/s over 0.3 s: each
    attempt is dropped; the per-read timeout alone would wait for ever."""
    monkeypatch.setenv("ZOO_MIN_SPEED", "1000,0.3")
    monkeypatch.setenv("ZOO_RETRIES", "1")
    server.script(PATH, Fault(trickle=0.02), Fault(trickle=0.02))
    dest = tmp_path / "t.tar.gz"
    with pytest.raises(zoo.DownloadError, match=r"too slow.*ZOO_MIN_SPEED") as info:
        fetch(server.url(PATH), dest, size=len(DATA), sha256=SHA)
    assert "after 2 attempts" in str(info.value)
    assert len(server.gets(PATH)) == 2
    assert server.ranges(PATH)[1] is not None  # the second attempt resumed what had arrived
    assert not dest.exists()


def test_speed_floor_is_met_by_a_normal_server(server, zoo_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_MIN_SPEED", "1000,0.05")
    got = fetch(server.url(PATH), tmp_path / "t.tar.gz", size=len(DATA), sha256=SHA)
    assert got.sha256 == SHA and len(server.gets(PATH)) == 1


def test_endless_body_of_unknown_size_hits_the_cap(server, zoo_env, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_MAX_DOWNLOAD", "2")  # MiB
    server.script(PATH, Fault(endless=True))
    dest = tmp_path / "t.tar.gz"
    with pytest.raises(zoo.DownloadError, match=r"more than ZOO_MAX_DOWNLOAD \(2 MiB\)"):
        fetch(server.url(PATH), dest)  # no size, no sha256: nothing else would stop it
    assert len(server.gets(PATH)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the partial file is deleted


def test_declared_length_over_the_cap_is_refused_before_the_body(server, zoo_env, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    monkeypatch.setenv("ZOO_MAX_DOWNLOAD", "1")
    with pytest.raises(zoo.DownloadError, match="3000000 bytes, more than ZOO_MAX_DOWNLOAD"):
        fetch(server.url(PATH), tmp_path / "t.tar.gz")
    assert len(server.gets(PATH)) == 1
    assert not (tmp_path / "t.tar.gz.part").exists()


def test_bad_speed_and_cap_settings_are_config_errors(zoo_env, monkeypatch):
    for variable, value in [("ZOO_MIN_SPEED", "fast"), ("ZOO_MIN_SPEED", "10,0"),
                            ("ZOO_MAX_DOWNLOAD", "-1")]:  # fmt: skip
        monkeypatch.setenv(variable, value)
        with pytest.raises(zoo.ConfigError, match=variable):
            config.resolve()
        monkeypatch.delenv(variable)


def test_unresolvable_host_fails_at_once(zoo_env, tmp_path, caplog, monkeypatch):
    """A name that does not resolve (DNS down, no network): one lookup, no retries."""
    lookups = []
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host in ("127.0.0.1", "localhost"):
            return real(host, *args, **kwargs)
        lookups.append(host)  # never asked of a real resolver: nothing leaves the machine
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setenv("NO_PROXY", "*")  # straight to the (unresolvable) host
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("ZOO_BACKOFF", "30")
    url = "http://weights.invalid/models/x.tar.gz"
    with pytest.raises(zoo.DownloadError) as info:
        fetch(url, tmp_path / "x.tar.gz")
    first, rest = str(info.value).split("\n", 1)
    assert first == f"cannot reach weights.invalid: {NO_NETWORK}"
    assert "host name does not resolve" in rest and "Name or service not known" in rest
    assert lookups == ["weights.invalid"]
    assert retries_logged(caplog) == []


def test_4xx_is_not_retried_but_408_and_429_are(server, zoo_env, tmp_path):
    server.script(PATH, Fault(status=403))
    with pytest.raises(zoo.DownloadError, match="HTTP 403"):
        fetch(server.url(PATH), tmp_path / "a.tar.gz", size=len(DATA), sha256=SHA)
    assert len(server.gets(PATH)) == 1
    server.script(PATH, Fault(status=408), Fault(status=429))
    got = fetch(server.url(PATH), tmp_path / "b.tar.gz", size=len(DATA), sha256=SHA)
    assert got.sha256 == SHA and len(server.gets(PATH)) == 4


def test_full_disk_is_a_cache_error(server, zoo_env, tmp_path):
    """A file size limit of 1 MB (RLIMIT_FSIZE, in a child process) stands for a full disk."""
    child = spawn(
        f"""
        import resource
        from pathlib import Path
        import zoo
        from zoo import config, hub

        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            hub.download({server.url(PATH)!r}, Path({str(tmp_path / "full" / "t.tar.gz")!r}),
                         settings=config.resolve(), size={len(DATA)}, sha256={SHA!r},
                         progress=False)
        except Exception as exc:
            print(type(exc).__name__, isinstance(exc, zoo.ZooError))
            print(exc)
        """
    )
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    kind, message = out.split("\n", 1)
    assert kind == "CacheError True", out + err
    assert "File too large" in message and "disk" in message and "t.tar.gz.part" in message


def test_download_is_logged_when_stderr_is_not_a_terminal(server, zoo_env, tmp_path):
    dest = tmp_path / "logged.tar.gz"
    child = spawn(
        f"""
        from pathlib import Path
        from zoo import config, hub

        hub.download({server.url(PATH)!r}, Path({str(dest)!r}), settings=config.resolve(),
                     size={len(DATA)}, sha256={SHA!r}, progress=True)
        """
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    lines = [line for line in err.splitlines() if line.startswith("slimzoo: ")]
    assert lines == [f"slimzoo: downloading {server.url(PATH)} (2.9 MiB) to {dest}"]
    assert dest.read_bytes() == DATA
