"""`shellsieve explain`: read the event, pick the rules, print the explanations."""

from __future__ import annotations

import sys
from pathlib import Path

from shellsieve.compile.ruleset import CompiledRule, Ruleset
from shellsieve.diagnostics import Diagnostic, printable
from shellsieve.explain.observe import ExplainError, observe
from shellsieve.explain.report import explain_rules, render_json, render_text
from shellsieve.settings import Settings

__all__ = ["ExplainError", "read_event", "choose", "explain"]


def read_event(source: str) -> tuple[bytes, str]:
    """The bytes of EVENT_FILE (`-`: stdin) and the name errors give it."""
    if source == "-":
        return sys.stdin.buffer.read(), "stdin"
    try:
        return Path(source).read_bytes(), source
    except OSError as exc:
        raise ExplainError(f"{source}: cannot read the event: {exc.strerror or exc}") from None


def choose(ruleset: Ruleset, diags: list[Diagnostic], ids: list[str]) -> list[CompiledRule] | None:
    """The rules `--rule` names (None: every rule whose anchors fire); an id no compiled rule has
    is an error naming it, with why it was skipped when a diagnostic says so."""
    if not ids:
        return None
    by_id: dict[str, list[CompiledRule]] = {}
    for cr in ruleset.rules:
        by_id.setdefault(cr.rule.id, []).append(cr)
    chosen: list[CompiledRule] = []
    for rid in ids:
        if rid not in by_id:
            why = next((d for d in diags if d.rule_id == rid and d.severity == "error"), None)
            reason = f" (skipped: {why.location}: {why.message})" if why else " among the loaded rules"
            raise ExplainError(f"--rule {printable(rid)}: no such rule{reason}")
        chosen += [cr for cr in by_id[rid] if cr not in chosen]
    return sorted(chosen, key=lambda cr: cr.index)


def explain(ruleset: Ruleset, settings: Settings, data: bytes, name: str,
            chosen: list[CompiledRule] | None, as_json: bool) -> str:
    """The explanation of the one event in `data` for `chosen` rules (None: those whose anchors fired)."""
    seen = observe(ruleset, settings, data, name)
    if chosen is None:
        chosen = [cr for cr in ruleset.rules if cr.index in seen.candidates or cr.index in ruleset.always]
    reports = explain_rules(ruleset, seen, chosen)
    return render_json(reports, seen) if as_json else render_text(reports, seen)
