"""Coverage of a rule load: rules loaded and skipped per format and group, for `check`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import msgspec

from shellsieve.diagnostics import Diagnostic
from shellsieve.model.rule import Rule

__all__ = ["Row", "coverage", "render_coverage"]

_FORMATS = {".toml": "elastic", ".yml": "sigma", ".yaml": "sigma", ".xml": "wazuh"}


class Row(msgspec.Struct, frozen=True):
    format: str
    group: str
    loaded: int
    skipped: int  # errors: constructs, parse errors, duplicate ids, regexes
    unsupported: int  # rule types shellsieve does not run (new_terms, esql ...)

    @property
    def runnable(self) -> int:
        return self.loaded + self.skipped

    @property
    def percent(self) -> float:
        """Loaded share of the rules whose type shellsieve runs; unsupported types are apart."""
        return 100.0 * self.loaded / self.runnable if self.runnable else 0.0


def _format(path: str) -> str:
    return next((f for suffix, f in _FORMATS.items() if path.lower().endswith(suffix)), "other")


def coverage(loaded: Iterable[Rule], diags: Iterable[Diagnostic]) -> list[Row]:
    """One row per (format, group). A rule counts once: a rule with several errors is one skip."""
    ok = Counter((r.ruleset, r.group) for r in loaded)
    skipped: dict[tuple[str, str], set[tuple[str, str | None, int]]] = {}
    unsupported: dict[tuple[str, str], set[tuple[str, str | None, int]]] = {}
    for d in diags:
        if d.severity not in ("error", "unsupported"):
            continue
        # a rule without an id (a file that does not parse) is known by its place in the file
        who = (d.location.path, d.rule_id, 0 if d.rule_id else d.location.line)
        bucket = unsupported if d.severity == "unsupported" else skipped
        bucket.setdefault((_format(d.location.path), d.group), set()).add(who)
    keys = sorted(set(ok) | set(skipped) | set(unsupported))
    return [Row(f, g, ok[(f, g)], len(skipped.get((f, g), ())), len(unsupported.get((f, g), ()))) for f, g in keys]


def render_coverage(rows: list[Row]) -> str:
    head = f"  {'format':<8} {'group':<28} {'loaded':>7} {'skipped':>8} {'coverage':>9} {'unsupported type':>17}"
    lines = ["coverage (loaded / (loaded + skipped); unsupported rule types counted apart):", head]
    for r in rows:
        pct = f"{r.percent:.1f}%" if r.runnable else "-"
        lines.append(f"  {r.format:<8} {r.group or '-':<28} {r.loaded:>7} {r.skipped:>8} {pct:>9} {r.unsupported:>17}")
    return "\n".join(lines) + "\n"
