"""What the ``slimzoo`` commands share: exit codes, the usage error, file checks, model loading."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PRETRAINED",
    "PROG",
    "Parser",
    "UsageError",
    "add_command",
    "check_writable",
    "existing",
    "load_model",
    "table",
]

PROG = "slimzoo"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
PRETRAINED = "pretrained"  # `--weights pretrained`: the published weights


class UsageError(Exception):
    """A bad command line found after parsing (e.g. options that contradict each other)."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (not the whole usage) that points to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_command(
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


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def existing(path: str, what: str) -> str:
    """``path`` when something is there (a V2 prefix counts by its ``.index``)."""
    if not (os.path.exists(path) or os.path.exists(path + ".index")):
        raise FileNotFoundError(f"no {what} at {path}")
    return path


def check_writable(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"no directory {out.parent} for {out.name}")


def load_model(args: argparse.Namespace, **kwargs: Any) -> Any:
    """``zoo.load(args.name)`` from ``--weights`` (a file or 'pretrained'), ``checkpoint=`` or,
    when neither is given, the published weights."""
    from ..models import load

    weights = getattr(args, "weights", None)
    if kwargs.get("checkpoint") is not None:
        existing(kwargs["checkpoint"], "checkpoint")
        return load(args.name, **kwargs)
    if weights is not None and weights != PRETRAINED:
        return load(args.name, weights=existing(weights, "weights file"), **kwargs)
    kwargs.pop("checkpoint", None)
    return load(
        args.name,
        pretrained=True,
        cache_dir=args.cache_dir,
        offline=args.offline,
        progress=sys.stderr.isatty(),
        **kwargs,
    )
