"""``slimzoo-warm``: fill a weights cache ahead of time, check it, or import tarballs offline.

    slimzoo-warm                          # every model with published weights
    slimzoo-warm 'resnet_v2_*' vgg_16     # glob patterns
    slimzoo-warm --dry-run 'inception_*'  # what would be fetched, how much; writes nothing
    slimzoo-warm --verify                 # re-check every cached entry in full, offline
    slimzoo-warm --from-dir /mnt/usb      # air-gapped: import the release tarballs found there

Each model goes through :func:`zoo.download_weights` (or :func:`zoo.import_tarball`), on a
bounded pool of threads. The pipeline's inter-process locks make it safe to start this on every
node of a cluster against one shared ``ZOO_CACHE_DIR`` at once: each tarball is downloaded and
converted once; the other nodes wait for it and report the model as ``cached``.

The final table (stdout; ``--json`` for a machine-readable one with the full hashes) has one row
per model: size and sha256 of its release tarball, status and seconds. Statuses: ``downloaded``,
``cached`` (complete already, or made by another process meanwhile), ``converted`` (from a tarball
kept with ``ZOO_KEEP_TARBALLS=1``), ``imported``, ``verified``, ``MISSING`` and ``FAILED``.

Exit status: 0 when every selected model is fine, 1 when any is missing or failed, 2 for bad
usage (a pattern that matches no model, an unreadable ``--from-dir``, a bad ``ZOO_*`` setting).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from architectures import natural_key

from . import config
from .errors import ZooError, close_matches
from .pretrained import CacheInfo, _download_weights, _import_tarball, cache_info
from .registry import ModelInfo, get_registry
from .warm_progress import Bars, Cancelled, log_through
from .warm_report import (
    Outcome,
    format_table,
    human,
    print_json,
    render_table,
    with_family_headings,
)

__all__ = ["Outcome", "main"]

PROG = "slimzoo-warm"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_WORKERS = 4

log = logging.getLogger(__name__)


class UsageError(Exception):
    """A command line that cannot be carried out (exit status 2)."""


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Download, verify and convert the published TF-slim weights into the slimzoo cache "
            "ahead of time (e.g. on every node of a cluster, against one shared cache: each "
            "model is downloaded once), re-check a cache, or import tarballs on a machine "
            "without network."
        ),
        epilog=(
            "Settings: ZOO_CACHE_DIR (the cache), ZOO_MIRROR (an internal mirror), ZOO_REGISTRY, "
            "ZOO_TIMEOUT, ZOO_RETRIES, ZOO_LOCK_TIMEOUT, ZOO_KEEP_TARBALLS; see zoo.config. "
            "Exit status: 0 all fine, 1 a model failed or is missing, 2 bad usage."
        ),
    )
    parser.add_argument(
        "patterns",
        nargs="*",
        metavar="MODEL",
        help="model names or glob patterns ('resnet_v2_*'); default: every model with published "
        "weights (with --from-dir: those found in DIR; with --verify: those in the cache)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--verify",
        action="store_true",
        help="re-check the cached entries in full (CRC-32C of every file), offline; missing or "
        "bad entries make the exit status 1. Nothing is written.",
    )
    mode.add_argument(
        "--from-dir",
        metavar="DIR",
        type=Path,
        help="import the release tarballs found in DIR (matched by file name, e.g. "
        "vgg_16_2016_08_28.tar.gz) instead of downloading; never touches the network",
    )
    mode.add_argument("--list", action="store_true", help="print the selected model names and exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show what would be fetched (URL after ZOO_MIRROR, size, whether cached) and the "
        "total size; writes nothing, no network",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"models processed at once (default: min({DEFAULT_WORKERS}, number of models))",
    )
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="default: ZOO_CACHE_DIR")
    parser.add_argument(
        "--no-ema",
        dest="use_ema",
        action="store_false",
        help="the raw variables instead of their ExponentialMovingAverage shadows (a separate "
        "cache entry)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON (full sha256) on stdout"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or per-model lines"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the pipeline does")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``slimzoo-warm`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dry_run and (args.verify or args.list):
        parser.error("--dry-run goes with downloads or --from-dir, not --verify or --list")
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, found {args.workers}")
    try:
        return _run(args)
    except (UsageError, ZooError) as exc:
        # ZooError here: a bad ZOO_* setting or registry, found before any model was started
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    cache_dir = config.resolve(cache_dir=args.cache_dir).cache_dir  # also validates ZOO_*
    tarballs = _tarballs_in(args.from_dir) if args.from_dir is not None else None
    in_cache = cache_dir if args.verify else None
    names = select(args.patterns, tarballs=tarballs, in_cache=in_cache, use_ema=args.use_ema)
    if args.list:
        print("\n".join(names))
        return EXIT_OK
    if args.dry_run:
        return _dry_run(names, cache_dir, args, tarballs)
    if not names:  # only --verify without patterns gets here: an empty cache
        print(
            f"{PROG}: nothing to verify: the cache {cache_dir} holds no weights (name models, "
            "e.g. '*', to have each missing one reported)",
            file=sys.stderr,
        )
        return EXIT_FAILED

    workers = args.workers or min(DEFAULT_WORKERS, len(names))
    show = not args.quiet
    downloading = not args.verify and tarballs is None
    sizes = _sizes_to_fetch(names, cache_dir, args.use_ema) if downloading else {}
    bars = Bars(len(names), sizes, enabled=show and sys.stderr.isatty(), workers=workers)
    if args.verify:
        task = _verifier(cache_dir, args.use_ema)
    elif tarballs is not None:
        task = _importer(cache_dir, args.use_ema, tarballs)
        ignored = _not_releases(tarballs)
        if ignored and show:
            listing = ", ".join(ignored)
            print(f"{PROG}: ignored in --from-dir (no model's release): {listing}", file=sys.stderr)
    else:
        task = _downloader(cache_dir, args.use_ema, bars)

    with log_through(bars, logging.INFO if args.verbose else logging.WARNING, PROG):
        outcomes = _run_all(names, task, workers, bars, say=show)
    if outcomes is None:
        print(f"{PROG}: interrupted; downloads resume where they stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print_json(outcomes, cache_dir, _mode(args))
    else:
        print(f"cache: {cache_dir}")
        print(render_table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    if failed:
        print(
            f"{PROG}: {len(failed)} of {len(outcomes)} failed or missing: "
            f"{', '.join(o.model for o in failed)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


def _mode(args: argparse.Namespace) -> str:
    if args.verify:
        return "verify"
    return "import" if args.from_dir is not None else "download"


# --------------------------------------------------------------------------- selection


def select(
    patterns: Sequence[str],
    *,
    tarballs: dict[str, Path] | None = None,
    in_cache: Path | None = None,
    use_ema: bool = True,
) -> list[str]:
    """Registry models with published weights matching any of ``patterns``, sorted.

    No patterns: every such model, or with ``tarballs`` (``--from-dir``) those whose release is
    among them, or with ``in_cache`` (``--verify``) those with something in that cache.
    A pattern that matches nothing raises :class:`UsageError` with close matches.
    """
    registry = get_registry()
    released = sorted(registry.names(with_weights=True), key=natural_key)  # _50 before _101
    if not patterns:
        if tarballs is not None:
            found = [n for n in released if registry.models[n].release.tarball in tarballs]
            if not found:
                raise UsageError(_nothing_to_import(tarballs, registry.models.values()))
            return found
        if in_cache is not None:
            return [
                n
                for n in released
                if cache_info(n, cache_dir=in_cache, use_ema=use_ema).status != "missing"
            ]
        return released
    chosen: set[str] = set()
    for pattern in patterns:
        matches = [n for n in released if fnmatch.fnmatchcase(n, pattern)]
        if not matches:
            raise UsageError(_no_match(pattern, released, registry.models))
        chosen.update(matches)
    return sorted(chosen, key=natural_key)


def _no_match(pattern: str, released: list[str], models: Mapping[str, ModelInfo]) -> str:
    if pattern in models:
        return (
            f"{pattern!r} has no published weights (slim defines the network but released no "
            f"checkpoint), so there is nothing to fetch. Models with weights: "
            f"{', '.join(released)}."
        )
    return (
        f"no model with published weights matches {pattern!r}.{close_matches(pattern, released)}"
        f" `{PROG} --list` prints them all (registry: {get_registry().source})."
    )


def _tarballs_in(directory: Path) -> dict[str, Path]:
    """``{file name: path}`` of the regular files in ``directory`` (not recursive)."""
    try:
        return {p.name: p for p in sorted(directory.iterdir()) if p.is_file()}
    except OSError as exc:
        raise UsageError(f"cannot read --from-dir {directory}: {exc.strerror or exc}") from None


def _not_releases(tarballs: dict[str, Path]) -> list[str]:
    """The files of ``--from-dir`` that are no model's release tarball."""
    known = {i.release.tarball for i in get_registry().models.values() if i.release}
    return sorted(set(tarballs) - known)


