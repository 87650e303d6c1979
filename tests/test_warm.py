"""``slimzoo-warm`` (zoo.warm, scripts/warm_cache.py) against a real server on 127.0.0.1.

Three registry models share the tiny network of ``_tinynet`` (own tarball names, same
checkpoint), so a run of the whole pipeline takes a fraction of a second. The command runs in
real processes (``python -m zoo.warm`` and the script) where processes matter: the exit status,
two nodes on one cache, Ctrl-C, a run from a checkout; the other options run ``main(argv)`` in
this process, which is the same code less the interpreter start.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import _tinynet
import pytest
from _http import FileServer
from _pipeline import REPO, finish, isolate, spawn
from _tarballs import release_tarball, write_registry
from _tinyserve import TinyReleases, build_tiny_tarball, tarball_name

import zoo
from zoo import warm, warm_report

MODELS = ("slimzoo_tiny", "slimzoo_tiny_b", "slimzoo_tiny_c")

# `python -m zoo.warm ARGS` with the tiny network registered (a child cannot see the tests').
RUN_MODULE = """
    import runpy, sys, time
    from pathlib import Path
    import _tinynet
    _tinynet.register()
    go = {go!r}
    if go:
        print("ready", flush=True)
        while not Path(go).exists():
            time.sleep(0.01)
    sys.argv = ["slimzoo-warm", *{args!r}]
    runpy.run_module("zoo.warm", run_name="__main__", alter_sys=True)
"""


def warm_process(*args: str, go: str | None = None) -> subprocess.Popen:
    # SIGINT as in a terminal: a shell running pytest in the background (`pytest &` with no job
    # control) starts it with SIGINT ignored, and a child would inherit that and never see Ctrl-C
    return spawn(
        RUN_MODULE.format(args=list(args), go=go),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def result(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def rows(table: str) -> dict[str, list[str]]:
    """``{model: [size, sha256, status...]}`` from the final table on stdout."""
    found = {}
    for line in table.splitlines():
        words = line.split()
        if words and words[0] in MODELS:
            found[words[0]] = words[1:]
    return found


def status_of(table: str) -> dict[str, str]:
    """``{model: status}`` (the status column: after size, unit and sha256)."""
    return {m: " ".join(cells[3:-1]) for m, cells in rows(table).items()}


@pytest.fixture
def zoo_env(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    with _tinynet.registered():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tarball (3 MB of padding: hub reads 1 MB chunks, and an interrupted download must
    have written some) for every tiny model, and the weights a load must give."""
    return build_tiny_tarball(tmp_path_factory.mktemp("tiny"), padding=3_000_000)


@pytest.fixture
def served(zoo_env, tiny, tmp_path, monkeypatch):
    with FileServer() as server:
        releases = TinyReleases(server, tiny[0], MODELS)
        monkeypatch.setenv("ZOO_REGISTRY", str(releases.write(tmp_path / "registry.json")))
        yield releases


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    code = warm.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- downloads


def test_warm_downloads_in_parallel_then_finds_everything_cached(served, zoo_env, capsys):
    code, out, err = result(warm_process("slimzoo_tiny*", "--workers", "2"))
    assert code == 0, err
    assert status_of(out) == dict.fromkeys(MODELS, "downloaded")
    for model, cells in rows(out).items():
        assert cells[:3] == [
            *warm_report.human(served.tarball.size).split(),
            served.tarball.sha256[:12],
        ]
        assert served.gets(model) == 1
        info = zoo.cache_info(model, verify=True)
        assert info.complete and info.metadata["tarball_sha256"] == served.tarball.sha256
    assert f"cache: {zoo_env}" in out
    assert "[3/3]" in err  # one line per finished model (stderr is not a terminal: no bars)

    code, out, _ = run_main(capsys, "--json", *MODELS)
    assert code == 0
    document = json.loads(out)
    assert document["ok"] is True and document["mode"] == "download"
    assert {r["model"]: r["status"] for r in document["results"]} == dict.fromkeys(MODELS, "cached")
    assert {r["sha256"] for r in document["results"]} == {served.tarball.sha256}  # full hash
    assert all(served.gets(m) == 1 for m in MODELS)  # nothing fetched again


