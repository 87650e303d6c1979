"""``slimzoo list`` and ``slimzoo info``: what the registry and the cache say about models."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
from collections.abc import Sequence
from typing import Any

from ..errors import close_matches
from ._common import EXIT_OK, PROG, UsageError, add_command, table

__all__ = ["add_info", "add_list"]


def add_list(commands: Any) -> None:
    p = add_command(
        commands,
        "list",
        _cmd_list,
        "list networks and published models",
        "One line per model: published weights or not, preprocessing and eval size, classes, "
        "ImageNet top-1 accuracy. PATTERN is a glob ('resnet_v2_*'); without wildcards it "
        "matches anywhere in the name ('mobilenet').",
    )
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN")
    p.add_argument("--pretrained", action="store_true", help="only models with published weights")
    p.add_argument("--names", action="store_true", help="print the names only")


def add_info(commands: Any, cache: argparse.ArgumentParser) -> None:
    p = add_command(
        commands,
        "info",
        _cmd_info,
        "registry facts and cache state of a model",
        "Everything the weights registry knows about NAME (zoo.model_info): network, classes "
        "and label offset, preprocessing (input size, crop, interpolation, mean/std), accuracy, "
        "paper, licence, release URL and sha256; and the state of its entry in the weights "
        "cache (nothing is downloaded).",
        parents=[cache],
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verify", action="store_true", help="also checksum the cached file")


def _cmd_list(args: argparse.Namespace) -> int:
    import architectures

    from .._model_facts import by_family
    from ..registry import get_registry

    registry = get_registry()
    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    names = sorted(
        (
            n
            for n in {*architectures.list_architectures(), *registry.models}
            if fnmatch.fnmatchcase(n, pattern)
        ),
        key=architectures.natural_key,
    )
    if args.pretrained:
        names = [n for n in names if n in registry.models and registry.models[n].has_weights]
    if not names:
        known = {*architectures.list_architectures(), *registry.models}
        raise UsageError(
            f"no {'published ' if args.pretrained else ''}model matches {args.pattern!r}."
            f"{close_matches(args.pattern, known)} '{PROG} list' lists them all."
        )
    if args.names:
        print("\n".join(names))
        return EXIT_OK
    # ~80 names: grouped by family (a heading line each when there are several), each
    # release beside the network it loads into
    header = ("name", "network", "weights", "preprocessing", "classes", "top-1")
    groups = by_family(names)
    rows: list[tuple[str, ...]] = []
    for _family, members in groups:
        for name in members:
            info = registry.models.get(name)
            if info is None:  # a network the registry in use (ZOO_REGISTRY) does not describe
                rows.append((name, name, "-", "-", "-", "-"))
                continue
            p = info.preprocessing
            rows.append(
                (
                    name,
                    info.architecture,
                    "yes" if info.has_weights else "-",
                    f"{p.kind} {p.input_size}" if p else "-",
                    str(info.num_classes),
                    f"{info.accuracy.top1:.1f}" if info.accuracy else "-",
                )
            )
    lines = table([header, *rows]).splitlines()
    out, done = [lines[0]], 1
    for family, members in groups:
        if len(groups) > 1:
            with_weights = sum(1 for n in members if n in registry.models and
                               registry.models[n].has_weights)  # fmt: skip
            out.append(f"{family} ({len(members)}, {with_weights} with published weights):")
        out += lines[done : done + len(members)]
        done += len(members)
    print("\n".join(out))
    return EXIT_OK


def _cmd_info(args: argparse.Namespace) -> int:
    from .._model_facts import model_facts

    info = model_facts(args.name)
    cache = _cache_state(args, info)
    if args.json:
        document = {
            "model_info": dataclasses.asdict(info),
            "pretrained_cfg": info.pretrained_cfg(),
            "cache": cache,
        }
        print(json.dumps(document, indent=2, default=str))
        return EXIT_OK
    rows = [("name", info.name), ("network", info.architecture)]
    if info.label_offset:
        labels = "index 0 is the background class, ImageNet class i is logit i + 1"
    else:
        labels = "no background class"
    rows.append(("classes", f"{info.num_classes} ({labels})"))
    p = info.preprocessing
    if p is None:
        rows.append(("preprocessing", "not known"))
    else:
        if p.crop_mode == "crop_then_resize":
            crop = f"central crop of {p.crop_fraction:.1%}, resize to {p.input_size}"
        else:
            crop = f"shorter side to {p.resize_size}, central crop {p.input_size}"
        rows += [
            ("preprocessing", f"{p.kind}: {crop}x{p.input_size} ({p.interpolation})"),
            ("input size", f"3x{p.input_size}x{p.input_size}"),
            ("normalisation", f"(x - mean) / std, x in [0, {p.value_scale:g}]"),
            ("mean / std", f"{_floats(p.mean)} / {_floats(p.std)}"),
            ("mean / std [0,1]", f"{_floats(p.unit_mean)} / {_floats(p.unit_std)}"),
        ]
    if info.accuracy:
        a = info.accuracy
        top5 = f"top-5 {a.top5:g} %" if a.top5 is not None else "top-5 not published"
        rows.append(("accuracy", f"top-1 {a.top1:g} %, {top5} ({a.source})"))
    if info.paper:
        rows.append(("paper", f"{info.paper.title} <{info.paper.url}>"))
    rows.append(("licence", info.license or "-"))
    r = info.release
    if r is None:
        rows.append(("weights", "none published (build it untrained or load your own)"))
    else:
        size = f"{r.size} bytes" if r.size else "size not known"
        rows += [
            ("weights", r.url),
            ("sha256", r.sha256 or "not known (recorded at the first download)"),
            ("checkpoint", f"{r.checkpoint} ({r.format.upper()}, {size})"),
        ]
    rows.append(("cache", _describe_cache(cache)))
    if info.notes:
        rows.append(("notes", info.notes))
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))
    return EXIT_OK


def _floats(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"


def _cache_state(args: argparse.Namespace, info: Any) -> dict[str, Any]:
    """The model's cache entry as plain data (read-only, no network)."""
    from ..config import resolve
    from ..pretrained import cache_info

    directory = str(resolve(cache_dir=args.cache_dir).cache_dir)
    if info.release is None:
        return {"status": "no weights", "cache_dir": directory}
    state = cache_info(info.name, cache_dir=args.cache_dir, verify=args.verify)
    return {
        "status": state.status,
        "cache_dir": directory,
        "path": str(state.path),
        "size": state.size,
        "problem": state.problem,
        "created": (state.metadata or {}).get("created"),
        "tarball_kept": str(state.tarball) if state.tarball else None,
        "partial_download_bytes": state.partial_bytes,
    }


def _describe_cache(cache: dict[str, Any]) -> str:
    status = cache["status"]
    if status == "no weights":
        return f"- (nothing to cache; cache {cache['cache_dir']})"
    if status == "complete":
        made = f", made {cache['created']}" if cache.get("created") else ""
        return f"complete: {cache['path']} ({cache['size'] / 1e6:.1f} MB{made})"
    if status == "invalid":
        return f"invalid ({cache['problem']}): {cache['path']}; the next load rebuilds it"
    partial = cache.get("partial_download_bytes") or 0
    resumed = f", {partial} bytes of an interrupted download kept" if partial else ""
    return f"not downloaded yet (cache {cache['cache_dir']}{resumed})"
