"""``slimzoo`` (also ``python -m zoo``): list, inspect, convert, run and export the slim models.

Commands (each has ``--help``)::

    slimzoo list [PATTERN]                        networks, eval size, classes, accuracy
    slimzoo info NAME                             registry facts and cache state
    slimzoo convert CKPT --model NAME -o OUT      TF checkpoint → .safetensors (or --pt)
    slimzoo predict NAME IMAGE...                 top-5 classes of images
    slimzoo export NAME --weights W -o PREFIX     torch weights → TF-slim checkpoint

Errors print one line, ``slimzoo: error: ...``, on stderr. Exit status: 0 success, 2 bad usage
(unknown model or option, missing or unreadable file, a checkpoint or weights file that does
not fit the model), 1 any other failure (download, cache), 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import glob
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .errors import (
    ArchiveError,
    CacheError,
    CheckpointError,
    ChecksumError,
    ConfigError,
    DownloadError,
    MappingError,
    NoWeightsError,
    RegistryError,
    UnknownModelError,
    ZooError,
    close_matches,
)

__all__ = ["main"]

PROG = "slimzoo"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PRETRAINED = "pretrained"  # `--weights pretrained`: the published weights


class UsageError(Exception):
    """A bad command line found after parsing (e.g. options that contradict each other)."""


# Errors of the environment or the network: exit 1 (checked before the usage errors below, since
# ChecksumError is also a CheckpointError).
_FAILURES = (DownloadError, ArchiveError, CacheError, ChecksumError, RegistryError)
# Errors in what the user asked for: exit 2.
_USAGE = (
    UnknownModelError,
    NoWeightsError,
    ConfigError,
    MappingError,
    CheckpointError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    UsageError,
)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (not the whole usage) that points to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.debug else logging.WARNING, format=f"{PROG}: %(message)s"
    )
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args) or EXIT_OK)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        code = _exit_status(exc)
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return code


def _exit_status(exc: BaseException) -> int:
    if isinstance(exc, _FAILURES):
        return EXIT_FAILURE
    if isinstance(exc, _USAGE):
        return EXIT_USAGE
    return EXIT_FAILURE


_LONGEST_MESSAGE = 700  # characters; a MappingError can list hundreds of variable names


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type too where it is not one of ours); a very
    long one keeps its beginning and its end (which says what to do)."""
    text = " ".join(str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).split())
    if len(text) > _LONGEST_MESSAGE:
        head, tail = text[:400].rsplit(" ", 1)[0], text[-250:].split(" ", 1)[-1]
        text = f"{head} [...] {tail}"
    ours = isinstance(exc, (ZooError, UsageError))
    if ours or (isinstance(exc, OSError) and exc.errno is None):  # raised with a message of ours
        return text
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return f"{type(exc).__name__}: {text}" + (
        "" if isinstance(exc, _USAGE) else f" (run '{PROG} --debug ...' for the traceback)"
    )


