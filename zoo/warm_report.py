"""What ``slimzoo-warm`` reports: one :class:`Outcome` per model, the final table (with family
headings), the ``--json`` document and human-readable sizes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ._model_facts import by_family

__all__ = ["STATUS_WIDTH", "Outcome", "format_table", "human", "print_json", "render_table"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one model."""

    model: str
    status: str  # downloaded, cached, converted, imported, verified, missing, failed
    reason: str | None = None  # why a model is missing or failed
    size: int | None = None  # bytes of the release tarball (None = not known)
    sha256: str | None = None  # of the release tarball: the verified one, else the registry's
    seconds: float = 0.0
    path: str | None = None  # the cached safetensors file
    source: str | None = None  # URL (after ZOO_MIRROR) or imported file

    @property
    def ok(self) -> bool:
        return self.status not in ("missing", "failed")

    @property
    def label(self) -> str:
        """The status as the table shows it."""
        if self.ok:
            return self.status
        return f"{self.status.upper()}: {self.reason}" if self.reason else self.status.upper()


def with_family_headings(lines: list[str], names: list[str]) -> str:
    """A table (header, rule, one line per name in ``names``' order) with a heading line before
    each family's rows, when there are several families (~66 releases stay readable)."""
    groups = by_family(names)
    if len(groups) < 2:
        return "\n".join(lines)
    row = dict(zip(names, lines[2:]))
    out = lines[:2]
    for family, members in groups:
        out.append(f"{family} ({len(members)}):")
        out += [row[name] for name in members]
    return "\n".join(out)


STATUS_WIDTH = 100  # a longer reason is cut in the table (in full on its line and in --json)


def render_table(outcomes: Sequence[Outcome]) -> str:
    """The final table: model, size, sha256 (first 12 digits), status, seconds."""
    rows = [
        (o.model, human(o.size), (o.sha256 or "?")[:12], cut(o.label), f"{o.seconds:.1f}")
        for o in outcomes
    ]
    return format_table(("model", "size", "sha256", "status", "seconds"), rows)


def cut(text: str, width: int = STATUS_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    numeric = {"size", "seconds"}

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).rjust(w) if h in numeric else str(c).ljust(w)
            for c, w, h in zip(cells, widths, header)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def print_json(outcomes: Sequence[Outcome], cache_dir: Path, mode: str) -> None:
    document = {
        "cache_dir": str(cache_dir),
        "mode": mode,
        "ok": all(o.ok for o in outcomes),
        "results": [{**asdict(o), "seconds": round(o.seconds, 3)} for o in outcomes],
    }
    print(json.dumps(document, indent=2))


def human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
