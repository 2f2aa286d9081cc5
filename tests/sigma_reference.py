"""A deliberately plain Sigma evaluator: pySigma's parsed rule, Python `re`, one event as a flat dict
keyed by Sigma field names. Written for clarity, not speed, and apart from shellsieve's compiled
path (it imports nothing of shellsieve), so the two can be compared.

Semantics (Sigma specification): strings ignore case unless `|cased`; `*` is any run and `?` one
character; a field holding a list matches when any element does; a missing field matches nothing
but `null`. Keywords (values without a field) are shellsieve's documented reading: a substring of
the event's `message` or of its command line (`CommandLine`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
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

__all__ = ["matches", "KEYWORD_FIELDS"]

KEYWORD_FIELDS = ("message", "CommandLine")
_RE_FLAGS = {SigmaRegularExpressionFlag.IGNORECASE: re.I, SigmaRegularExpressionFlag.MULTILINE: re.M,
             SigmaRegularExpressionFlag.DOTALL: re.S}


def matches(rule: SigmaRule, event: dict[str, Any]) -> bool:
    """Any of the rule's conditions holds for the event."""
    return any(_holds(c.parse(), event) for c in rule.detection.parsed_condition)


def _holds(node: Any, event: dict[str, Any]) -> bool:
    if isinstance(node, ConditionAND):
        return all(_holds(a, event) for a in node.args)
    if isinstance(node, ConditionOR):
        return any(_holds(a, event) for a in node.args)
    if isinstance(node, ConditionNOT):
        return not _holds(node.args[0], event)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field_matches(event, node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return any(_keyword(event.get(f), node.value) for f in KEYWORD_FIELDS)
    raise TypeError(f"condition node {type(node).__name__}")


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _field_matches(event: dict[str, Any], field: str, value: Any) -> bool:
    if isinstance(value, SigmaExpansion):
        return any(_field_matches(event, field, v) for v in value.values)
    if isinstance(value, SigmaNull):
        return event.get(field) is None
    if isinstance(value, SigmaExists):
        return (event.get(field) is not None) == value.exists
    if field not in event or event[field] is None:
        return False
    if isinstance(value, SigmaFieldReference):
        other = event.get(value.field)
        return other is not None and any(v in _values(other) for v in _values(event[field]))
    return any(_one(v, value) for v in _values(event[field]))


def _one(actual: Any, value: Any) -> bool:
    if isinstance(value, SigmaString):
        return isinstance(actual, str) and _string_regex(value).fullmatch(actual) is not None
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for f in value.flags:
            flags |= _RE_FLAGS[f]
        return isinstance(actual, str) and re.search(value.regexp.to_plain(), actual, flags) is not None
    if isinstance(value, SigmaCIDRExpression):
        try:
            return ipaddress.ip_address(str(actual)) in ipaddress.ip_network(str(value.network), strict=False)
        except ValueError:
            return False
    if isinstance(value, SigmaBool):
        return actual is value.boolean
    if isinstance(value, SigmaCompareExpression):
        number = _number(actual)
        limit = value.number.number
        ops = {CompareOperators.LT: number is not None and number < limit,
               CompareOperators.LTE: number is not None and number <= limit,
               CompareOperators.GT: number is not None and number > limit,
               CompareOperators.GTE: number is not None and number >= limit}
        return ops[value.op]
    if isinstance(value, SigmaNumber):
        return _number(actual) == value.number and not isinstance(actual, bool)
    raise TypeError(f"Sigma value {type(value).__name__}")


def _number(actual: Any) -> float | None:
    if isinstance(actual, bool):
        return None
    if isinstance(actual, (int, float)):
        return actual
    try:
        return float(actual)
    except (TypeError, ValueError):
        return None


def _string_regex(value: SigmaString) -> re.Pattern[str]:
    parts = []
    for p in value.iter_parts():
        if p is SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif p is SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        else:
            parts.append(re.escape(str(p)))
    flags = re.S if isinstance(value, SigmaCasedString) else re.S | re.I
    return re.compile("".join(parts), flags)


def _keyword(actual: Any, value: Any) -> bool:
    if actual is None:
        return False
    if isinstance(value, SigmaExpansion):
        return any(_keyword(actual, v) for v in value.values)
    if isinstance(value, SigmaNumber):
        value = SigmaString(str(value.number))
    pattern = _string_regex(value)  # search, not fullmatch: a keyword is contained in the text
    return any(isinstance(a, str) and pattern.search(a) is not None for a in _values(actual))
