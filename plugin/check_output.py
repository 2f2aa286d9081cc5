"""`shellsieve check`'s output: a summary a person reads, or JSON lines carrying the same for a program.

Both renderings come from one `CheckReport` and one `_Counts`, so neither can report what the other
leaves out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from shellsieve.compile.ruleset import Ruleset
from shellsieve.coverage import Row, coverage, render_coverage
from shellsieve.diagnostics import Code, Diagnostic, printable
from shellsieve.listing import render_json_lines, rule_rows
from shellsieve.model.correlation import Correlation, Filter
from shellsieve.model.exceptions import RuleException
from shellsieve.model.rule import Rule

__all__ = ["OUTPUT_FORMATS", "CheckReport", "ExceptionsReport", "output_format", "render_text", "render_json"]

OUTPUT_FORMATS = ("auto", "text", "json")


class ExceptionsReport(NamedTuple):
    """What `check --exceptions` found: the files named, the entries in force, the files' diagnostics."""

    paths: list[Path]
    entries: list[RuleException]
    diagnostics: list[Diagnostic]


class CheckReport(NamedTuple):
    ruleset: Ruleset
    diagnostics: list[Diagnostic]  # the rules', as loaded (not yet as under --strict)
    strict: bool
    quiet: bool
    exceptions: ExceptionsReport | None  # None: no --exceptions given


def output_format(choice: str, stderr: TextIO | None) -> str:
    """`auto` is text when stderr is a terminal (a person is watching), JSON lines when it is not (CI, a
    script): decided on stderr, as the progress bar is, so `check | less` still gets the text."""
    if choice != "auto":
        return choice
    try:
        return "text" if stderr is not None and stderr.isatty() else "json"
    except ValueError:  # a closed stderr
        return "json"


class _Counts(NamedTuple):
    loaded: Counter[str]  # rules loaded, per format
    rows: list[Row]  # coverage, per format and group
    reasons: Counter[tuple[str, str]]  # skipping errors per (code, title): a rule with two counts twice
    copies: int  # identical copies of a rule file, read once
    replaced: int  # rules replaced by another copy of their id
    warnings: int
    untrusted_rules: int  # rules with a warning --strict refuses
    untrusted: Counter[tuple[str, str]]  # those warnings per (code, title)


def _running(ruleset: Ruleset) -> list[Rule]:
    """The rules that run: those on events, then Sigma correlations and filters (on their hits)."""
    return [*(cr.rule for cr in ruleset.rules), *ruleset.meta_rules]


def _kind(rule: Rule) -> str:
    """What a rule is, in `check`'s listing: `correlation event_count`, `filter`, `sequence`, `rule`."""
    q = rule.query
    if isinstance(q, Correlation):
        return f"correlation {q.type}"
    return "filter" if isinstance(q, Filter) else "sequence" if rule.is_sequence else "rule"


def _counts(report: CheckReport) -> _Counts:
    diags, rules = report.diagnostics, _running(report.ruleset)
    flagged = [d for d in diags if d.severity == "warning" and d.code.strict]
    return _Counts(
        loaded=Counter(r.ruleset for r in rules),
        rows=coverage(rules, diags),
        reasons=Counter((d.code.code, d.code.title) for d in diags if d.severity == "error"),
        copies=sum(1 for d in diags if d.code is Code.DUPLICATE_ID and d.severity == "info"),
        replaced=sum(1 for d in diags if d.code is Code.REPLACED),
        warnings=sum(1 for d in diags if d.severity == "warning"),
        untrusted_rules=len({(d.location.path, d.rule_id) for d in flagged}),
        untrusted=Counter((d.code.code, d.code.title) for d in flagged))


def _shown(report: CheckReport) -> list[Diagnostic]:
    # under --strict, the warnings it refuses are shown as the errors they are; which copy of a rule
    # id runs is shown even with --quiet (it decides what runs; identical copies do not)
    shown = [d.under(report.strict) for d in report.diagnostics
             if d.severity != "info" or not report.quiet or d.code is Code.REPLACED]
    return sorted(shown, key=lambda d: (d.severity, d.location.path, d.location.line))


def _per_rule(entries: Iterable[RuleException]) -> tuple[dict[str, int], int]:
    """Entries in force per rule id, and those applying to every rule."""
    per_rule = Counter(rid for e in entries if e.rules for rid in e.rules)
    return dict(sorted(per_rule.items())), sum(1 for e in entries if not e.rules)


def _exception_totals(exc: ExceptionsReport) -> tuple[int, int]:
    """Expired entries and errors among the exceptions files' diagnostics."""
    return (sum(1 for d in exc.diagnostics if d.code is Code.EXC_EXPIRED),
            sum(1 for d in exc.diagnostics if d.severity == "error"))


