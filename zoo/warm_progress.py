"""``slimzoo-warm``'s progress display: a tqdm bar per file being downloaded plus a total, log
records written above the bars, and the cancellation of downloads on Ctrl-C."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .warm_report import Outcome

__all__ = ["Bars", "Cancelled", "FileProgress", "log_through"]


class Cancelled(Exception):
    """Raised from the progress callback to stop a download when the user interrupts."""


class FileProgress:
    """The progress callback of one download: feeds its bar and the total."""

    def __init__(self, bars: Bars, name: str) -> None:
        self.bars, self.name = bars, name
        self.done = 0
        self.requested = False  # a request was answered: the bytes came from the network
        self.bar: Any = None
        self.line = 0

    def __call__(self, done: int, total: int | None) -> None:
        self.bars.update(self, done, total)


class Bars:
    """One tqdm bar per file being downloaded (on a worker's line) plus a total-bytes bar.

    All tqdm calls hold one lock. ``enabled=False`` (``--quiet``, or stderr not a terminal)
    draws nothing but still counts, and the callbacks still stop the downloads on Ctrl-C.
    """

    def __init__(
        self, models: int, sizes: dict[str, int | None], *, enabled: bool, workers: int
    ) -> None:
        self.enabled = enabled
        self.lock = threading.RLock()
        self.cancelled = threading.Event()
        self.expected = dict(sizes)  # bytes counted in the total, per model
        self.received: dict[str, int] = {}
        self.free_lines = list(range(workers, 0, -1))  # line 0 is the total's
        self.total: Any = None
        if enabled and sizes:
            from tqdm.auto import tqdm

            self.total = tqdm(
                total=sum(s for s in sizes.values() if s) or None, desc=f"total ({models})",
                unit="B", unit_scale=True, unit_divisor=1024, position=0, file=sys.stderr,
                dynamic_ncols=True,
            )  # fmt: skip

    @contextmanager
    def file(self, name: str) -> Iterator[FileProgress]:
        progress = FileProgress(self, name)
        try:
            yield progress
        finally:
            with self.lock:
                if progress.bar is not None:
                    progress.bar.close()
                    self.free_lines.append(progress.line)

    def update(self, progress: FileProgress, done: int, total: int | None) -> None:
        if self.cancelled.is_set():
            raise Cancelled  # stops the download at this chunk; the next run resumes it
        with self.lock:
            progress.requested = True
            name = progress.name
            if total and self.expected.get(name) != total:
                self._count_in_total(name, total)
            delta, progress.done = done - progress.done, done  # < 0 when a download restarts
            self.received[name] = done
            if self.total is not None:
                self.total.update(delta)
            if not self.enabled:
                return
            if progress.bar is None:
                from tqdm.auto import tqdm

                progress.line = self.free_lines.pop() if self.free_lines else 1
                progress.bar = tqdm(
                    total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                    position=progress.line, leave=False, file=sys.stderr, dynamic_ncols=True,
                )  # fmt: skip
            elif total is not None and progress.bar.total != total:
                progress.bar.total = total
            progress.bar.update(delta)
            if total and done >= total:
                progress.bar.set_postfix_str("converting")

    def _count_in_total(self, name: str, total: int) -> None:
        previous = self.expected.get(name) or 0
        self.expected[name] = total
        if self.total is not None:
            self.total.total = (self.total.total or 0) + total - previous
            self.total.refresh()

    def finished(self, outcome: Outcome) -> None:
        """Take bytes that will never come (a failed or concurrent download) off the total."""
        with self.lock:
            missing = (self.expected.get(outcome.model) or 0) - self.received.get(outcome.model, 0)
            if self.total is not None and missing > 0 and self.total.total:
                self.total.total -= missing
                self.total.refresh()

    def write(self, line: str) -> None:
        with self.lock:
            if self.enabled:
                from tqdm.auto import tqdm

                tqdm.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr, flush=True)

    def cancel(self) -> None:
        self.cancelled.set()

    def close(self) -> None:
        with self.lock:
            if self.total is not None:
                self.total.close()
                self.total = None


class BarsLogHandler(logging.Handler):
    """Log records written above the bars instead of through them."""

    def __init__(self, bars: Bars, prog: str) -> None:
        super().__init__()
        self.bars = bars
        self.setFormatter(logging.Formatter(f"{prog}: %(levelname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.bars.write(self.format(record))
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


@contextmanager
def log_through(bars: Bars, level: int, prog: str) -> Iterator[None]:
    """zoo's log records (e.g. 'waiting for another process') above the bars while they run,
    each prefixed with ``prog``."""
    logger = logging.getLogger("zoo")
    handler = BarsLogHandler(bars, prog)
    handler.setLevel(level)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(min(level, old_level) if old_level else level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
