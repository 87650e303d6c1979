"""``slimzoo`` (also ``python -m zoo``): list, inspect, convert, run and export the slim models.

Commands (each has ``--help``)::

    slimzoo list [PATTERN]                        networks, eval size, classes, accuracy
    slimzoo info NAME                             registry facts and cache state
    slimzoo convert CKPT --model NAME -o OUT      TF checkpoint → .safetensors (or --pt)
    slimzoo predict NAME PATH...                  top-5 classes of images, files or folders
    slimzoo export NAME --weights W -o PREFIX     torch weights → TF-slim checkpoint

Errors print one line, ``slimzoo: error: ...``, on stderr. Exit status: 0 success, 2 bad usage
(unknown model or option, missing or unreadable file, a checkpoint or weights file that does
not fit the model), 1 any other failure (download, cache, an image predict could not read),
130 interrupted.

One module per responsibility: ``_common`` (what every command shares), ``_inspect`` (list,
info), ``_weights`` (convert, export), ``_predict`` (predict, on :mod:`zoo.predict`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import (
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
)
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Parser,
    UsageError,
)
from ._inspect import add_info, add_list
from ._predict import add_predict
from ._weights import add_convert, add_export

__all__ = ["main"]

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
    from .. import __version__

    parser = Parser(
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
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)

    cache = Parser(add_help=False)
    cache.add_argument("--cache-dir", metavar="DIR", help="weights cache (default ZOO_CACHE_DIR)")
    cache.add_argument(
        "--offline", action="store_true", default=None, help="never download (as ZOO_OFFLINE=1)"
    )

    add_list(commands)
    add_info(commands, cache)
    add_convert(commands)
    add_predict(commands, cache)
    add_export(commands, cache)
    return parser
