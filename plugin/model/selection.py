"""Which loaded rules run: a minimum severity, rule ids to include only, rule ids to leave out,
tags (a rule runs if it has any of them) and statuses (Sigma status, Elastic maturity; by default
every status but `deprecated` and `unsupported`, which run only when asked for by name).

Selection happens before compiling, so a rule left out costs nothing at run time (its patterns are
not in the database). An id given to --include-rule or --exclude-rule that names no loaded rule, or
a --tag no loaded rule carries, is an error (SS401; `run` and `serve` refuse to start, exit 2): a
typo must not silently leave a rule running or off.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.model.rule import Rule

__all__ = ["Selection", "SEVERITIES", "STATUSES", "OFF_BY_DEFAULT", "select"]

SEVERITIES = ("low", "medium", "high", "critical")
# Sigma's statuses, then Elastic's `maturity` values
STATUSES = ("stable", "test", "experimental", "deprecated", "unsupported", "production", "development")
OFF_BY_DEFAULT = ("deprecated", "unsupported")  # statuses that run only when --status names them


class Selection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_severity: str = "low"  # rules below it are left out
    include: tuple[str, ...] = ()  # when given, only these rule ids run
    exclude: tuple[str, ...] = ()  # these rule ids never run
    tags: tuple[str, ...] = ()  # when given, only rules with one of these tags (case-insensitive)
    statuses: tuple[str, ...] = ()  # when given, only rules of these statuses; else all but OFF_BY_DEFAULT

    def __post_init__(self) -> None:
        if self.min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, got {self.min_severity!r}")
        for status in self.statuses:
            if status not in STATUSES:
                raise ValueError(f"statuses must be among {', '.join(STATUSES)}, got {status!r}")

    def keeps(self, rule: Rule) -> bool:
        severity = rule.severity if rule.severity in SEVERITIES else "medium"
        if SEVERITIES.index(severity) < SEVERITIES.index(self.min_severity):
            return False
        if (self.include and rule.id not in self.include) or rule.id in self.exclude:
            return False
        if self.tags and not {t.lower() for t in self.tags} & set(rule.tags):
            return False
        return rule.status in self.statuses if self.statuses else rule.status not in OFF_BY_DEFAULT


def select(rules: Iterable[Rule], selection: Selection) -> tuple[list[Rule], list[Diagnostic]]:
    """The rules `selection` keeps, in load order, and an SS401 error per id that names no loaded
    rule and per tag that no loaded rule carries."""
    rules = list(rules)
    kept = [r for r in rules if selection.keeps(r)]
    known = {r.id for r in rules}
    diags = [Diagnostic(Code.UNKNOWN_RULE, "error", Location(option), rid, "",
                        f"{option} {rid}: no loaded rule has this id")
             for option, ids in (("--include-rule", selection.include), ("--exclude-rule", selection.exclude))
             for rid in ids if rid not in known]
    tags = {t for r in rules for t in r.tags}
    diags += [Diagnostic(Code.UNKNOWN_RULE, "error", Location("--tag"), "", "",
                         f"--tag {tag}: no loaded rule has this tag")
              for tag in selection.tags if tag.lower() not in tags]
    return kept, diags