def render_text(report: CheckReport) -> str:
    """The summary a person reads: rules by format, each diagnostic on one line, counts, coverage."""
    ruleset, c = report.ruleset, _counts(report)
    out: list[str] = []
    if not report.quiet:
        for fmt in sorted(c.loaded):
            out.append(f"{fmt}: {c.loaded[fmt]} rules\n")
            out += [f"  {printable(r.id)}  {printable(r.name)}{f'  [{_kind(r)}]' if r.is_meta else ''}\n"
                    for r in _running(ruleset) if r.ruleset == fmt]
    out += [d.render() + "\n" for d in _shown(report)]
    loaded = ", ".join(f"{k} {v}" for k, v in sorted(c.loaded.items()))
    out.append(f"loaded: {sum(c.loaded.values())} rules ({loaded})\n")
    out.append(f"skipped: {sum(r.skipped for r in c.rows)} rules\n")
    out += [f"  {code} {title}: {n}\n" for (code, title), n in c.reasons.most_common()]
    out.append(f"unsupported rule types: {sum(r.unsupported for r in c.rows)} rules\n")
    out.append(f"identical copies read once: {c.copies} files\n")
    out.append(f"replaced by another copy of their id: {c.replaced} rules\n")
    out.append(f"warnings: {c.warnings}\n")
    out.append(f"untrusted (errors under --strict): {c.untrusted_rules} rules\n")
    out += [f"  {code} {title}: {n}\n" for (code, title), n in c.untrusted.most_common()]
    # coverage groups come from rule files too (a Sigma logsource): escaped line by line
    out.append("\n".join(map(printable, render_coverage(c.rows).split("\n"))))
    out.append(f"database: {ruleset.pattern_count} patterns, {ruleset.database_bytes} bytes, "
               f"compiled in {ruleset.compile_seconds:.3f} s (cache: {ruleset.cache_status})\n")
    exc = report.exceptions
    if exc is not None:
        out += [d.under(report.strict).render() + "\n" for d in exc.diagnostics]
        expired, errors = _exception_totals(exc)
        out.append(f"exceptions: {len(exc.entries)} entries in force from {len(exc.paths)} files "
                   f"({expired} expired, {errors} errors)\n")
        per_rule, every = _per_rule(exc.entries)
        out += [f"  {printable(rid)}: {n}\n" for rid, n in per_rule.items()]
        if every:
            out.append(f"  all rules: {every}\n")
    return "".join(out)


def _diagnostic_line(kind: str, d: Diagnostic) -> dict[str, Any]:
    return {"type": kind, "code": d.code.code, "severity": d.severity, "location": str(d.location),
            "rule_id": d.rule_id, "message": d.message, "construct": d.construct}


def render_json(report: CheckReport) -> str:
    """JSON lines with all the text holds: `rule`, `diagnostic`, `coverage`, `exception_diagnostic`,
    `exceptions` lines, then one `summary` line, last (docs/rules.md#check-json-lines)."""
    ruleset, c = report.ruleset, _counts(report)
    lines: list[dict[str, Any]] = []
    if not report.quiet:
        kinds = {r.id: _kind(r) for r in ruleset.meta_rules}
        lines += [{"type": "rule", **row, **({"kind": kinds[row["id"]]} if row["id"] in kinds else {})}
                  for row in rule_rows(_running(ruleset))]
    lines += [_diagnostic_line("diagnostic", d) for d in _shown(report)]
    lines += [{"type": "coverage", "format": r.format, "group": r.group, "loaded": r.loaded, "skipped": r.skipped,
               "coverage_pct": round(r.percent, 1) if r.runnable else None, "unsupported": r.unsupported}
              for r in c.rows]
    exc = report.exceptions
    if exc is not None:
        lines += [_diagnostic_line("exception_diagnostic", d.under(report.strict)) for d in exc.diagnostics]
        expired, errors = _exception_totals(exc)
        per_rule, every = _per_rule(exc.entries)
        lines.append({"type": "exceptions", "entries": len(exc.entries), "files": len(exc.paths),
                      "expired": expired, "errors": errors, "per_rule": per_rule, "all_rules": every})
    by_code = {code: n for (code, _), n in c.reasons.most_common()}
    untrusted = {code: n for (code, _), n in c.untrusted.most_common()}
    lines.append({"type": "summary", "loaded": dict(sorted(c.loaded.items())),
                  "skipped": sum(r.skipped for r in c.rows), "skipped_by_code": by_code,
                  "unsupported": sum(r.unsupported for r in c.rows), "identical_copies": c.copies,
                  "replaced": c.replaced, "warnings": c.warnings,
                  "untrusted": c.untrusted_rules, "untrusted_by_code": untrusted,
                  "titles": {code: title for code, title in sorted(c.reasons | c.untrusted)},
                  "patterns": ruleset.pattern_count, "database_bytes": ruleset.database_bytes,
                  "compile_s": round(ruleset.compile_seconds, 3), "cache": ruleset.cache_status})
    return render_json_lines(lines)