def test_a_failed_model_gives_exit_1_and_the_others_are_still_warmed(
    served, zoo_env, tmp_path, monkeypatch, capsys
):
    served.write(tmp_path / "registry.json", urls={"slimzoo_tiny_b": served.server.url("/gone")})
    code, out, err = run_main(capsys, "slimzoo_tiny*")
    assert code == 1
    status = status_of(out)
    assert status["slimzoo_tiny"] == status["slimzoo_tiny_c"] == "downloaded"
    assert status["slimzoo_tiny_b"].startswith("FAILED:") and "HTTP 404" in status["slimzoo_tiny_b"]
    assert "1 of 3 failed or missing: slimzoo_tiny_b" in err
    assert zoo.cache_info("slimzoo_tiny_c").complete
    assert not zoo.cache_info("slimzoo_tiny_b").complete


def test_no_ema_warms_the_raw_variables_entry(served, capsys):
    code, out, _ = run_main(capsys, "--no-ema", "--quiet", "slimzoo_tiny")
    assert code == 0 and status_of(out) == {"slimzoo_tiny": "downloaded"}
    assert zoo.cache_info("slimzoo_tiny", use_ema=False).complete
    assert zoo.cache_info("slimzoo_tiny", use_ema=False).metadata["use_ema"] is False
    assert not zoo.cache_info("slimzoo_tiny").complete


