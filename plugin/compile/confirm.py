"""Expressions -> closures over one decoded event, each chosen at build time (no per-event dispatch).

A closure takes an `EventContext`: the typed view plus a memo of Hyperscan field scans, so a
value that several predicates read is scanned once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from shellsieve.events.view import Accessor
from shellsieve.model.expr import AllOf, Expr, Not, Op, Predicate

__all__ = ["EventContext", "Check", "build_check", "ScanFn"]

# scan(text) -> ids of the field patterns that match the whole of `text` (memoised per event).
ScanFn = Callable[[str], frozenset[int]]


class EventContext:
    """One decoded event as confirm closures see it."""

    __slots__ = ("view", "_scan", "_memo")

    def __init__(self, view: Any, scan: ScanFn) -> None:
        self.view = view
        self._scan = scan
        self._memo: dict[str, frozenset[int]] = {}

    def hits(self, text: str) -> frozenset[int]:
        h = self._memo.get(text)
        if h is None:
            h = self._memo[text] = self._scan(text)
        return h


Check = Callable[[EventContext], bool]


def _elements(value: Any) -> list[Any]:
    """An array field holds when any element does; a scalar is a one-element array."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _typed_key(v: Any) -> tuple[str, Any]:
    # True == 1 in Python; a rule's `true` must not match the number 1.
    return ("b", v) if isinstance(v, bool) else ("n", float(v))


def _eq(pred: Predicate, get: Accessor) -> Check:
    # Strings match strings only ("33" does not match the JSON number 33: ECS ids are keywords);
    # a number in the rule also matches its decimal text ("1" for 1), as Sigma's EventID does.
    fold: Callable[[str], str] = (lambda s: s) if pred.case_sensitive else str.casefold
    strings = {fold(v) for v in pred.values if isinstance(v, str)}
    strings |= {str(v) for v in pred.values if isinstance(v, (int, float)) and not isinstance(v, bool)}
    others = {_typed_key(v) for v in pred.values if not isinstance(v, str)}

    def check(ctx: EventContext) -> bool:
        for e in _elements(get(ctx.view)):
            if isinstance(e, str):
                if fold(e) in strings:
                    return True
            elif isinstance(e, (int, float)) and _typed_key(e) in others:
                return True
        return False

    return check


def _text(ids: frozenset[int], get: Accessor, confirm: Callable[[int, str], bool] | None) -> Check:
    def check(ctx: EventContext) -> bool:
        for e in _elements(get(ctx.view)):
            if isinstance(e, str):
                found = ctx.hits(e) & ids
                if found and (confirm is None or any(confirm(i, e) for i in found)):
                    return True
        return False

    return check


def _cidr(pred: Predicate, get: Accessor) -> Check:
    nets = [ipaddress.ip_network(str(v), strict=False) for v in pred.values]

    def check(ctx: EventContext) -> bool:
        for e in _elements(get(ctx.view)):
            try:
                ip = ipaddress.ip_address(str(e))
            except ValueError:
                continue
            if any(ip.version == n.version and ip in n for n in nets):
                return True
        return False

    return check


def _exists(get: Accessor) -> Check:
    def check(ctx: EventContext) -> bool:
        v = get(ctx.view)
        return v is not None and v != []

    return check


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


_CMP = {
    Op.LT: lambda a, b: a < b, Op.LE: lambda a, b: a <= b,
    Op.GT: lambda a, b: a > b, Op.GE: lambda a, b: a >= b,
    Op.LENGTH_LT: lambda a, b: a < b, Op.LENGTH_LE: lambda a, b: a <= b,
    Op.LENGTH_GT: lambda a, b: a > b, Op.LENGTH_GE: lambda a, b: a >= b,
    Op.LENGTH_EQ: lambda a, b: a == b,
}


def _compare(pred: Predicate, get: Accessor) -> Check:
    cmp = _CMP[pred.op]
    bound = pred.values[0]
    nbound = _number(bound)
    if nbound is None:  # string ordering, as EQL compares two strings
        sbound = str(bound)

        def check_str(ctx: EventContext) -> bool:
            return any(isinstance(e, str) and cmp(e, sbound) for e in _elements(get(ctx.view)))

        return check_str

    def check(ctx: EventContext) -> bool:
        for e in _elements(get(ctx.view)):
            n = _number(e)
            if n is not None and cmp(n, nbound):
                return True
        return False

    return check


def _length(pred: Predicate, get: Accessor) -> Check:
    cmp = _CMP[pred.op]
    bound = float(pred.values[0])

    def check(ctx: EventContext) -> bool:
        v = get(ctx.view)
        return isinstance(v, (str, list)) and cmp(len(v), bound)

    return check


def _fieldref(get: Accessor, other: Accessor) -> Check:
    def check(ctx: EventContext) -> bool:
        mine = _elements(get(ctx.view))
        theirs = _elements(other(ctx.view))
        return any(m == t for m in mine for t in theirs)

    return check


def build_check(expr: Expr, accessors: dict[str, Accessor], text_ids: Callable[[Predicate], frozenset[int]],
                confirm: Callable[[int, str], bool] | None) -> Check:
    """Closure for `expr`; `text_ids` gives the database ids of a text predicate's patterns."""
    if isinstance(expr, Predicate):
        get = accessors[expr.field]
        op = expr.op
        if op is Op.EQ:
            return _eq(expr, get)
        if op in (Op.WILDCARD, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.REGEX):
            return _text(text_ids(expr), get, confirm)
        if op is Op.CIDR:
            return _cidr(expr, get)
        if op is Op.EXISTS:
            return _exists(get)
        if op in (Op.LT, Op.LE, Op.GT, Op.GE):
            return _compare(expr, get)
        if op is Op.FIELDREF:
            return _fieldref(get, accessors[str(expr.values[0])])
        return _length(expr, get)
    if isinstance(expr, Not):
        inner = build_check(expr.term, accessors, text_ids, confirm)
        return lambda ctx: not inner(ctx)
    terms = tuple(build_check(t, accessors, text_ids, confirm) for t in expr.terms)
    if isinstance(expr, AllOf):
        return lambda ctx: all(t(ctx) for t in terms)
    return lambda ctx: any(t(ctx) for t in terms)
