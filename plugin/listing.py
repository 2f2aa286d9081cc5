"""`shellsieve rules`: the rules a selection keeps, as a table or JSON lines, without compiling."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from shellsieve.model.rule import Rule

__all__ = ["rule_rows", "render_table", "render_json_lines"]

_COLUMNS = ("id", "name", "format", "severity", "status", "location")


def rule_rows(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """One row per rule, sorted by format then id, so the listing is stable across runs."""
    rows = [{"id": r.id, "name": r.name, "format": r.ruleset, "severity": r.severity,
             "status": r.status, "location": f"{r.location.path}:{r.location.line}"} for r in rules]
    return sorted(rows, key=lambda row: (row["format"], row["id"]))


def render_json_lines(rows: list[dict[str, Any]]) -> str:
    """One JSON object per line (keys as the table's columns): appendable and greppable."""
    return "".join(msgspec.json.encode(row).decode() + "\n" for row in rows)


def render_table(rows: list[dict[str, Any]]) -> str:
    """Columns padded to their widest cell; the location column last so long paths do not shift others."""
    cells = [list(_COLUMNS)] + [[str(row[c]) for c in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(_COLUMNS) - 1)]
    return "".join(" ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " " + line[-1] + "\n"
                   for line in cells)