def test_kept_tarball_is_converted_without_a_request(served, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_KEEP_TARBALLS", "1")
    assert run_main(capsys, "-q", "slimzoo_tiny")[0] == 0
    code, out, _ = run_main(capsys, "-q", "--no-ema", "slimzoo_tiny")
    assert code == 0 and status_of(out) == {"slimzoo_tiny": "converted"}
    assert served.gets("slimzoo_tiny") == 1


def test_cache_dir_option_overrides_the_environment(served, zoo_env, tmp_path, capsys):
    other = tmp_path / "other_cache"
    code, out, _ = run_main(capsys, "--cache-dir", str(other), "-q", "slimzoo_tiny")
    assert code == 0 and f"cache: {other}" in out
    assert zoo.cache_info("slimzoo_tiny", cache_dir=other).complete
    assert not zoo_env.exists()


def test_progress_bars_one_per_file_and_a_total_on_a_terminal(served, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run_main(capsys, "--workers", "3", *MODELS)
    assert code == 0
    assert "total (3)" in err
    for model in MODELS:
        assert re.search(rf"{model}: +\d+%", err), model  # its bar ("[1/3] model: downloaded"
        # is the line printed when it is done)
    code, _, err = run_main(capsys, "--quiet", "--verify")
    assert code == 0 and err == ""  # --quiet: no bars, no lines


def test_two_processes_on_one_cache_download_each_model_once(served, zoo_env):
    served.server.throttle = 0.02  # ~1 s per download: the two runs overlap
    go = zoo_env.parent / "go"
    runs = [warm_process("--json", "--workers", "2", *MODELS, go=str(go)) for _ in range(2)]
    for run in runs:
        assert run.stdout.readline().strip() == "ready", run.communicate()
    go.touch()
    documents = [json.loads(finish(run)) for run in runs]
    assert all(served.gets(m) == 1 for m in MODELS)
    for model in MODELS:
        statuses = sorted(
            r["status"] for doc in documents for r in doc["results"] if r["model"] == model
        )
        assert statuses == ["cached", "downloaded"], (model, statuses)
        assert zoo.cache_info(model, verify=True).complete


def interrupt_download(part) -> tuple[int, str, str]:
    """Start ``slimzoo-warm slimzoo_tiny``, Ctrl-C it once ``part`` holds 200 kB, and return
    its exit status and output."""
    run = warm_process("slimzoo_tiny")
    deadline = time.monotonic() + 120
    while not (part.exists() and part.stat().st_size > 200_000):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.02)
    run.send_signal(signal.SIGINT)
    return result(run)


def test_interrupted_run_exits_130_and_the_next_run_resumes(served, zoo_env):
    served.server.throttle = 0.05  # 64 KiB every 50 ms: 3 MB last about 2.5 s
    part = zoo_env / "downloads" / f"{tarball_name('slimzoo_tiny')}.part"
    code, _, err = interrupt_download(part)
    assert code == 130 and "interrupted" in err
    kept = part.stat().st_size
    assert kept > 200_000 and not zoo.cache_info("slimzoo_tiny").complete

    served.server.throttle = 0.0
    assert warm.main(["-q", "slimzoo_tiny"]) == 0
    ranges = served.server.ranges(TinyReleases.path("slimzoo_tiny"))
    assert ranges[0] is None and int(ranges[-1][len("bytes=") : -1]) >= kept
    assert zoo.cache_info("slimzoo_tiny", verify=True).complete


def test_a_complete_part_left_by_a_killed_download_is_reported_downloaded(served, zoo_env, capsys):
    """A process killed after the last byte but before the rename leaves a complete ``.part``:
    the next run verifies and uses it without a request, and says it downloaded the model (it
    made the entry), not that the model was cached already."""
    served.server.throttle = 0.05
    part = zoo_env / "downloads" / f"{tarball_name('slimzoo_tiny')}.part"
    assert interrupt_download(part)[0] == 130
    whole = served.tarball.path.read_bytes()
    part.write_bytes(whole)  # the rest of the body, as the killed process had received it
    gets = served.gets("slimzoo_tiny")

    code, out, _ = run_main(capsys, "--json", "slimzoo_tiny")
    assert code == 0
    (row,) = json.loads(out)["results"]
    assert row["status"] == "downloaded", row
    assert served.gets("slimzoo_tiny") == gets  # no request: the .part was complete
    assert zoo.cache_info("slimzoo_tiny", verify=True).complete
    code, out, _ = run_main(capsys, "--json", "slimzoo_tiny")
    assert json.loads(out)["results"][0]["status"] == "cached"


# --------------------------------------------------------------------------- usage


def test_pattern_matching_nothing_is_exit_2_with_close_matches(served, zoo_env, capsys):
    code, out, err = run_main(capsys, "slimzoo_tinyy")
    assert code == 2 and out == ""
    assert "'slimzoo_tinyy'" in err and "Did you mean: 'slimzoo_tiny'" in err
    code, _, err = run_main(capsys, "slimzoo_tiny", "resnet_v1_200")
    assert code == 2 and "'resnet_v1_200' has no published weights" in err
    assert served.server.requests == [] and not zoo_env.exists()
    with pytest.raises(SystemExit) as exit_info:
        warm.main(["--workers", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        warm.main(["--verify", "--dry-run"])
    assert exit_info.value.code == 2


def test_list_prints_the_selected_models(served, capsys):
    code, out, _ = run_main(capsys, "--list")
    assert code == 0 and out.split() == [*MODELS, "vgg_16"]  # not resnet_v1_200: no weights
    code, out, _ = run_main(capsys, "--list", "*_b", "vgg_*")
    assert out.split() == ["slimzoo_tiny_b", "vgg_16"]


def test_bad_environment_is_exit_2(served, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_MIRROR", "ftp://mirror")
    code, _, err = run_main(capsys, "slimzoo_tiny")
    assert code == 2 and "ZOO_MIRROR must be an http(s) base URL" in err


# --------------------------------------------------------------------------- dry run


def test_dry_run_lists_urls_after_the_mirror_and_sizes_and_writes_nothing(
    served, zoo_env, tmp_path, monkeypatch, capsys
):
    canonical = f"http://download.tensorflow.org/models/{tarball_name('slimzoo_tiny_c')}"
    served.write(tmp_path / "registry.json", urls={"slimzoo_tiny_c": canonical})
    monkeypatch.setenv("ZOO_MIRROR", "http://mirror.example/slim")
    assert warm.main(["-q", "slimzoo_tiny"]) == 0  # one model already cached
    requests_before = len(served.server.requests)
    listing_before = sorted(p for p in zoo_env.rglob("*"))

    code, out, _ = run_main(capsys, "--dry-run", "slimzoo_tiny*")
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("slimzoo")}
    assert "yes" in lines["slimzoo_tiny"].split()
    assert f"http://mirror.example/slim/{tarball_name('slimzoo_tiny_c')}" in lines["slimzoo_tiny_c"]
    assert served.server.url(TinyReleases.path("slimzoo_tiny_b")) in lines["slimzoo_tiny_b"]
    assert warm_report.human(served.tarball.size) in lines["slimzoo_tiny_b"]
    assert "no" in lines["slimzoo_tiny_b"].split()
    total = warm_report.human(2 * served.tarball.size)
    assert f"would fetch 2 of 3 models: {total}; 1 already cached" in out

    code, out, _ = run_main(capsys, "--dry-run", "--json", "slimzoo_tiny*")
    document = json.loads(out)
    assert document["to_fetch"] == ["slimzoo_tiny_b", "slimzoo_tiny_c"]
    assert document["total_bytes"] == 2 * served.tarball.size
    assert len(served.server.requests) == requests_before  # no network
    assert sorted(p for p in zoo_env.rglob("*")) == listing_before  # no writes


def test_dry_run_of_an_empty_cache_creates_nothing(served, zoo_env, capsys):
    code, out, _ = run_main(capsys, "--dry-run")
    assert code == 0 and "would fetch 4 of 4 models" in out  # vgg_16's size is unknown:
    assert "+ 1 of unknown size" in out
    assert not zoo_env.exists() and served.server.requests == []


def test_dry_run_of_the_shipped_catalogue_is_grouped_by_family(zoo_env, capsys):
    code, out, _ = run_main(capsys, "--dry-run", "mobilenet_v2_0.35_*", "adv_*", "vgg_*")
    assert code == 0
    lines = out.splitlines()
    headings = [line for line in lines if line.endswith(":")]
    assert headings == [
        "inception_resnet_v2 (1):", "inception_v3 (1):", "mobilenet_v2 (5):", "vgg (2):"
    ]  # fmt: skip
    models = [line.split()[0] for line in lines[3:] if not line.endswith(":")][:-1]
    assert models[2:7] == [f"mobilenet_v2_0.35_{r}" for r in (96, 128, 160, 192, 224)]
    assert "would fetch 9 of 9 models" in out and not zoo_env.exists()


# --------------------------------------------------------------------------- verify


def test_verify_reports_corrupt_and_missing_entries_offline(served, zoo_env, capsys):
    assert warm.main(["-q", "slimzoo_tiny", "slimzoo_tiny_b"]) == 0
    requests_before = len(served.server.requests)
    code, out, _ = run_main(capsys, "--verify")
    assert code == 0 and status_of(out) == dict.fromkeys(MODELS[:2], "verified")

    path = zoo.cache_info("slimzoo_tiny_b").path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # same size, header intact: only the full check sees it
    path.write_bytes(bytes(data))
    code, out, err = run_main(capsys, "--verify", "slimzoo_tiny*")
    assert code == 1
    status = status_of(out)
    assert status["slimzoo_tiny"] == "verified"
    assert status["slimzoo_tiny_b"].startswith("FAILED:") and "CRC-32C" in status["slimzoo_tiny_b"]
    assert status["slimzoo_tiny_c"] == "MISSING: not in the cache"
    assert "2 of 3 failed or missing" in err
    assert path.read_bytes() == bytes(data)  # reported, not repaired
    assert len(served.server.requests) == requests_before


def test_verify_of_an_empty_cache_fails(served, zoo_env, capsys):
    code, _, err = run_main(capsys, "--verify")
    assert code == 1 and "nothing to verify" in err


# --------------------------------------------------------------------------- --from-dir


def test_from_dir_imports_the_tarballs_found_and_reports_the_missing(
    served, zoo_env, tmp_path, tiny, capsys
):
    usb = tmp_path / "usb"
    usb.mkdir()
    for model in ("slimzoo_tiny", "slimzoo_tiny_b"):
        shutil.copy(served.tarball.path, usb / tarball_name(model))
    (usb / "notes.txt").write_text("not a release")

    code, out, err = result(warm_process("--from-dir", str(usb), "slimzoo_tiny*"))
    assert code == 1, err
    assert status_of(out) == {
        "slimzoo_tiny": "imported",
        "slimzoo_tiny_b": "imported",
        "slimzoo_tiny_c": f"MISSING: no {tarball_name('slimzoo_tiny_c')} in --from-dir",
    }
    assert served.server.requests == []  # never the network
    assert "ignored in --from-dir (no model's release): notes.txt" in err

    code, out, err = run_main(capsys, "--from-dir", str(usb))  # what DIR holds
    assert code == 0, err
    assert status_of(out) == {"slimzoo_tiny": "cached", "slimzoo_tiny_b": "cached"}
    model = zoo.load("slimzoo_tiny_b", pretrained=True, offline=True).eval()
    want = zoo.load(_tinynet.NAME, checkpoint=tiny[1]).eval().state_dict()
    assert all(model.state_dict()[k].equal(v) for k, v in want.items())
    assert served.server.requests == []


def test_two_processes_importing_one_dir_convert_each_model_once(served, zoo_env, tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    for model in MODELS:
        shutil.copy(served.tarball.path, usb / tarball_name(model))
    go = zoo_env.parent / "go"
    runs = [warm_process("--json", "--from-dir", str(usb), go=str(go)) for _ in range(2)]
    for run in runs:
        assert run.stdout.readline().strip() == "ready", run.communicate()
    go.touch()
    documents = [json.loads(finish(run)) for run in runs]
    for model in MODELS:
        statuses = sorted(
            r["status"] for doc in documents for r in doc["results"] if r["model"] == model
        )
        assert statuses == ["cached", "imported"], (model, statuses)
        assert zoo.cache_info(model, verify=True).complete
    assert served.server.requests == []


def test_from_dir_refuses_a_file_that_is_not_the_release(served, zoo_env, tmp_path, capsys):
    usb = tmp_path / "usb"
    usb.mkdir()
    (usb / tarball_name("slimzoo_tiny")).write_bytes(b"x" * served.tarball.size)
    code, out, err = run_main(capsys, "--from-dir", str(usb))
    assert code == 1 and status_of(out)["slimzoo_tiny"].startswith("FAILED:")
    assert len(status_of(out)["slimzoo_tiny"]) <= warm_report.STATUS_WIDTH  # cut in the table
    assert "is not the slimzoo_tiny release" in err  # the full reason on its line
    assert not zoo.cache_info("slimzoo_tiny").complete


def test_from_dir_without_any_release_is_exit_2(served, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "--from-dir", str(tmp_path / "empty"))
    assert code == 2 and "found no release tarball" in err
    code, _, err = run_main(capsys, "--from-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "cannot read --from-dir" in err


def test_dry_run_from_dir_lists_the_files(served, zoo_env, tmp_path, capsys):
    usb = tmp_path / "usb"
    usb.mkdir()
    shutil.copy(served.tarball.path, usb / tarball_name("slimzoo_tiny_c"))
    code, out, _ = run_main(capsys, "--dry-run", "--from-dir", str(usb), "*_b", "*_c")
    assert code == 0
    assert str(usb / tarball_name("slimzoo_tiny_c")) in out
    assert f"MISSING: no {tarball_name('slimzoo_tiny_b')}" in out
    assert f"would import 1 of 2 models: {warm_report.human(served.tarball.size)}" in out
    assert not zoo_env.exists()


# --------------------------------------------------------------------------- a real network


@pytest.mark.slow
def test_script_from_a_checkout_warms_a_real_network(zoo_env, tmp_path, monkeypatch):
    """``python scripts/warm_cache.py`` (run from elsewhere) on mobilenet_v1's real layout."""
    name = "mobilenet_v1"
    tarball = release_tarball(name, tmp_path / "release")
    with FileServer() as server:
        path = f"/models/{zoo.model_info(name).release.tarball}"
        url = server.add(path, tarball.path)
        registry = write_registry(
            tmp_path / "registry.json",
            {name: {"url": url, "size": tarball.size, "sha256": tarball.sha256}},
        )
        monkeypatch.setenv("ZOO_REGISTRY", str(registry))
        run = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "warm_cache.py"), name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        assert len(server.gets(path)) == 1
    line = next(line for line in run.stdout.splitlines() if line.startswith(name))
    assert "downloaded" in line.split() and tarball.sha256[:12] in line.split()
    info = zoo.cache_info(name, verify=True)
    assert info.complete and info.metadata["tarball_sha256"] == tarball.sha256
    model = zoo.load(name, pretrained=True, offline=True).eval()
    assert model.num_classes == 1001