# --------------------------------------------------------------------------- the parser


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="TF-slim ImageNet models as PyTorch modules: list, inspect, convert, run "
        "and export them. Also runs as 'python -m zoo'.",
        epilog=f"'{PROG} COMMAND --help' explains each command. Environment: ZOO_CACHE_DIR, "
        "ZOO_OFFLINE, ZOO_MIRROR, ZOO_REGISTRY (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="log what happens and show tracebacks on errors"
    )
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    cache = _Parser(add_help=False)
    cache.add_argument("--cache-dir", metavar="DIR", help="weights cache (default ZOO_CACHE_DIR)")
    cache.add_argument(
        "--offline", action="store_true", default=None, help="never download (as ZOO_OFFLINE=1)"
    )

    p = _command(
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

    p = _command(
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

    p = _command(
        commands,
        "convert",
        _cmd_convert,
        "convert a TF checkpoint to torch weights",
        "Convert a TF-slim checkpoint of the network --model (e.g. your own fine-tuned one; V1 "
        "file, V2 prefix or .index, or a directory holding one checkpoint) to a .safetensors "
        "file (or with --pt a torch.save state dict), which zoo.load(NAME, weights=OUT) and "
        "'slimzoo predict/export --weights OUT' take. The class count is read from the "
        "checkpoint.",
        epilog="example: slimzoo convert train_dir/model.ckpt-20000 --model inception_v3 "
        "-o flowers.safetensors",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--model", required=True, metavar="NAME", help="the slim network name")
    p.add_argument(
        "--num-classes",
        type=int,
        metavar="N",
        help="expected class count (an error if the checkpoint's differs)",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    p.add_argument("--pt", action="store_true", help="write a torch.save state dict (.pt/.pth)")
    p.add_argument(
        "--drop-background",
        action="store_true",
        help="remove the background class of a 1001-class classifier (1000 outputs, "
        "torchvision's order)",
    )
    p.add_argument(
        "--no-ema",
        action="store_true",
        help="take the raw variables, not their ExponentialMovingAverage shadows",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    p = _command(
        commands,
        "predict",
        _cmd_predict,
        "classify images",
        "Run NAME on each IMAGE with slim's evaluation preprocessing (zoo.get_transform) and "
        "print the top classes with their softmax probabilities. The published weights are "
        "used (downloaded on first use) unless --checkpoint or --weights is given.",
        parents=[cache],
        epilog="example: slimzoo predict inception_v3 cat.jpg dog.png",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", metavar="CKPT", help="a TF checkpoint of the network")
    source.add_argument(
        "--weights", metavar="W", help="a .safetensors / .pt weights file (slimzoo convert)"
    )
    p.add_argument("-k", "--top", type=int, default=5, metavar="K", help="classes shown (5)")
    p.add_argument("--labels", metavar="FILE", help="class names, one a line (fine-tuned models)")
    p.add_argument(
        "--drop-background",
        action="store_true",
        help="1000 ImageNet classes in torchvision's numbering (1001-class models)",
    )
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="images per batch (8)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = _command(
        commands,
        "export",
        _cmd_export,
        "write torch weights as a TF-slim checkpoint",
        "Write the weights W of the network NAME as the TF-slim checkpoint PREFIX "
        "(zoo.export_tf_checkpoint), for tf.compat.v1.train.Saver / tf_slim. W is a "
        ".safetensors or .pt file of NAME (e.g. from 'slimzoo convert' or a PyTorch "
        "fine-tuning run), or 'pretrained' for the published weights.",
        parents=[cache],
        epilog="example: slimzoo export inception_v3 --weights tuned.safetensors -o out/model.ckpt",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--weights", required=True, metavar="W", help="weights file or 'pretrained'")
    p.add_argument("-o", "--output", required=True, metavar="PREFIX", help="checkpoint prefix")
    p.add_argument("--format", choices=("v2", "v1"), default="v2", help="checkpoint format (v2)")
    p.add_argument("--global-step", type=int, default=0, metavar="N", help="global_step value")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    return parser


def _command(
    commands: Any,
    name: str,
    run: Callable[[argparse.Namespace], int | None],
    summary: str,
    description: str,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description, **kwargs)
    parser.set_defaults(command=name, run=run)
    return parser


# --------------------------------------------------------------------------- list


def _cmd_list(args: argparse.Namespace) -> int:
    import architectures

    from ._model_facts import by_family
    from .registry import get_registry

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
    lines = _table([header, *rows]).splitlines()
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


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


# --------------------------------------------------------------------------- info


def _cmd_info(args: argparse.Namespace) -> int:
    from ._model_facts import model_facts

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
    from .config import resolve
    from .pretrained import cache_info

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


# --------------------------------------------------------------------------- convert


_TORCH_SUFFIXES = (".pt", ".pth")


def _cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from .models import load

    out = Path(args.output)
    is_torch_name = out.name.endswith(_TORCH_SUFFIXES)
    if args.pt and not is_torch_name:
        raise UsageError(f"--pt writes a torch.save file: name it *.pt or *.pth, not {out.name}")
    if is_torch_name and not args.pt:
        raise UsageError(
            f"{out.name} names a torch.save file: add --pt for that format, or name the output "
            "*.safetensors"
        )
    _check_writable(out, args.overwrite)
    checkpoint = _existing(args.checkpoint, "checkpoint")
    if args.num_classes is not None:
        _check_num_classes(checkpoint, args.model, args.num_classes)
    model = load(
        args.model,
        checkpoint=checkpoint,
        num_classes=args.num_classes,
        use_ema=not args.no_ema,
        drop_background=args.drop_background,
    )
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if args.pt:
            torch.save(state, tmp)
        else:
            from safetensors.torch import save_file

            metadata = {
                "format": "pt",
                "slimzoo_model": args.model,
                "num_classes": str(model.num_classes),
                "converted_from": Path(args.checkpoint).name,
            }
            save_file(state, tmp, metadata=metadata)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report = getattr(model, "load_report", None)
    detail = f"; {report}" if report is not None else ""
    print(
        f"wrote {out}: {args.model} with {model.num_classes} classes, {len(state)} tensors, "
        f"{out.stat().st_size / 1e6:.1f} MB{detail}"
    )
    return EXIT_OK


def _check_num_classes(checkpoint: str, network: str, expected: int) -> None:
    """``--num-classes`` is what the user expects the checkpoint to hold: say so if it does not."""
    from architectures._tf import checkpoint_num_classes

    from .checkpoint import open_checkpoint
    from .convert import build_skeleton

    stored = checkpoint_num_classes(build_skeleton(network, expected), open_checkpoint(checkpoint))
    if stored is not None and stored != expected:
        raise UsageError(
            f"--num-classes {expected}, but the classifier of {checkpoint} has {stored} classes; "
            "leave --num-classes out to take the checkpoint's"
        )


def _existing(path: str, what: str) -> str:
    """``path`` when something is there (a V2 prefix counts by its ``.index``)."""
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise FileNotFoundError(f"no {what} at {path}")
    return path


def _check_writable(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"no directory {out.parent} for {out.name}")


# --------------------------------------------------------------------------- predict


def _cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from ._model_facts import model_facts
    from .labels import imagenet_labels
    from .transforms import get_transform

    if args.top < 1 or args.batch_size < 1:
        raise UsageError("--top and --batch-size must be at least 1")
    images = [_existing(path, "image") for path in args.images]
    model_facts(args.name)  # an unknown name fails here, before any download
    transform = get_transform(args.name)
    model = _load_model(args, checkpoint=args.checkpoint, drop_background=args.drop_background)
    classes = int(model.num_classes)
    if args.labels:
        labels = Path(_existing(args.labels, "labels file")).read_text().splitlines()
        if len(labels) != classes:
            raise UsageError(f"{args.labels} has {len(labels)} lines, the model {classes} classes")
    elif classes in (1000, 1001):
        labels = imagenet_labels(classes)
    else:
        labels = [f"class {i}" for i in range(classes)]

    results = []
    with torch.inference_mode():
        for start in range(0, len(images), args.batch_size):
            paths = images[start : start + args.batch_size]
            batch = torch.stack([transform(_read_image(p)) for p in paths])
            probabilities = torch.softmax(model(batch).float(), dim=-1)
            top = probabilities.topk(min(args.top, classes), dim=-1)
            for path, scores, indices in zip(paths, top.values, top.indices):
                ranked = [
                    {"index": int(i), "label": labels[int(i)], "probability": float(s)}
                    for s, i in zip(scores, indices)
                ]
                results.append({"image": path, "top": ranked})
    if args.json:
        print(json.dumps({"model": args.name, "num_classes": classes, "results": results}))
        return EXIT_OK
    for result in results:
        print(result["image"])
        for rank, entry in enumerate(result["top"], 1):
            print(f"  {rank}. {entry['probability']:.4f}  {entry['index']:4d}  {entry['label']}")
    return EXIT_OK


def _read_image(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read the image {path}: {exc}") from None


def _load_model(args: argparse.Namespace, **kwargs: Any) -> Any:
    """``zoo.load(args.name)`` from ``--weights`` (a file or 'pretrained'), ``checkpoint=`` or,
    when neither is given, the published weights."""
    from .models import load

    weights = getattr(args, "weights", None)
    if kwargs.get("checkpoint") is not None:
        _existing(kwargs["checkpoint"], "checkpoint")
        return load(args.name, **kwargs)
    if weights is not None and weights != PRETRAINED:
        return load(args.name, weights=_existing(weights, "weights file"), **kwargs)
    kwargs.pop("checkpoint", None)
    return load(
        args.name,
        pretrained=True,
        cache_dir=args.cache_dir,
        offline=args.offline,
        progress=sys.stderr.isatty(),
        **kwargs,
    )


# --------------------------------------------------------------------------- export


def _cmd_export(args: argparse.Namespace) -> int:
    from .export import export_tf_checkpoint

    network = args.name
    existing = _checkpoint_files(Path(args.output), args.format)
    if existing and not args.overwrite:
        names = ", ".join(p.name for p in existing)
        raise FileExistsError(f"a checkpoint exists at {args.output} ({names}): pass --overwrite")
    if args.weights == PRETRAINED:
        from .pretrained import released_model_info

        network = released_model_info(args.name).architecture
    model = _load_model(args)
    written = export_tf_checkpoint(
        model,
        network,
        args.output,
        format=args.format,
        overwrite=args.overwrite,
        global_step=args.global_step,
    )
    print(
        f"wrote {written}: {network} with {model.num_classes} classes as a TF "
        f"{args.format.upper()} checkpoint"
    )
    return EXIT_OK


def _checkpoint_files(prefix: Path, format: str) -> list[Path]:
    """The files of a checkpoint at ``prefix``: the V1 file, or the V2 index and data shards."""
    if format == "v1":
        return [prefix] if prefix.exists() else []
    index = prefix.with_name(prefix.name + ".index")
    shards = sorted(prefix.parent.glob(glob.escape(prefix.name) + ".data-*"))
    return ([index] if index.exists() else []) + shards
