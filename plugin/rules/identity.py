"""One rule per id: of two loaded copies of a rule id, the newer one runs, and a diagnostic says why.

A rule is identified by its id across formats and files (Elastic `rule_id`, Sigma `id`, Wazuh `id`).
Copies of one id come from loading a collection beside an older copy of some of its rules (the
shipped seed rules beside SigmaHQ or detection-rules) or two checkouts of one collection. Which copy
is newer: Elastic `version` when both copies carry one; then the date of the last change (Elastic
`updated_date`, Sigma `modified`, else the creation date: `creation_date`, `date`); then the
creation date; a copy that gives a date is newer than one that gives none; all equal: the copy
loaded later. Two rules with one id in the SAME file stay an error: one file is one version of a
collection, so neither is the newer one; one of them is a mistake.

A rule may also carry a new id: Sigma `related` type `obsolete` (this rule obsoletes that id) or
`renamed` (this rule had that id). Loaded beside the rule it names, only the newer one runs.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.model.rule import Revision, Rule

__all__ = ["RuleIds", "newer"]

# Sigma `related` types that make the named rule the same rule under an older id (`merged`,
# `derived` and `similar` rules may run beside the one they name).
SUPERSEDES = ("obsolete", "renamed")


def _changed(r: Revision) -> datetime.date | None:
    return r.modified or r.created


def _day(d: datetime.date | None) -> str:
    return d.isoformat() if d is not None else "no date"


def newer(old: Rule, new: Rule) -> tuple[bool | None, str]:
    """Whether `new` (loaded after `old`) is the newer version of the id, and by what; None: the
    copies do not say (same version and dates), so load order decides."""
    a, b = old.revision, new.revision
    if a.version is not None and b.version is not None and a.version != b.version:
        return b.version > a.version, f"version {max(a.version, b.version)}, this copy {min(a.version, b.version)}"
    for what, x, y in (("last changed", _changed(a), _changed(b)), ("created", a.created, b.created)):
        if x != y:
            # a copy that says when it changed is the newer of the two: a copy without a date
            # is one somebody made by hand (the shipped seeds carry none they did not get)
            later = y is not None and (x is None or y > x)
            return later, f"{what} {_day(y if later else x)}, this copy {_day(x if later else y)}"
    return None, "same version and dates"


def _bare(value: Any) -> Any:
    """A query as plain data without source locations: two copies of one query compare equal."""
    if isinstance(value, dict):
        return {k: _bare(v) for k, v in value.items() if k != "location"}
    if isinstance(value, list):
        return [_bare(v) for v in value]
    return value


class RuleIds:
    """The rules loaded so far, one per id, in load order (a replacing copy takes the older one's place)."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._at: dict[str, int] = {}
        self._in_file: set[tuple[str, str]] = set()

    def add(self, rule: Rule) -> Diagnostic | None:
        """Admit `rule`; a Diagnostic when its id was loaded before (which copy runs, and why)."""
        here = (rule.location.path, rule.id)
        if here in self._in_file:
            return Diagnostic(Code.DUPLICATE_ID, "error", rule.location, rule.id, "",
                              "rule id used twice in one file: this copy is skipped", rule.group)
        self._in_file.add(here)
        at = self._at.get(rule.id)
        if at is None:
            self._at[rule.id] = len(self.rules)
            self.rules.append(rule)
            return None
        old = self.rules[at]
        replaces, why = newer(old, rule)
        severity, how = "info", "the newer copy"
        if replaces is None:
            replaces, how = True, "loaded later"
            if _bare(msgspec.to_builtins(old.query)) == _bare(msgspec.to_builtins(rule.query)):
                why += ", same query"
            else:  # two different queries that do not say which is newer: the order of --rules decides
                why += ", the queries differ"
                severity = "warning"
        winner, loser = (rule, old) if replaces else (old, rule)
        if replaces:
            self.rules[at] = rule
        return Diagnostic(Code.REPLACED, severity, loser.location, rule.id, "",
                          f"replaced by {winner.location}, {how} ({why})", loser.group)

    def superseded(self) -> list[Diagnostic]:
        """Drop the rules another loaded rule obsoletes or was renamed from; a Diagnostic for each."""
        by: dict[str, tuple[Rule, str]] = {}  # old id -> the rule naming it, and how
        for r in self.rules:
            for rel in r.revision.related:
                if rel.type in SUPERSEDES and rel.id in self._at and rel.id != r.id:
                    by.setdefault(rel.id, (r, rel.type))
        diags: list[Diagnostic] = []
        for rid, (first, how) in by.items():
            last, seen = first, {rid}
            while last.id in by and last.id not in seen:  # a chain (C renamed to B, B obsoleted by A): A runs
                seen.add(last.id)
                last = by[last.id][0]
            if last.id in by:  # a cycle names no newest rule: all of them run
                continue
            old = self.rules[self._at[rid]]
            diags.append(Diagnostic(Code.REPLACED, "info", old.location, rid, "",
                                    f"replaced by rule {last.id} at {last.location}: rule {first.id} names this id "
                                    f"as `related` type {how}", old.group))
        gone = {d.rule_id for d in diags}
        self.rules = [r for r in self.rules if r.id not in gone]
        self._at = {r.id: i for i, r in enumerate(self.rules)}
        return diags
