"""Safe, streaming extraction of the checkpoint files from a release tarball.

Only the members the registry names are written, as regular files under the target directory.
The whole archive is refused (:class:`~zoo.errors.ArchiveError` naming the member) when any member

* has an absolute name or a ``..`` component (path traversal),
* is a symbolic or hard link, a device file or a FIFO,
* is one of the wanted names more than once (which copy would be meant is ambiguous),

so a tampered or broken archive never writes outside the target and is never half-trusted.

The layout is checked against the registry (:class:`~zoo.registry_schema.Release`): every
checkpoint file it names (``wanted``) must be there, or the archive is refused with an error that
names what was expected and which checkpoint files the archive holds instead (no other file is
ever taken in their place: a release whose files are not where the registry says is a registry
error to fix, not something to guess around). The other members the registry lists (``known``:
graphs, TFLite files, a training checkpoint) are skipped without being extracted; a listed one
that is absent is logged as a warning, and members listed nowhere are only logged.
A truncated or corrupt archive (bad gzip data, a CRC error, an early end) is an ``ArchiveError``
too: the archive is read to its end, so the gzip checksum is always verified.

Decompression is bounded: past ``max_bytes`` of tar stream (the caller's limit, e.g. a ratio of
the tarball's size) the archive is refused as a decompression bomb, whether the bytes belong to
a wanted member or to one that is skipped; a member whose header declares more than what is
left of the limit is refused before any of it is written.

The tarball is read once, front to back, in 1 MiB chunks (never whole in memory): ``tarfile``'s
random-access mode on the decompressing stream, whose seeks are all forward (2-3x faster than its
``r|`` stream mode).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import logging
import lzma
import re
import tarfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO

from .errors import ArchiveError, CacheError

__all__ = ["extract_members", "normalize_member_name"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20

# A checkpoint file name: V2 '<prefix>.index' / '<prefix>.data-00000-of-00001', or V1 '<x>.ckpt'
_CHECKPOINT_FILE = re.compile(r"^(?P<prefix>.+?)(?P<suffix>\.index|\.data-\d{5}-of-\d{5}|)$")

# (magic bytes, opener) of the compressions a tarball may use; anything else is read as plain tar
_COMPRESSIONS = (
    (b"\x1f\x8b", gzip.open),
    (b"BZh", bz2.open),
    (b"\xfd7zXZ\x00", lzma.open),
)
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, OSError)


def normalize_member_name(name: str) -> str | None:
    """``name`` without leading ``./`` and duplicate slashes; ``None`` if it could escape the
    target (absolute, ``..``, backslashes, drive letters)."""
    if not name or name.startswith("/") or "\\" in name or ":" in name.split("/", 1)[0]:
        return None
    parts = [p for p in PurePosixPath(name).parts if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)  # "" for the archive's root directory entry "./"


def extract_members(
    tarball: Path,
    wanted: Iterable[str],
    dest: Path,
    *,
    digest: hashlib._Hash | None = None,
    max_bytes: int | None = None,
    known: Iterable[str] = (),
) -> dict[str, Path]:
    """Extract the regular files ``wanted`` (tarball paths) from ``tarball`` into ``dest``.

    Returns ``{wanted name: extracted path}``. ``dest`` must exist; nothing outside it is written.
    ``known`` are the other members the release is known to hold: skipped, not extracted.
    ``digest`` (e.g. ``hashlib.sha256()``) is fed every byte of the tarball file as it is read,
    so a caller can verify it without a pass of its own (before trusting what was extracted).
    ``max_bytes``: the most bytes of decompressed tar stream to read (None: no limit).
    """
    wanted = set(wanted)
    dest = Path(dest).resolve()
    found: dict[str, Path] = {}
    listing: list[str] = []
    known = set(known) - wanted
    try:
        # buffered: the decompressors read 8 KiB at a time, the hashing reader sees 1 MiB reads
        raw = io.BufferedReader(_HashingReader(open(tarball, "rb"), digest), CHUNK)
        with (
            raw,
            _decompressed(tarball, raw) as decompressed,
            _Bounded(decompressed, max_bytes, tarball) as stream,
            tarfile.open(fileobj=stream, mode="r:") as tar,
        ):
            for member in tar:
                name = _check(member, tarball)
                stream.check_member(member)
                if name and not member.isdir():
                    listing.append(name)
                if name not in wanted:  # skipped unread (the tar reader seeks past it)
                    continue
                if name in found:
                    raise ArchiveError(
                        f"{tarball}: member {member.name!r} appears twice; refusing an ambiguous "
                        "archive. Delete it and download it again."
                    )
                if not member.isfile():
                    raise ArchiveError(
                        f"{tarball}: member {member.name!r} is not a regular file; refusing it."
                    )
                found[name] = _write(tar, member, name, dest, tarball)
            # Read to the very end so that gzip verifies its CRC and length trailer (and the
            # digest sees every byte).
            while stream.read(CHUNK):
                pass
            while raw.read(CHUNK):
                pass
        missing = sorted(wanted - set(found))
        if missing:
            raise ArchiveError(_layout_error(tarball, sorted(wanted), missing, listing))
    except BaseException as exc:
        for path in found.values():  # a refused archive leaves nothing behind
            path.unlink(missing_ok=True)
        if isinstance(exc, _CORRUPT) and not isinstance(exc, (ArchiveError, CacheError)):
            raise ArchiveError(
                f"{tarball} is truncated or corrupt ({type(exc).__name__}: {exc}). Delete it "
                "and download it again (or copy it again from the source)."
            ) from None
        raise
    _report_other_members(tarball, known, set(listing) - wanted)
    return found


def _suffix(name: str) -> str | None:
    """The checkpoint suffix of a file name ('.index', '.data-…', '' for '*.ckpt'), or None."""
    match = _CHECKPOINT_FILE.match(name.rsplit("/", 1)[-1])
    if match is None or (not match["suffix"] and not name.endswith(".ckpt")):
        return None
    return match["suffix"]


def _checkpoints_in(listing: Iterable[str]) -> dict[str, list[str]]:
    """``{checkpoint path: its files}`` of the checkpoint-like members of an archive."""
    groups: dict[str, list[str]] = {}
    for name in listing:
        suffix = _suffix(name)
        if suffix is not None:
            groups.setdefault(name[: len(name) - len(suffix)], []).append(name)
    return groups


def _layout_error(tarball: Path, wanted: list[str], missing: list[str], listing: list[str]) -> str:
    """What the registry expects, what the archive holds instead, and what to do."""
    found = _checkpoints_in(listing)
    if found:
        held = "; ".join(f"{p} ({', '.join(sorted(f))})" for p, f in sorted(found.items()))
        what = f"The checkpoints it holds: {held}."
    else:
        shown = ", ".join(listing[:12]) + (" ..." if len(listing) > 12 else "")
        what = f"It holds no checkpoint file (members: {shown or 'none'})."
    return (
        f"{tarball} does not have the layout the registry expects: missing "
        f"{', '.join(missing)} (expected checkpoint files: {', '.join(wanted)}). {what} Is it "
        "the right tarball for this model? If the release really is laid out so, correct the "
        "registry entry's 'checkpoint' and 'files' (ZOO_REGISTRY for your own copy)."
    )


def _report_other_members(tarball: Path, known: set[str], others: set[str]) -> None:
    """Log listed members the archive lacks (a warning) and members listed nowhere (info)."""
    absent = sorted(known - others)
    if absent:
        log.warning(
            "%s lacks %s, listed in the registry entry's other_files (skipped anyway: the "
            "checkpoint files are complete)",
            tarball,
            ", ".join(absent),
        )
    unlisted = sorted(others - known)
    if unlisted:
        log.info("%s also holds %s (not in the registry; skipped)", tarball, ", ".join(unlisted))


def _decompressed(tarball: Path, raw: IO[bytes]) -> IO[bytes]:
    """``raw`` decompressed according to the tarball's magic bytes (plain tar: ``raw`` itself)."""
    with open(tarball, "rb") as f:
        magic = f.read(6)
    for prefix, opener in _COMPRESSIONS:
        if magic.startswith(prefix):
            return opener(raw, "rb")
    return contextlib.nullcontext(raw)