def _nothing_to_import(tarballs: dict[str, Path], infos: Iterable[ModelInfo]) -> str:
    examples = sorted(i.release.tarball for i in infos if i.release)[:3]
    found = ", ".join(sorted(tarballs)[:5]) or "no files"
    return (
        f"found no release tarball of the registry in --from-dir (found: {found}). The files "
        f"must keep their published names, e.g. {', '.join(examples)}; "
        f"`{PROG} --dry-run` lists each model's URL."
    )


# --------------------------------------------------------------------------- the tasks

Task = Callable[[str], Outcome]


def _release_facts(name: str) -> tuple[int | None, str | None]:
    release = get_registry().models[name].release
    return release.size, release.sha256


def _outcome(
    name: str, status: str, started: float, info: CacheInfo | None = None, **kw: Any
) -> Outcome:
    """An :class:`Outcome`, its size and sha256 taken from the entry's sidecar when there is one
    (what was verified), else from the registry."""
    size, sha256 = _release_facts(name)
    meta = (info.metadata if info is not None else None) or {}
    if meta.get("model") == name:
        size = meta.get("tarball_size", size)
        sha256 = meta.get("tarball_sha256", sha256)
        kw.setdefault("source", meta.get("obtained_from"))
    if info is not None and info.status == "complete":
        kw.setdefault("path", str(info.path))
    seconds = time.monotonic() - started
    return Outcome(name, status, size=size, sha256=sha256, seconds=seconds, **kw)


