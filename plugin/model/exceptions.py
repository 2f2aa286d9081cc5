"""Rule exceptions: events a rule must not alert on, each with the reason it was granted.

The loader (rules/exceptions.py) builds these from an exceptions file; the gate (run/exceptions.py)
compiles and applies them. Values are kept as text: the gate compares an event's scalar values as
text too (`0` and `"0"` are one value), so a YAML file and a JSON event never disagree on types.
"""

from __future__ import annotations

import datetime

import msgspec

from shellsieve.diagnostics import Location
from shellsieve.model.expr import Expr, Op

__all__ = ["OPERATORS", "EXPR_OPS", "Condition", "RuleException"]

# is, is_one_of: the exact value (case-sensitive); matches: a glob; contains: a substring; both
# case-insensitive; cidr: an IP address inside a network. See docs/exceptions.md.
OPERATORS = ("is", "is_one_of", "matches", "contains", "cidr")
# The predicate ops an entry's `expr` (a Sigma filter's condition) may use: run/exceptions.py evaluates them.
EXPR_OPS = frozenset({Op.EQ, Op.WILDCARD, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.REGEX, Op.CIDR, Op.EXISTS,
                      Op.LT, Op.LE, Op.GT, Op.GE})


class Condition(msgspec.Struct, frozen=True):
    field: str  # an ECS field, dotted
    operator: str  # one of OPERATORS
    values: tuple[str, ...]  # the condition holds if the field has any of them
    location: Location


class RuleException(msgspec.Struct, frozen=True):
    rules: tuple[str, ...] | None  # the rule ids it applies to; None: every rule
    conditions: tuple[Condition, ...]  # all must hold
    comment: str  # why it was granted: required
    location: Location
    expires: datetime.datetime | None = None  # UTC; from then on the entry no longer applies
    # With `conditions`, an expression that must hold too: a Sigma filter (model/correlation.py
    # Filter) excepts the events where its condition does not hold, so this is `not condition`.
    expr: Expr | None = None