class _HashingReader(io.RawIOBase):
    """A file read forward only, every byte fed to ``digest``; forward seeks read and skip."""

    def __init__(self, file: IO[bytes], digest: hashlib._Hash | None) -> None:
        self._file, self._digest, self._position = file, digest, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._file.readinto(buffer)
        if n and self._digest is not None:
            self._digest.update(memoryview(buffer)[:n])
        self._position += n or 0
        return n

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            raise io.UnsupportedOperation("a tarball is read forward only")
        while self._position < target and self.read(min(CHUNK, target - self._position)):
            pass
        return self._position

    def close(self) -> None:
        self._file.close()
        super().close()


class _Bounded(io.RawIOBase):
    """The decompressed tar stream, refused (``ArchiveError``) past ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int | None, tarball: Path) -> None:
        self._stream, self._limit, self._tarball, self._position = stream, limit, tarball, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._stream.readinto(buffer) or 0
        self._position += n
        if self._limit is not None and self._position > self._limit:
            raise self._bomb(f"it decompresses to more than {self._limit} bytes")
        return n

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # tarfile skips a member's data by seeking forward: read (and count) what is skipped
        target = offset if whence == io.SEEK_SET else self._position + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self._position:
            raise io.UnsupportedOperation("a tarball is read forward only")
        if self._limit is not None and target > self._limit:
            raise self._bomb(f"it skips to byte {target} of its decompressed stream")
        scratch = bytearray(min(CHUNK, max(target - self._position, 1)))
        while self._position < target:
            view = memoryview(scratch)[: min(len(scratch), target - self._position)]
            if not self.readinto(view):
                break
        return self._position

    def check_member(self, member: tarfile.TarInfo) -> None:
        """Refuse a member declaring more bytes than the limit leaves, before reading it."""
        if self._limit is not None and self._position + member.size > self._limit:
            raise self._bomb(f"its member {member.name!r} declares {member.size} bytes")

    def _bomb(self, what: str) -> ArchiveError:
        return ArchiveError(
            f"{self._tarball} is refused as a decompression bomb: {what}, over the limit of "
            f"{self._limit} bytes for a tarball of its size (ZOO_MAX_EXTRACT_RATIO). Nothing "
            "was kept. If it is a genuine release, raise ZOO_MAX_EXTRACT_RATIO."
        )


def _check(member: tarfile.TarInfo, tarball: Path) -> str:
    """The member's normalized name, or ``ArchiveError`` for anything unsafe."""
    name = normalize_member_name(member.name)
    if name is None:
        raise ArchiveError(
            f"{tarball}: member {member.name!r} has an absolute or '..' path (path traversal); "
            "refusing the archive. It is not a genuine release tarball: delete it."
        )
    kind = None
    if member.issym():
        kind = f"a symbolic link to {member.linkname!r}"
    elif member.islnk():
        kind = f"a hard link to {member.linkname!r}"
    elif member.isdev():
        kind = "a device file or FIFO"
    elif not (member.isfile() or member.isdir()):
        kind = f"an unsupported member type ({member.type!r})"
    if kind:
        raise ArchiveError(
            f"{tarball}: member {member.name!r} is {kind}; refusing the archive (a release "
            "tarball holds only regular files). Delete it."
        )
    return name


def _write(
    tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, dest: Path, tarball: Path
) -> Path:
    target = dest.joinpath(*name.split("/"))
    if dest not in target.resolve().parents:  # belt and braces after normalize_member_name
        raise ArchiveError(f"{tarball}: member {member.name!r} would land outside {dest}")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    written = 0
    try:
        # 'x': never follow or overwrite something already there (dest is a fresh directory)
        out = open(target, "xb")
    except OSError as exc:
        raise CacheError(f"cannot create {target}: {exc}") from None
    with source, out:
        while chunk := source.read(CHUNK):  # read errors: a corrupt archive (caller)
            try:
                out.write(chunk)
            except OSError as exc:
                raise CacheError(
                    f"cannot write {target} ({exc}): is the cache directory's disk full? "
                    "Set ZOO_CACHE_DIR to a directory with more space."
                ) from None
            written += len(chunk)
    if written != member.size:
        raise ArchiveError(
            f"{tarball}: member {member.name!r} is truncated ({written} of {member.size} bytes). "
            "Delete the tarball and download it again."
        )
    return target