def _failed(name: str, started: float, exc: BaseException) -> Outcome:
    reason = str(exc) if isinstance(exc, (ZooError, OSError)) else f"{type(exc).__name__}: {exc}"
    return _outcome(name, "failed", started, reason=reason.splitlines()[0] if reason else None)


def _downloader(cache_dir: Path, use_ema: bool, bars: Bars) -> Task:
    def download(name: str) -> Outcome:
        started = time.monotonic()
        before = cache_info(name, cache_dir=cache_dir, use_ema=use_ema)
        if before.complete:
            return _outcome(name, "cached", started, before)
        with bars.file(name) as progress:
            _, made = _download_weights(
                name,
                cache_dir=cache_dir,
                offline=None,
                progress=progress,
                use_ema=use_ema,
                verify=False,
            )
        after = cache_info(name, cache_dir=cache_dir, use_ema=use_ema)
        made_from = (after.metadata or {}).get("obtained_from")
        if not made:
            status = "cached"  # another process made it while this one waited for its lock
        elif progress.requested or before.tarball is None or made_from != str(before.tarball):
            # (no request: a complete .part that a killed download left, verified and used)
            status = "downloaded"
        else:
            status = "converted"  # from a tarball kept in the cache (ZOO_KEEP_TARBALLS=1)
        return _outcome(name, status, started, after)

    return download


def _importer(cache_dir: Path, use_ema: bool, tarballs: dict[str, Path]) -> Task:
    def import_one(name: str) -> Outcome:
        started = time.monotonic()
        before = cache_info(name, cache_dir=cache_dir, use_ema=use_ema)
        file = tarballs.get(get_registry().models[name].release.tarball)
        if file is None:
            if before.complete:
                return _outcome(name, "cached", started, before)
            tarball = get_registry().models[name].release.tarball
            return _outcome(name, "missing", started, reason=f"no {tarball} in --from-dir")
        # "imported" only if this process converted it: another one may have made the entry
        # from the same file while this one waited for the lock
        _, converted = _import_tarball(file, name, cache_dir=cache_dir, use_ema=use_ema)
        after = cache_info(name, cache_dir=cache_dir, use_ema=use_ema)
        return _outcome(name, "imported" if converted else "cached", started, after)

    return import_one


