"""Resumable, verified HTTP downloads.

:func:`download` fetches a URL into ``<dest>.part`` and renames it to ``dest`` only after its size
and sha256 have been checked. What it survives:

* connection errors, timeouts, a body cut off mid-way, HTTP 5xx/429: retried with exponential
  backoff (``ZOO_RETRIES`` times, first wait ``ZOO_BACKOFF`` seconds), each retry resuming with
  an HTTP ``Range`` request from the bytes already on disk;
* a process killed mid-download: the ``.part`` file and its ``.part.json`` state (URL, expected
  hash, the server's ``ETag``/``Last-Modified``) let the next call resume; ``If-Range`` makes a
  server whose file changed send the whole new file;
* a server that ignores ``Range`` (200 instead of 206), answers 416, or a ``Content-Range`` that
  does not start where we asked: the partial file is dropped and the download restarts from zero;
* a wrong size or hash: the partial file is deleted and :class:`~zoo.errors.DownloadError` names
  the URL, expected and found values and what to do. If part of the file came from an earlier
  attempt, the whole file is downloaded once more before giving up;
* a server that trickles: a transfer slower than ``ZOO_MIN_SPEED`` over its window is dropped
  (and retried like a timeout), so no download lasts forever; a body of unknown size longer
  than ``ZOO_MAX_DOWNLOAD`` MiB is refused;
* errors that waiting cannot heal (a host name that does not resolve, a refused connection, an
  HTTP 4xx other than 408/429) fail at once, not after the retries, with a short first line
  ("cannot reach HOST: no network? ...");
* a file system error while writing (a full disk, a file size limit, a read-only cache):
  :class:`~zoo.errors.CacheError` saying so.

When stderr is not a terminal (no progress bar: notebooks' logs, CI, batch jobs), each download
prints one line to stderr: URL, size and destination.

The caller holds the download's file lock (see :mod:`zoo.cache`); this module does no locking.
The bytes are stored as served (``Accept-Encoding: identity``, no transparent decompression).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import urllib3

from .config import Settings
from .errors import CacheError, DownloadError

__all__ = ["Downloaded", "ProgressCallback", "download", "sha256_of_file"]

log = logging.getLogger(__name__)

# progress(bytes_done, bytes_total_or_None), called as bytes arrive (e.g. to drive your own bars)
ProgressCallback = Callable[[int, "int | None"], None]

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Downloaded:
    """A verified download."""

    path: Path
    size: int
    sha256: str
    resumed_from: int  # bytes reused from an earlier, interrupted download
    requests: int  # HTTP requests made


class _Transient(Exception):
    """A failure worth retrying (network trouble or a server-side error)."""


class _Unreachable(Exception):
    """A failure that retrying cannot heal: no such host, connection refused."""


class _Restart(Exception):
    """The partial file cannot be continued: start again from byte zero."""


def sha256_of_file(path: Path, limit: int | None = None) -> str:
    """Hex sha256 of ``path`` (of its first ``limit`` bytes when given)."""
    return _hash_prefix(path, limit).hexdigest()


def download(
    url: str,
    dest: Path,
    *,
    settings: Settings,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool | ProgressCallback = True,
    description: str | None = None,
) -> Downloaded:
    """Download ``url`` to ``dest`` (atomically: ``dest`` appears only once verified).

    ``size``/``sha256``: expected values (``None`` = unknown, not checked). ``progress``: ``True``
    for a tqdm bar on a terminal (quiet otherwise), ``False`` for none, or a callback.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        job = _Job(url, dest, settings, size, sha256, progress, description or dest.name)
        try:
            return job.run()
        finally:
            job.close()
    except OSError as exc:
        if isinstance(exc, requests.RequestException):  # (an OSError too) already classified
            raise
        raise _disk_error(exc, url, dest) from exc


def _disk_error(exc: OSError, url: str, dest: Path) -> CacheError:
    where = exc.filename or dest.with_name(dest.name + ".part")  # (a buffered write names none)
    return CacheError(
        f"cannot write the download of {url} to {where}: {exc.strerror or exc}. Is the disk "
        "full, over a quota or a file size limit (ulimit -f), or the cache read-only? Free "
        "space or point ZOO_CACHE_DIR at another file system; the partial file is kept and the "
        "next call resumes it."
    )


