"""Run the benchmark suite and write ``benchmarks/RESULTS.md``.

    python -m benchmarks [--quick] [--only PATTERN ...] [--output PATH]

Each benchmark module (``benchmarks/bench_*.py``, with ``run(quick) -> str`` returning a Markdown
section whose figures are ratios against a baseline measured in the same run) runs in a fresh
Python process, one after the other, so thread settings, caches and memory of one do not reach
the next. RESULTS.md gets a header (date, machine, versions, command) and one section per
benchmark between ``<!-- begin NAME -->`` / ``<!-- end NAME -->`` markers: a run of a subset
(``--only``) replaces those sections and keeps the others, each stamped with when it was measured.
A benchmark that fails gets a section saying so (with the end of its error) and the exit code is 1.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import importlib.metadata
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._util import machine_info

__all__ = ["BENCHMARKS", "main"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# In the order of the performance issue: read, convert + warm load, inference per family,
# inference optimisations, GPU.
BENCHMARKS = (
    "bench_startup",
    "bench_checkpoint_read",
    "bench_pretrained",
    "bench_fast_default",
    "bench_fast_default_profile",
    "bench_inference_resnet_vgg",
    "bench_inference_inception",
    "bench_inference_inception_v4_irv2",
    "bench_inference_mobilenet",
    "bench_inference_nasnet",
    "bench_inference_optimizations",
    "bench_predict",
    "bench_gpu",
)

_SECTION = re.compile(r"<!-- begin (\w+) -->\n.*?<!-- end \1 -->\n", re.S)
_VERSIONED = ("torch", "torchvision", "numpy", "safetensors", "timm", "tensorflow-cpu", "tf-slim")


def _run_one(name: str, quick: bool, timeout: float) -> tuple[bool, str, float]:
    command = [sys.executable, "-m", f"benchmarks.{name}", *(["--quick"] if quick else [])]
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return False, f"exit {proc.returncode}:\n\n```\n{proc.stderr[-2000:]}\n```", seconds
    return True, proc.stdout.strip(), seconds


def _section(name: str, body: str, ok: bool, seconds: float, quick: bool) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = " (--quick)" if quick else ""
    if not ok:
        body = f"### {name}: FAILED\n\n{body}"
    return (
        f"<!-- begin {name} -->\n{body}\n\n"
        f"_`{name}`{mode}, measured {stamp}, {seconds:.0f} s._\n<!-- end {name} -->\n"
    )


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _header(argv: list[str]) -> str:
    info = machine_info()
    versions = ", ".join(f"{d} {_version(d)}" for d in _VERSIONED)
    today = datetime.date.today().isoformat()
    return "\n".join(
        [
            "# slimzoo benchmark results",
            "",
            "Written by `python -m benchmarks " + " ".join(argv) + "`"
            f" (header updated {today}; each section says when it was measured). Every figure "
            "is compared with a baseline measured in the same run; ratios below 1 mean slimzoo "
            "takes less time (or memory) than the baseline, unless a section says otherwise.",
            "",
            f"- Machine: {info['cpu']}, {info['cores']} cores, {info['platform']}",
            f"- GPU: {info.get('gpu', 'none (the GPU section says so)')}",
            f"- Python {info['python']}; {versions}",
            "",
        ]
    )


def _merge(old: str, sections: dict[str, str], header: str) -> str:
    kept = {m.group(1): m.group(0) for m in _SECTION.finditer(old)}
    kept.update(sections)
    order = [n for n in BENCHMARKS if n in kept] + sorted(set(kept) - set(BENCHMARKS))
    return header + "\n" + "\n".join(kept[n] for n in order)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="each benchmark's smoke-test size")
    parser.add_argument(
        "--only", nargs="+", metavar="PATTERN", help="benchmarks to run (globs over the names)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds per benchmark (default 3600)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    selected = [
        n for n in BENCHMARKS if not args.only or any(fnmatch.fnmatch(n, p) for p in args.only)
    ]
    if not selected:
        parser.error(f"--only {' '.join(args.only)} matches none of: {', '.join(BENCHMARKS)}")

    sections, failed = {}, []
    for name in selected:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        ok, body, seconds = _run_one(name, args.quick, args.timeout)
        print(f"  {'done' if ok else 'FAILED'} in {seconds:.0f} s", file=sys.stderr, flush=True)
        sections[name] = _section(name, body, ok, seconds, args.quick)
        if not ok:
            failed.append(name)
        # written after every benchmark, so an interrupted run keeps what it measured
        old = args.output.read_text() if args.output.exists() else ""
        args.output.write_text(
            _merge(old, sections, _header(sys.argv[1:] if argv is None else argv))
        )
    print(f"wrote {args.output}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