def _verifier(cache_dir: Path, use_ema: bool) -> Task:
    def verify(name: str) -> Outcome:
        started = time.monotonic()
        info = cache_info(name, cache_dir=cache_dir, use_ema=use_ema, verify=True)
        if info.complete:
            return _outcome(name, "verified", started, info)
        if info.status == "missing":
            reason = "not in the cache"
            if info.partial_bytes:
                reason += f" ({human(info.partial_bytes)} of an interrupted download)"
            return _outcome(name, "missing", started, info, reason=reason)
        return _outcome(name, "failed", started, info, reason=info.problem)

    return verify


def _run_all(
    names: list[str], task: Task, workers: int, bars: Bars, *, say: bool
) -> list[Outcome] | None:
    """Every model through ``task`` on ``workers`` threads; outcomes in ``names`` order, or
    ``None`` when interrupted (Ctrl-C: running downloads stop at their next chunk)."""

    def guarded(name: str) -> Outcome:
        started = time.monotonic()
        try:
            return task(name)
        except Cancelled:
            raise
        except Exception as exc:  # one bad model must not stop the others
            log.debug("%s failed", name, exc_info=True)
            return _failed(name, started, exc)

    results: dict[str, Outcome] = {}
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="warm")
    try:
        futures = {pool.submit(guarded, name): name for name in names}
        for future in as_completed(futures):
            outcome = future.result()
            results[outcome.model] = outcome
            bars.finished(outcome)
            if say:
                bars.write(
                    f"[{len(results)}/{len(names)}] {outcome.model}: {outcome.label} "
                    f"({outcome.seconds:.1f} s)"
                )
    except (KeyboardInterrupt, Cancelled):
        bars.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        bars.close()
        return None
    pool.shutdown(wait=True)
    bars.close()
    return [results[name] for name in names]


# --------------------------------------------------------------------------- dry run


def _sizes_to_fetch(names: list[str], cache_dir: Path, use_ema: bool) -> dict[str, int | None]:
    """Release sizes of the models not yet complete in the cache (None = not known)."""
    return {
        n: _release_facts(n)[0]
        for n in names
        if not cache_info(n, cache_dir=cache_dir, use_ema=use_ema).complete
    }


def _dry_run(
    names: list[str], cache_dir: Path, args: argparse.Namespace, tarballs: dict[str, Path] | None
) -> int:
    mirror = config.resolve(cache_dir=cache_dir).mirror
    rows = []
    for name in names:
        info: ModelInfo = get_registry().models[name]
        cached = cache_info(name, cache_dir=cache_dir, use_ema=args.use_ema).complete
        if tarballs is not None:
            file = tarballs.get(info.release.tarball)
            source = str(file) if file else None
            size = file.stat().st_size if file else None
        else:
            source = config.apply_mirror(info.release.url, mirror)
            size = info.release.size
        rows.append({"model": name, "cached": cached, "size": size, "source": source,
                     "sha256": info.release.sha256})  # fmt: skip
    todo = [r for r in rows if not r["cached"] and r["source"]]
    known = sum(r["size"] for r in todo if r["size"] is not None)
    unknown = sum(1 for r in todo if r["size"] is None)
    verb = "import" if tarballs is not None else "fetch"
    if args.json:
        document = {"cache_dir": str(cache_dir), "dry_run": True, "models": rows,
                    "to_" + verb: [r["model"] for r in todo], "total_bytes": known,
                    "unknown_sizes": unknown}  # fmt: skip
        print(json.dumps(document, indent=2))
        return EXIT_OK
    table = [
        (
            r["model"],
            human(r["size"]),
            "yes" if r["cached"] else "no",
            r["source"] or f"MISSING: no {get_registry().models[r['model']].release.tarball}",
        )
        for r in rows
    ]
    print(f"cache: {cache_dir}")
    lines = format_table(("model", "size", "cached", "file" if tarballs else "url"), table)
    print(with_family_headings(lines.splitlines(), [r["model"] for r in rows]))
    summary = f"would {verb} {len(todo)} of {len(rows)} models: {human(known)}"
    if unknown:
        summary += f" + {unknown} of unknown size"
    print(summary + f"; {sum(r['cached'] for r in rows)} already cached")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