class _Job:
    def __init__(
        self,
        url: str,
        dest: Path,
        settings: Settings,
        size: int | None,
        sha256: str | None,
        progress: bool | ProgressCallback,
        description: str,
    ) -> None:
        self.url, self.dest, self.settings = url, dest, settings
        self.size, self.sha256 = size, sha256
        self.part = dest.with_name(dest.name + ".part")
        self.state_file = dest.with_name(dest.name + ".part.json")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"slimzoo/{_version()}"
        self.requests = 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm.auto import tqdm

            # disable=None: quiet when stderr is not a terminal (CI logs, job arrays)
            self.bar = tqdm(
                total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=description,
                disable=None, file=sys.stderr, leave=False,
            )  # fmt: skip
            if self.bar.disable:  # not a terminal: one line, so a long download is no mystery
                print(
                    f"slimzoo: downloading {url} ({_human(size)}) to {dest}",
                    file=sys.stderr,
                    flush=True,
                )

    def close(self) -> None:
        self.session.close()
        if self.bar is not None:
            self.bar.close()

    # ---------------------------------------------------------------- the attempt loop

    def run(self) -> Downloaded:
        self.offset, self.validator = self._resume_point()
        self.hasher = _hash_prefix(self.part, self.offset) if self.offset else hashlib.sha256()
        resumed_from = self.offset
        self._fetch()
        problem = self._mismatch()
        if problem and resumed_from:
            # The earlier part may be what is wrong (e.g. bytes of an older version of the
            # file): fetch the whole file once more before blaming the server.
            log.warning("%s: %s after resuming; downloading it again", self.url, problem)
            self._restart()
            self._fetch()
            problem, resumed_from = self._mismatch(), 0
        if problem:
            self._discard()
            raise DownloadError(
                f"{self.url} does not match the registry: {problem}. The partial file was "
                "deleted and nothing was cached. If this machine downloads through a proxy or "
                "a ZOO_MIRROR, check that it serves the original file; if the file changed on "
                "purpose, point ZOO_REGISTRY at a registry with its new size and sha256."
            )
        os.replace(self.part, self.dest)
        self.state_file.unlink(missing_ok=True)
        return Downloaded(
            self.dest, self.offset, self.hasher.hexdigest(), resumed_from, self.requests
        )

    def _fetch(self) -> None:
        """Requests until the body is complete, with bounded retries and backoff."""
        attempts = self.settings.retries + 1
        errors: list[str] = []
        attempt = 0
        while not (self.size is not None and self.offset == self.size):
            # (a complete .part is left by a process killed just before the rename)
            try:
                self._attempt()
                return
            except _Restart as why:
                log.info("%s: %s; downloading from the start", self.url, why)
                self._restart()
                errors.append(str(why))
            except _Transient as exc:
                errors.append(str(exc))
            except _Unreachable as exc:
                host = urllib.parse.urlsplit(self.url).netloc or self.url
                raise DownloadError(
                    f"cannot reach {host}: no network? set ZOO_MIRROR or use slimzoo-warm "
                    f"--from-dir\n{self.url}: {exc}; not retried (waiting does not help). "
                    "Check the URL, network or proxy, or copy the tarball onto this machine "
                    "and import it with zoo.import_tarball(path)."
                ) from None
            attempt += 1
            if attempt >= attempts:
                raise DownloadError(
                    f"could not download {self.url} after {attempts} attempts "
                    f"(last error: {errors[-1]}). {self.offset} bytes are kept in {self.part} "
                    "and the next call resumes from there. Check the network or proxy, set "
                    "ZOO_MIRROR to an internal mirror, or copy the tarball onto this machine "
                    "and import it with zoo.import_tarball(path)."
                )
            delay = min(self.settings.backoff * 2 ** (attempt - 1), self.settings.backoff_max)
            delay *= 1 + 0.1 * random.random()  # spread the retries of many processes
            log.warning(
                "%s: %s; retry %d/%d in %.2f s", self.url, errors[-1], attempt, attempts - 1, delay
            )
            time.sleep(delay)

    def _mismatch(self) -> str | None:
        size, sha256 = self.offset, self.hasher.hexdigest()
        if self.size is not None and size != self.size:
            return f"expected {self.size} bytes, found {size}"
        if self.sha256 is not None and sha256 != self.sha256:
            return f"expected sha256 {self.sha256}, found {sha256} ({size} bytes)"
        return None

    def _restart(self) -> None:
        self.offset, self.hasher, self.validator = 0, hashlib.sha256(), None
        self._discard()

    # ---------------------------------------------------------------- one request

    def _attempt(self) -> None:
        """One GET from ``self.offset`` to the end; the state follows every byte written."""
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        self.requests += 1
        try:
            response = self.session.get(self.url, headers=headers, stream=True, timeout=timeout)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise DownloadError(f"invalid download URL {self.url!r}: {exc}") from None
        except requests.RequestException as exc:
            why = _unhealable(exc)
            if why is not None:
                raise _Unreachable(f"{why} ({_innermost(exc)})") from None
            raise _Transient(_describe(exc)) from None
        with response:
            status = response.status_code
            if status >= 500 or status in (408, 429):
                raise _Transient(f"HTTP {status} {response.reason}")
            if status == 416:
                raise _Restart("the server answered 416 (range not satisfiable)")
            if status not in (200, 206):
                raise DownloadError(
                    f"{self.url}: HTTP {status} {response.reason}. Check the URL (registry "
                    f"{'or ZOO_MIRROR ' if self.settings.mirror else ''}entry), or copy the "
                    "tarball onto this machine and import it with zoo.import_tarball(path)."
                )
            total = self._total(response)
            limit = self.size if self.size is not None else self.settings.max_download
            if total is not None and self.size is None and total > limit:
                raise DownloadError(
                    f"{self.url} is {total} bytes, more than ZOO_MAX_DOWNLOAD "
                    f"({limit >> 20} MiB) allows for a file of unknown size; raise "
                    "ZOO_MAX_DOWNLOAD if this is expected, or add the size to the registry."
                )
            if status == 200 and self.offset:
                log.info("%s: the server sent the whole file (no Range support, or it changed)",
                         self.url)  # fmt: skip
                self._restart()
            if self.size is not None and total is not None and total != self.size:
                self._discard()
                raise DownloadError(
                    f"{self.url} is {total} bytes, the registry expects {self.size}. Nothing "
                    "was cached. If you use a proxy or ZOO_MIRROR, check that it serves the "
                    "original file; if the file changed on purpose, update the registry "
                    "(ZOO_REGISTRY) with its new size and sha256."
                )
            validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
            self.validator = None if validator and validator.startswith("W/") else validator
            self._save_state(total)  # weak ETags are not allowed in If-Range: dropped above
            self.bar_reset(self.offset, total)
            with open(self.part, "r+b" if self.offset else "wb") as out:
                out.seek(self.offset)
                out.truncate()
                speed = _SpeedRule(self.settings, self.offset)
                for chunk in self._body(response):
                    out.write(chunk)
                    self.hasher.update(chunk)
                    self.offset += len(chunk)
                    self._progress(len(chunk), total)
                    if self.size is not None and self.offset > self.size:
                        raise _Restart(f"the server sent more than the expected {self.size} bytes")
                    if self.size is None and self.offset > limit:
                        self._discard()
                        raise DownloadError(
                            f"{self.url} sent more than ZOO_MAX_DOWNLOAD ({limit >> 20} MiB) "
                            "and its size is unknown (the registry has none): stopped, the "
                            "partial file was deleted. Raise ZOO_MAX_DOWNLOAD if the file is "
                            "really that large, or add its size and sha256 to the registry."
                        )
                    speed.check(self.offset)
            if total is not None and self.offset < total:
                raise _Transient(f"connection closed after {self.offset} of {total} bytes")

    def _total(self, response: requests.Response) -> int | None:
        if response.status_code == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
            if not match or int(match.group(1)) != self.offset:
                raise _Restart(
                    f"Content-Range {response.headers.get('Content-Range')!r} does not start "
                    f"at byte {self.offset}"
                )
            return None if match.group(3) == "*" else int(match.group(3))
        length = response.headers.get("Content-Length")
        return int(length) if length and length.isdigit() else None

    def _body(self, response: requests.Response) -> Iterator[bytes]:
        """The body as it arrives (``read1``: whatever is there, so a trickle of bytes still
        returns control to the speed rule)."""
        raw = response.raw
        try:
            if not hasattr(raw, "read1"):  # pragma: no cover - urllib3 1.x
                yield from raw.stream(64 << 10, decode_content=False)
                return
            while True:
                chunk = raw.read1(CHUNK, decode_content=False)
                if not chunk:
                    return
                yield chunk
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise _Transient(_describe(exc)) from None

    # ---------------------------------------------------------------- partial-file state

    def _resume_point(self) -> tuple[int, str | None]:
        """Bytes of a usable earlier ``.part`` (0 if none) and its server validator."""
        if not self.part.exists():
            self.state_file.unlink(missing_ok=True)
            return 0, None
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            state = None
        offset = self.part.stat().st_size
        usable = (
            isinstance(state, dict)
            and state.get("url") == self.url
            and state.get("sha256") == self.sha256
            and (self.size is None or offset <= self.size)
        )
        if not usable:
            log.info("%s: discarding a partial download that cannot be resumed", self.url)
            self._discard()
            return 0, None
        if offset:
            log.info("%s: resuming at byte %d", self.url, offset)
        return offset, state.get("validator")

    def _save_state(self, total: int | None) -> None:
        state = {
            "url": self.url,
            "sha256": self.sha256,
            "validator": self.validator,
            "total": total,
        }
        tmp = self.state_file.with_name(self.state_file.name + f".{os.getpid()}")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def _discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)

    # ---------------------------------------------------------------- progress

    def bar_reset(self, done: int = 0, total: int | None = None) -> None:
        if self.bar is not None:
            self.bar.reset(total=total if total is not None else self.size)
            self.bar.update(done)
        if self.callback is not None:
            self.callback(done, total if total is not None else self.size)

    def _progress(self, delta: int, total: int | None) -> None:
        if self.bar is not None:
            self.bar.update(delta)
        if self.callback is not None:
            self.callback(self.offset, total)


