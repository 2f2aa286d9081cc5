"""Which loaded rules run: a minimum severity, rule ids to include only, rule ids to leave out.

Selection happens before compiling, so a rule left out costs nothing at run time (its patterns are
not in the database). An id given to --include-rule or --exclude-rule that names no loaded rule is
reported (SS401, an error under --strict): a typo must not silently leave a rule running or off.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.model.rule import Rule

__all__ = ["Selection", "SEVERITIES", "select"]

SEVERITIES = ("low", "medium", "high", "critical")


class Selection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_severity: str = "low"  # rules below it are left out
    include: tuple[str, ...] = ()  # when given, only these rule ids run
    exclude: tuple[str, ...] = ()  # these rule ids never run

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, got {self.min_severity!r}")

    @property
    def everything(self) -> bool:
        return self == Selection()


def select(rules: Iterable[Rule], selection: Selection) -> tuple[list[Rule], list[Diagnostic]]:
    """The rules `selection` keeps, in load order, and an SS401 warning per id that names none."""
    rules = list(rules)
    if selection.everything:
        return rules, []
    floor = SEVERITIES.index(selection.min_severity)
    include, exclude = set(selection.include), set(selection.exclude)
    kept = [r for r in rules
            if SEVERITIES.index(r.severity if r.severity in SEVERITIES else "medium") >= floor
            and (not include or r.id in include) and r.id not in exclude]
    known = {r.id for r in rules}
    diags = [Diagnostic(Code.UNKNOWN_RULE, "warning", Location(option), rid, "",
                        f"{option}: no loaded rule has this id")
             for option, ids in (("--include-rule", selection.include), ("--exclude-rule", selection.exclude))
             for rid in ids if rid not in known]
    return kept, diags
