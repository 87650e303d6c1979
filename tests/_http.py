"""A small threaded HTTP file server on 127.0.0.1 that can misbehave on purpose.

pytest-httpserver covers well-behaved answers; the download tests also need a server that cuts
a body off mid-way, ignores ``Range``, throttles (so a process can be killed mid-download),
or answers 5xx a given number of times. Every request is recorded (method, path, headers).

    with FileServer() as server:
        server.add("/vgg.tar.gz", data)
        server.script("/vgg.tar.gz", Fault(status=503), Fault(cut_after=1000))
        url = server.url("/vgg.tar.gz")
        ...
        assert server.ranges("/vgg.tar.gz") == [None, None, "bytes=1000-"]
"""

from __future__ import annotations

import hashlib
import http.server
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Fault", "FileServer", "Request"]


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour, used by one request."""

    status: int | None = None  # answer this status with an empty body
    cut_after: int | None = None  # send the full headers, then only this many body bytes
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    body: bytes | None = None  # serve these bytes instead of the file (e.g. a changed file)
    trickle: float | None = None  # send the body one byte every this many seconds
    endless: bool = (
        False  # no Content-Length, and the file's bytes repeated until the client hangs up
    )


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def range(self) -> str | None:
        return self.headers.get("range")


@dataclass
class _File:
    data: bytes | None
    path: Path | None
    etag: str

    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


class FileServer:
    """Serves registered files with ``Range`` support and scripted faults.

    Args:
        ranges: honour ``Range`` requests (``False``: always 200 with the whole file).
        throttle: seconds to sleep after each 64 KiB of body (to kill a client mid-download).
    """

    CHUNK = 64 * 1024

    def __init__(self, *, ranges: bool = True, throttle: float = 0.0) -> None:
        self.ranges_supported = ranges
        self.throttle = throttle
        self._files: dict[str, _File] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # ---------------------------------------------------------------- control

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, content: bytes | Path) -> str:
        """Serve ``content`` (bytes, or a file read at each request) at ``path``; its URL."""
        if isinstance(content, (bytes, bytearray)):
            data, file = bytes(content), None
            etag = hashlib.sha256(data).hexdigest()[:16]
        else:
            data, file = None, Path(content)
            stat = file.stat()
            etag = f"{stat.st_size:x}-{stat.st_mtime_ns:x}"
        with self._lock:
            self._files[path] = _File(data, file, f'"{etag}"')
        return self.url(path)

    def script(self, path: str, *faults: Fault) -> None:
        """The next requests of ``path`` misbehave as listed, one fault per request."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

    def gets(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and r.method == "GET"]

    def ranges(self, path: str) -> list[str | None]:
        """The ``Range`` header of each GET of ``path`` (``None`` = the whole file asked)."""
        return [r.range for r in self.gets(path)]

    # ---------------------------------------------------------------- used by the handler

    def _take(self, method: str, path: str, headers: dict[str, str]) -> tuple[_File | None, Fault]:
        with self._lock:
            self.requests.append(Request(method, path, headers))
            queue = self._faults.get(path)
            fault = queue.pop(0) if queue else Fault()
            return self._files.get(path), fault


_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that hangs up (killed on purpose, or done after an error) is no server error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slimzoo-test"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        owner: FileServer = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        file, fault = owner._take(self.command, self.path, headers)
        if fault.status is not None:
            return self._empty(fault.status)
        if file is None:
            return self._empty(404)
        if fault.body is not None:
            file = _File(fault.body, None, '"changed"')
        if fault.endless:
            return self._endless(file)
        size = file.size()
        start, end, status = 0, size, 200
        wanted = headers.get("range")
        if_range = headers.get("if-range")
        use_range = (
            wanted
            and owner.ranges_supported
            and not fault.ignore_range
            and (if_range is None or if_range == file.etag)
        )
        if use_range:
            match = _RANGE.match(wanted)
            if not match or int(match.group(1)) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match.group(1))
            end = min(size, int(match.group(2)) + 1) if match.group(2) else size
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(end - start))
        self.send_header("ETag", file.etag)
        if owner.ranges_supported:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if not body:
            return
        stop = end if fault.cut_after is None else min(end, start + fault.cut_after)
        position = start
        step = 1 if fault.trickle is not None else owner.CHUNK
        try:
            while position < stop:
                if fault.trickle is not None:
                    self.wfile.flush()
                    time.sleep(fault.trickle)
                chunk = file.read(position, min(stop, position + step))
                self.wfile.write(chunk)
                position += len(chunk)
                if owner.throttle:
                    self.wfile.flush()
                    time.sleep(owner.throttle)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        if fault.cut_after is not None:
            self.close_connection = True  # drop the connection mid-body

    def _endless(self, file: _File) -> None:
        """200 without a length: the body ends when the connection does (never, here)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        data = file.read(0, self.server.owner.CHUNK) or b"x"
        try:
            while True:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            return

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