def _hash_prefix(path: Path, limit: int | None) -> hashlib._Hash:
    hasher = hashlib.sha256()
    remaining = limit
    with open(path, "rb") as f:
        while remaining is None or remaining > 0:
            chunk = f.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                break
            hasher.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return hasher


class _SpeedRule:
    """``ZOO_MIN_SPEED``: fewer than ``min_speed * window`` bytes in a window drops the
    transfer (a server sending a byte now and then never hits the per-read timeout)."""

    def __init__(self, settings: Settings, offset: int) -> None:
        self.rate, self.window = settings.min_speed, settings.speed_window
        self.start, self.offset = time.monotonic(), offset

    def check(self, offset: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < self.window:
            return
        speed = (offset - self.offset) / elapsed
        if speed < self.rate:
            raise _Transient(
                f"the transfer is too slow: {speed:.0f} bytes/s over the last {elapsed:.1f} s, "
                f"below ZOO_MIN_SPEED ({self.rate:g} bytes/s over {self.window:g} s)"
            )
        self.start, self.offset = now, offset


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (causes, contexts, urllib3's ``reason``, exception args)."""
    stack, seen = [exc], set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [a for a in e.args if isinstance(a, BaseException)]
        stack += [getattr(e, "reason", None), e.__context__, e.__cause__]


def _unhealable(exc: BaseException) -> str | None:
    """Why retrying ``exc`` cannot help (None when it may)."""
    for e in _causes(exc):
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return "the host name does not resolve"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
    return None


def _innermost(exc: BaseException) -> str:
    """The text of the deepest error ``exc`` wraps (e.g. ``[Errno -2] Name or service not
    known``), rather than urllib3's long wrapper messages."""
    last = exc
    for e in _causes(exc):
        if isinstance(e, OSError) and not isinstance(e, requests.RequestException):
            last = e
    return str(last) or type(last).__name__


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if len(text) > 300:  # cut at a word, and say so
        text = text[:300].rsplit(" ", 1)[0] + " ..."
    return f"{type(exc).__name__}: {text}"


def _human(size: int | None) -> str:
    if size is None:
        return "size unknown"
    return f"{size / (1 << 20):.1f} MiB" if size >= 1 << 20 else f"{size} bytes"


def _version() -> str:
    from . import __version__

    return __version__
