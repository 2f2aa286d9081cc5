"""What a rule set must pass to run: the checks a start makes, and a reload makes again.

A start that fails them exits (2 for a bad option, 1 for rules that cannot run); a reload that
fails them keeps the rules already running. A reload also refuses a rule set with an error its
predecessor did not have (a file broken since, a pattern Hyperscan rejects, an unknown field):
dropping a rule that ran because its file was saved half-edited would be silent loss of detection.
Errors the running set already had (rules of the public collections that no engine can run, say)
do not hold a reload back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.model.exceptions import RuleException
from shellsieve.model.fields import known_fields
from shellsieve.run.suppress import unknown_fields
from shellsieve.settings import Settings

__all__ = ["Refusal", "Admitted", "admit", "exceptions_for", "bad_selection", "fatal", "new_errors", "new_diagnostics",
           "error_key"]


@dataclass(frozen=True)
class Refusal:
    status: int  # the exit status at start
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)  # logged with the reason
    diagnostics: tuple[Diagnostic, ...] = ()  # the errors that refused it


@dataclass(frozen=True)
class Admitted:
    exceptions: list[RuleException]
    exception_diagnostics: list[Diagnostic]  # warnings (expired entries) and infos, to log


def bad_selection(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Selection options naming no loaded rule (SS401): refused like any bad option."""
    return [d for d in diags if d.code is Code.UNKNOWN_RULE]


def fatal(diags: Iterable[Diagnostic], strict: bool) -> list[Diagnostic]:
    """What --strict refuses: errors, and warnings of the codes it makes errors (a rule matching
    every value, an anchor firing on most events, no anchor at all)."""
    return [d for d in diags if d.fatal(strict)]


def error_key(d: Diagnostic) -> tuple[str, str, str | None]:
    """An error's identity across loads: its code, file and rule id (not its line: editing a file
    moves the lines of the rules below the edit)."""
    return d.code.code, d.location.path, d.rule_id


def new_errors(diags: Iterable[Diagnostic], before: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Errors of `diags` that `before` did not have."""
    return [d for d in new_diagnostics(diags, before) if d.severity == "error"]


def new_diagnostics(diags: Iterable[Diagnostic], before: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics of `diags` (of any severity) that `before` did not have."""
    known = {(d.severity, *error_key(d)) for d in before}
    return [d for d in diags if (d.severity, *error_key(d)) not in known]


def exceptions_for(paths: list[Path] | None, ruleset: Ruleset) -> tuple[list[RuleException], list[Diagnostic]]:
    """The --exceptions entries in force now, checked against the running rules' ids and the fields
    the engine can read (model/fields.py known_fields plus every field a running rule reads)."""
    if not paths:
        return [], []
    # Imported here: it reads YAML, and PyYAML costs start-up time when no --exceptions is given.
    from shellsieve.rules.exceptions import load_exception_files
    return load_exception_files(paths, {cr.rule.id for cr in ruleset.rules}, known_fields(set(ruleset.accessors)))


def admit(ruleset: Ruleset, diags: list[Diagnostic], settings: Settings,
          exception_paths: list[Path] | None) -> Admitted | Refusal:
    """The exceptions to run with, or why this rule set must not run."""
    bad = bad_selection(diags)
    if bad:
        return Refusal(2, "bad rule selection", {"options": [d.message for d in bad]}, tuple(bad))
    unknown = unknown_fields(settings.suppress_by, ruleset.accessors)
    if unknown:
        return Refusal(2, "unknown field in --suppress-by", {"option": "--suppress-by",
                                                               "value": ",".join(settings.suppress_by),
                                                               "unknown": unknown})
    exceptions, ediags = exceptions_for(exception_paths, ruleset)
    bad_exceptions = [d for d in ediags if d.severity == "error"]
    if bad_exceptions:
        # a bad entry is a bad option, as a typo in --include-rule: refused whatever --strict says
        first = bad_exceptions[0]
        return Refusal(2, "bad exceptions file", {"option": "--exceptions", "path": first.location.path,
                                                  "line": first.location.line, "error": first.render(),
                                                  "errors": len(bad_exceptions)}, tuple(bad_exceptions))
    errors = fatal(diags, settings.strict)
    if not ruleset.rules:
        return Refusal(1, "no rules loaded", {"errors": len(errors)}, tuple(errors))
    if settings.strict and errors:
        return Refusal(1, "rule errors under --strict", {"errors": len(errors)}, tuple(errors))
    return Admitted(exceptions, ediags)
