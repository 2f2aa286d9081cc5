"""Sigma correlations and filters, set aside from the pattern database and resolved against the
rules loaded beside them: a `name` becomes the id it stands for, a filter becomes exceptions.

References cross files (a correlation file over the collection's rules), so they are resolved here,
once every rule is known, not by the per-file loader. A reference to no loaded rule is an error:
the correlation or filter is skipped (a correlation over it too)."""

from __future__ import annotations

import msgspec

from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.model.correlation import Correlation, Filter
from shellsieve.model.exceptions import EXPR_OPS, RuleException
from shellsieve.model.expr import Not, predicates
from shellsieve.model.rule import Rule

__all__ = ["split_meta", "resolve_meta"]


def split_meta(rules: list[Rule]) -> tuple[list[Rule], list[Rule]]:
    """(rules run on events, correlations and filters)."""
    plain = [r for r in rules if not r.is_meta]
    return plain, [r for r in rules if r.is_meta] if len(plain) != len(rules) else []


def _diag(rule: Rule, construct: str, message: str, code: Code = Code.UNKNOWN_REFERENCE) -> Diagnostic:
    return Diagnostic(code, "error", rule.location, rule.id, construct, message, rule.group)


def _missing(rule: Rule, ref: str) -> Diagnostic:
    return _diag(rule, ref, f"references rule {ref!r}, "
                            "which is not loaded or was skipped (no running rule has this id or name)")


def _correlations(meta: list[Rule], index: dict[str, str], plain_ids: set[str]
                  ) -> tuple[list[Rule], list[Diagnostic]]:
    """Correlations with their references as ids, in an order where each comes after those it reads
    (a chain); those that cannot run are dropped with a diagnostic."""
    pending: dict[str, Rule] = {}
    diags: list[Diagnostic] = []
    for rule in meta:
        corr = rule.query
        if not isinstance(corr, Correlation):
            continue
        refs = [*corr.rules, *(r for _, m in corr.aliases for r, _ in m)]
        missing = [r for r in refs if r not in index]
        if missing:
            diags.extend(_missing(rule, r) for r in dict.fromkeys(missing))
            continue
        resolved = msgspec.structs.replace(
            corr, rules=tuple(index[r] for r in corr.rules),
            aliases=tuple((a, tuple((index[r], f) for r, f in m)) for a, m in corr.aliases))
        pending[rule.id] = msgspec.structs.replace(rule, query=resolved)
    ordered: list[Rule] = []
    done: set[str] = set()
    while pending:  # a chain in order; what waits on a dropped or cyclic correlation is dropped
        ready = [r for r in pending.values()
                 if all(x in plain_ids or x in done for x in r.query.rules)]  # type: ignore[union-attr]
        if not ready:
            for r in pending.values():
                waits = [x for x in r.query.rules if x not in plain_ids and x not in done]  # type: ignore[union-attr]
                diags.append(_diag(r, waits[0], f"references {waits[0]!r}, a correlation that cannot run "
                                                "(skipped, or a cycle of correlations)"))
            break
        for r in ready:
            ordered.append(r)
            done.add(r.id)
            del pending[r.id]
    return ordered, diags


def _applies(rule: Rule, logsource: tuple[str, ...]) -> bool:
    parts = set(rule.group.split("/")) | {rule.category}
    return rule.ruleset == "sigma" and all(v in parts for v in logsource)


def _filters(meta: list[Rule], plain: list[Rule], index: dict[str, str]
             ) -> tuple[list[tuple[Rule, RuleException]], list[Diagnostic]]:
    out: list[tuple[Rule, RuleException]] = []
    diags: list[Diagnostic] = []
    plain_ids = {r.id for r in plain}
    for rule in meta:
        filt = rule.query
        if not isinstance(filt, Filter):
            continue
        bad = next((p for p in predicates(filt.condition) if p.op not in EXPR_OPS), None)
        if bad is not None:
            diags.append(_diag(rule, bad.op.value, f"a filter condition cannot use {bad.op.value}",
                               Code.UNSUPPORTED_CONSTRUCT))
            continue
        if filt.rules is None:
            ids = tuple(r.id for r in plain if _applies(r, filt.logsource))
        else:
            missing = [r for r in filt.rules if index.get(r) not in plain_ids]
            if missing:
                diags.extend(_missing(rule, r) for r in missing)
                continue
            ids = tuple(dict.fromkeys(index[r] for r in filt.rules))
        out.append((rule, RuleException(rules=ids, conditions=(), comment=f"Sigma filter: {rule.name}",
                                        location=rule.location, expr=Not(filt.condition))))
    return out, diags


def resolve_meta(meta: list[Rule], plain: list[Rule]
                 ) -> tuple[list[Rule], list[tuple[Rule, RuleException]], list[Diagnostic]]:
    """(correlations over resolved ids, in chain order; the filters that apply, each with its
    exception; diagnostics)."""
    if not meta:
        return [], [], []
    index: dict[str, str] = {}
    for r in (*plain, *meta):
        index.setdefault(r.id, r.id)
    for r in (*plain, *meta):
        if r.ref_name:
            index.setdefault(r.ref_name, r.id)
    correlations, cdiags = _correlations(meta, index, {r.id for r in plain})
    filters, fdiags = _filters(meta, plain, index)
    return correlations, filters, cdiags + fdiags
