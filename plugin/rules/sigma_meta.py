"""pySigma's correlation and filter objects -> model/correlation.py (rules/sigma.py calls these).

References stay as written here (ids or `name`s): a file is loaded alone (and cached alone), so
names are resolved to ids when every rule is known (compile/meta.py)."""

from __future__ import annotations

from typing import Any

from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
from sigma.filters import SigmaFilter

from shellsieve.errors import UnsupportedError
from shellsieve.model.correlation import COMPARISONS, TYPES, Correlation, Filter
from shellsieve.model.expr import Expr
from shellsieve.model.fields import sigma_field

__all__ = ["for_pysigma", "correlation", "sigma_filter"]


def _raw_condition(data: dict[str, Any]) -> dict[str, Any] | None:
    corr = data.get("correlation")
    cond = corr.get("condition") if isinstance(corr, dict) else None
    return cond if isinstance(cond, dict) else None


def for_pysigma(data: dict[str, Any]) -> dict[str, Any]:
    """The document as pySigma can parse it: it takes one comparison per condition, the
    specification a range (`gt: 100` and `lte: 200`); the others are read by `correlation`."""
    cond = _raw_condition(data)
    ops = [k for k in cond if k in COMPARISONS] if cond is not None else []
    if len(ops) < 2:
        return data
    assert cond is not None
    kept = {k: v for k, v in cond.items() if k not in ops[1:]}
    return {**data, "correlation": {**data["correlation"], "condition": kept}}


def _number(value: Any, op: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnsupportedError(f"condition/{op}", f"the condition {op} needs a number, not {value!r}")
    return float(value)


def _field(name: str) -> str:
    return sigma_field(name) or name


def correlation(rule: SigmaCorrelationRule, data: dict[str, Any]) -> Correlation:
    """The correlation pySigma parsed, with every comparison of its condition (`data`: the document)."""
    kind = rule.type.name.lower()
    if kind not in TYPES:
        raise UnsupportedError(kind, f"Sigma correlation type {kind} is not supported")
    cond = rule.condition
    if not isinstance(cond, SigmaCorrelationCondition):
        raise UnsupportedError("condition", "extended (boolean) correlation conditions are not supported")
    raw = _raw_condition(data) or {}
    pairs = [(op, _number(v, op)) for op, v in raw.items() if op in COMPARISONS]
    if not pairs:  # temporal without a condition: pySigma's default, every rule seen
        pairs = [(cond.op.name.lower(), float(cond.count))]
    fieldref = cond.fieldref
    if isinstance(fieldref, list):
        if len(fieldref) != 1:
            raise UnsupportedError("condition/field", "a condition over several fields is not supported")
        fieldref = fieldref[0]
    if fieldref is None and kind.startswith("value_"):
        raise UnsupportedError("condition/field", f"{kind} needs a condition `field`")
    percentile = cond.percentile
    if percentile is not None and not 0 <= percentile <= 100:
        raise UnsupportedError("condition/percentile", f"percentile {percentile} is not within 0..100")
    aliases = tuple((a.alias, tuple((ref.reference, _field(f)) for ref, f in a.mapping.items()))
                    for a in rule.aliases)
    alias_names = {a for a, _ in aliases}
    group_by = tuple(g if g in alias_names else _field(g) for g in rule.group_by or ())
    return Correlation(
        type=kind, rules=tuple(r.reference for r in rule.rules or ()), group_by=group_by,
        timespan=float(rule.timespan.seconds), condition=tuple(pairs), aliases=aliases,
        generate=bool(rule.generate), field=_field(fieldref) if fieldref else None, percentile=percentile)


def sigma_filter(f: SigmaFilter, condition: Expr) -> Filter:
    """The filter pySigma parsed; `condition`: its condition translated as a rule's is."""
    rules = f.filter.rules
    refs = None if isinstance(rules, str) else tuple(r.reference for r in rules)
    ls = f.logsource
    logsource = tuple(str(v).lower() for v in (ls.product, ls.category, ls.service) if v)
    return Filter(rules=refs or None, logsource=logsource, condition=condition)
