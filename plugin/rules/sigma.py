"""Sigma YAML -> model, parsed by pySigma (modifiers applied by it, condition tree resolved by it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import Expr, Not, Op, Predicate, all_of, any_of
from shellsieve.model.fields import sigma_field
from shellsieve.model.rule import Rule, Threat
from shellsieve.rules.severity import label_risk

__all__ = ["load_sigma", "TACTICS"]

TACTICS = {
    "reconnaissance": ("TA0043", "Reconnaissance"), "resource_development": ("TA0042", "Resource Development"),
    "initial_access": ("TA0001", "Initial Access"), "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"), "privilege_escalation": ("TA0004", "Privilege Escalation"),
    "defense_evasion": ("TA0005", "Defense Evasion"), "credential_access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"), "lateral_movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"), "command_and_control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"), "impact": ("TA0040", "Impact"),
}
# Sigma levels -> severity label (Sigma's "informational" is below Elastic's lowest).
_LEVELS = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
_CMP = {"LT": Op.LT, "LTE": Op.LE, "GT": Op.GT, "GTE": Op.GE}


def _string(field: str, s: SigmaString) -> Predicate:
    """A SigmaString (wildcards already placed by pySigma's modifiers) -> the narrowest operator."""
    parts = s.s
    case_sensitive = isinstance(s, SigmaCasedString)
    if any(not isinstance(p, (str, SpecialChars)) for p in parts):
        raise UnsupportedError(str(s), "placeholders in values are not supported")
    inner = parts[1:-1] if len(parts) >= 2 else []
    multi = SpecialChars.WILDCARD_MULTI
    if all(isinstance(p, str) for p in parts):
        return Predicate(field, Op.EQ, ("".join(parts),), case_sensitive)  # type: ignore[arg-type]
    lead, trail = parts[0] is multi, parts[-1] is multi
    if len(parts) == 3 and lead and trail and isinstance(parts[1], str):
        return Predicate(field, Op.CONTAINS, (parts[1],), case_sensitive)
    if len(parts) == 2 and trail and isinstance(parts[0], str):
        return Predicate(field, Op.STARTSWITH, (parts[0],), case_sensitive)
    if len(parts) == 2 and lead and isinstance(parts[1], str):
        return Predicate(field, Op.ENDSWITH, (parts[1],), case_sensitive)
    del inner
    out: list[str] = []
    for p in parts:
        if p is multi:
            out.append("*")
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append("?")
        else:
            # Model WILDCARD values escape their own specials with a backslash.
            out.append("".join("\\" + c if c in "*?\\" else c for c in str(p)))
    return Predicate(field, Op.WILDCARD, ("".join(out),), case_sensitive)


def _regex(field: str, r: SigmaRegularExpression) -> Predicate:
    flags = getattr(r, "flags", set()) or set()
    prefix = ("(?m)" if SigmaRegularExpressionFlag.MULTILINE in flags else "") + (
        "(?s)" if SigmaRegularExpressionFlag.DOTALL in flags else "")
    # pySigma keeps the pattern as a SigmaString (for placeholders); its `original` is the text as written.
    text = getattr(r.regexp, "original", None) or str(r.regexp)
    return Predicate(field, Op.REGEX, (prefix + text,), SigmaRegularExpressionFlag.IGNORECASE not in flags)


def _value(field: str, value: Any) -> Expr:
    if isinstance(value, SigmaExpansion):
        return any_of([_value(field, v) for v in value.values])
    if isinstance(value, SigmaString):
        return _string(field, value)
    if isinstance(value, SigmaRegularExpression):
        return _regex(field, value)
    if isinstance(value, SigmaCIDRExpression):
        return Predicate(field, Op.CIDR, (str(value.network),))
    if isinstance(value, SigmaExists):
        pred = Predicate(field, Op.EXISTS)
        return pred if value.exists else Not(pred)
    if isinstance(value, SigmaNull):
        return Not(Predicate(field, Op.EXISTS))
    if isinstance(value, SigmaBool):
        return Predicate(field, Op.EQ, (value.boolean,), True)
    if isinstance(value, SigmaNumber):
        return Predicate(field, Op.EQ, (value.number,), True)
    if isinstance(value, SigmaCompareExpression):
        op = value.op.name
        if op == "NEQ":
            return Not(Predicate(field, Op.EQ, (value.number.number,), True))
        return Predicate(field, _CMP[op], (value.number.number,))
    if isinstance(value, SigmaFieldReference):
        return Predicate(field, Op.FIELDREF, (_field(value.field),))
    raise UnsupportedError(type(value).__name__, f"Sigma value type {type(value).__name__} is not supported")


def _field(name: str | None) -> str:
    if not name:
        raise UnsupportedError("keywords", "keyword (field-less) detections are not supported")
    return sigma_field(name) or name


def _condition(node: Any) -> Expr:
    if isinstance(node, ConditionAND):
        return all_of([_condition(a) for a in node.args])
    if isinstance(node, ConditionOR):
        return any_of([_condition(a) for a in node.args])
    if isinstance(node, ConditionNOT):
        return Not(_condition(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _value(_field(node.field), node.value)
    if isinstance(node, ConditionValueExpression):
        raise UnsupportedError("keywords", "keyword (field-less) detections are not supported")
    raise UnsupportedError(type(node).__name__, f"Sigma condition {type(node).__name__} is not supported")


def _threats(rule: SigmaRule) -> tuple[Threat, ...]:
    out: list[Threat] = []
    for tag in rule.tags:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower()
        if name.startswith("t") and name[1:2].isdigit():
            out.append(Threat(technique_id=name.upper()))
        elif name in TACTICS:
            out.append(Threat(tactic_id=TACTICS[name][0], tactic_name=TACTICS[name][1]))
    return tuple(out)


def _doc_lines(text: str) -> list[int]:
    """1-based start line of each YAML document (rules in a file follow document order)."""
    try:
        return [n.start_mark.line + 1 for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
    except yaml.YAMLError:
        return []


def _translate(rule: SigmaRule, loc: Location) -> Rule:
    conds = rule.detection.parsed_condition
    if len(conds) != 1:
        raise UnsupportedError("condition", "a rule with several conditions is not supported")
    query = _condition(conds[0].parsed)
    level = rule.level.name.lower() if rule.level is not None else "medium"
    severity, risk = label_risk(_LEVELS.get(level, "medium"))
    return Rule(
        id=str(rule.id or rule.title), name=rule.title, ruleset="sigma", query=query, location=loc,
        severity=severity, risk_score=risk, level=level, threats=_threats(rule),
        references=tuple(rule.references or ()), description=(rule.description or "").strip(),
        language="sigma",
    )


def load_sigma(path: Path) -> tuple[list[Rule], list[Diagnostic]]:
    """Every rule of one Sigma YAML file; one bad rule is a Diagnostic, never an exception."""
    rules: list[Rule] = []
    diags: list[Diagnostic] = []
    try:
        text = path.read_text(encoding="utf-8")
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except (SigmaError, yaml.YAMLError, UnicodeDecodeError, OSError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        return [], [Diagnostic(Code.PARSE, "error", Location(str(path), line), None, "", str(exc))]
    lines = _doc_lines(text)
    for i, rule in enumerate(collection.rules):
        loc = Location(str(path), lines[i] if i < len(lines) else 1)
        rid = str(rule.id) if rule.id else None
        if rule.errors:
            err = rule.errors[0]
            diags.append(Diagnostic(Code.PARSE, "error", loc, rid, type(err).__name__, str(err)))
            continue
        try:
            rules.append(_translate(rule, loc))
        except UnsupportedError as exc:
            diags.append(Diagnostic(Code.UNSUPPORTED_CONSTRUCT, "error", loc, rid, exc.construct, exc.message))
        except SigmaError as exc:
            diags.append(Diagnostic(Code.PARSE, "error", loc, rid, type(exc).__name__, str(exc)))
    return rules, diags
