"""Expressions -> closures over one decoded event, each chosen at build time (no per-event dispatch).

A closure takes an `EventContext`: the typed view plus a memo of Hyperscan field scans, so a
value that several predicates read is scanned once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from shellsieve.compile.globs import StrTest, literal_test
from shellsieve.events.view import Accessor
from shellsieve.model.expr import TEXT_OPS, AllOf, Expr, Not, Op, Predicate

__all__ = ["EventContext", "Check", "build_check", "ScanFn"]

# scan(text) -> ids of the field patterns that match the whole of `text` (memoised per event).
ScanFn = Callable[[str], frozenset[int]]


_NONE: frozenset[str] = frozenset()


class _Elements(dict[Accessor, list[Any]]):
    """accessor -> the field's value as a list (an array field holds when any element does);
    worked out on first use. A subscript is one C call on every later use."""

    __slots__ = ("view",)
    view: Any  # the decoded event (a view class made at run time)

    def __missing__(self, get: Accessor) -> list[Any]:
        e = self[get] = _elements(get(self.view))
        return e


class _Strings(dict[Accessor, frozenset[str]]):
    """accessor -> the field's string elements, as a set."""

    __slots__ = ("elements",)
    elements: _Elements

    def __missing__(self, get: Accessor) -> frozenset[str]:
        v = get(self.elements.view)
        if type(v) is str:  # the usual case, without the element list or a generator
            s = frozenset((v,))
        elif v is None:
            s = _NONE
        else:
            s = frozenset(e for e in _elements(v) if isinstance(e, str))
        self[get] = s
        return s


class _Folded(dict[Accessor, frozenset[str]]):
    """accessor -> the field's string elements casefolded, as a set."""

    __slots__ = ("strings",)
    strings: _Strings

    def __missing__(self, get: Accessor) -> frozenset[str]:
        s = self[get] = frozenset(map(str.casefold, self.strings[get]))
        return s


class _Scans(dict[str, frozenset[int]]):
    """value -> ids of the field patterns matching it (one Hyperscan scan)."""

    __slots__ = ("scan",)
    scan: ScanFn

    def __missing__(self, text: str) -> frozenset[int]:
        h = self[text] = self.scan(text)
        return h


class EventContext:
    """One decoded event as confirm closures see it.

    Hundreds of rules read the same few fields (process.name, event.type, host.os.type): each
    field's elements, their casefolded strings and each string's field scan are worked out once
    per event and shared by every predicate that reads them."""

    __slots__ = ("view", "elements", "strings", "folded", "hits")

    def __init__(self, view: Any, scan: ScanFn) -> None:
        self.view = view
        self.elements = _Elements()
        self.elements.view = view
        self.strings = _Strings()
        self.strings.elements = self.elements
        self.folded = _Folded()
        self.folded.strings = self.strings
        self.hits = _Scans()
        self.hits.scan = scan


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
    strings = frozenset(v if pred.case_sensitive else v.casefold() for v in pred.values if isinstance(v, str))
    strings |= {str(v) for v in pred.values if isinstance(v, (int, float)) and not isinstance(v, bool)}
    others = {_typed_key(v) for v in pred.values if not isinstance(v, str)}
    if pred.case_sensitive:
        def check(ctx: EventContext) -> bool:
            return not strings.isdisjoint(ctx.strings[get])
    else:
        def check(ctx: EventContext) -> bool:
            return not strings.isdisjoint(ctx.folded[get])

    if not others:
        return check

    def check_numbers(ctx: EventContext) -> bool:
        if check(ctx):
            return True
        return any(isinstance(e, (int, float)) and _typed_key(e) in others for e in ctx.elements[get])

    return check_numbers


def _text(ids: frozenset[int], get: Accessor, confirm: Callable[[int, str], bool] | None) -> Check:
    def check(ctx: EventContext) -> bool:
        for e in ctx.strings[get]:
            found = ctx.hits[e] & ids
            if found and (confirm is None or any(confirm(i, e) for i in found)):
                return True
        return False

    return check


def _literal_text(test: StrTest, lower: bool, ids: frozenset[int], get: Accessor) -> Check:
    """`_text` decided in Python (compile/globs.py); a caseless test leaves a non-ASCII value to
    the field scan, whose case folding `str.lower` does not share."""
    if not lower:
        def check(ctx: EventContext) -> bool:
            for e in ctx.strings[get]:
                if test(e):
                    return True
            return False

        return check

    def check_lowered(ctx: EventContext) -> bool:
        for e in ctx.strings[get]:
            if test(e.lower()) if e.isascii() else ctx.hits[e] & ids:
                return True
        return False

    return check_lowered


def _cidr(pred: Predicate, get: Accessor) -> Check:
    nets = [ipaddress.ip_network(str(v), strict=False) for v in pred.values]

    def check(ctx: EventContext) -> bool:
        for e in ctx.elements[get]:
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


_CMP: dict[Op, Callable[[Any, Any], bool]] = {
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
            return any(isinstance(e, str) and cmp(e, sbound) for e in ctx.elements[get])

        return check_str

    def check(ctx: EventContext) -> bool:
        for e in ctx.elements[get]:
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
        mine = ctx.elements[get]
        theirs = ctx.elements[other]
        return any(m == t for m in mine for t in theirs)

    return check


def build_check(expr: Expr, accessors: dict[str, Accessor], text_ids: Callable[[Predicate], frozenset[int]],
                confirm: Callable[[int, str], bool] | None) -> Check:
    """Closure for `expr`; `text_ids` gives the database ids of a text predicate's patterns."""
    return _build(expr, accessors, text_ids, confirm)[0]


def _build(expr: Expr, accessors: dict[str, Accessor], text_ids: Callable[[Predicate], frozenset[int]],
           confirm: Callable[[int, str], bool] | None) -> tuple[Check, bool]:
    """(closure, whether it may scan a field with Hyperscan), each predicate looked at once."""
    if isinstance(expr, Predicate):
        return _predicate(expr, accessors, text_ids, confirm)
    if isinstance(expr, Not):
        inner, scans = _build(expr.term, accessors, text_ids, confirm)
        return (lambda ctx: not inner(ctx)), scans
    # Terms that need no field scan first (a set lookup on a memoised field, a string test in Python),
    # in the rule's own order: a failed `process.name == "bash"` spares the scan of the command line.
    # Terms are pure, so the order changes the cost, never the result. (Testing low-cardinality fields
    # last made no measurable difference.)
    built = sorted((_build(t, accessors, text_ids, confirm) for t in expr.terms), key=lambda b: b[1])
    terms = tuple(check for check, _ in built)
    cheap = sum(1 for _, scans in built if not scans)
    return _combined(terms, isinstance(expr, AllOf), cheap), any(s for _, s in built)


def _predicate(expr: Predicate, accessors: dict[str, Accessor], text_ids: Callable[[Predicate], frozenset[int]],
               confirm: Callable[[int, str], bool] | None) -> tuple[Check, bool]:
    """One predicate's closure, picked by its operator, and whether it may scan its field."""
    get = accessors[expr.field]
    op = expr.op
    if op is Op.EQ:
        return _eq(expr, get), False
    if op in TEXT_OPS:
        literal = literal_test(expr)
        if literal is not None:
            return _literal_text(*literal, text_ids(expr), get), False
        return _text(text_ids(expr), get, confirm), True
    if op is Op.CIDR:
        return _cidr(expr, get), False
    if op is Op.EXISTS:
        return _exists(get), False
    if op in (Op.LT, Op.LE, Op.GT, Op.GE):
        return _compare(expr, get), False
    if op is Op.FIELDREF:
        return _fieldref(get, accessors[str(expr.values[0])]), False
    return _length(expr, get), False


def _combined(terms: tuple[Check, ...], all_of: bool, cheap: int = 0) -> Check:
    """All (or any) of `terms`, tested in their order; two terms without a loop. Of the first
    `cheap` terms (no field scan), the one that decided last (failed an AllOf, held for an AnyOf)
    moves to the front: the terms are pure, so the order changes the cost, never the result. Under
    a web server every line passes the first five terms of Elastic's web-server child rule and 71%
    fail its sixth: that one is tested first from its first failure on."""
    if len(terms) == 2:
        a, b = terms
        if all_of:
            return lambda ctx: a(ctx) and b(ctx)
        return lambda ctx: a(ctx) or b(ctx)
    if cheap > 1:
        return _adaptive(terms, all_of, cheap)
    if all_of:
        def all_hold(ctx: EventContext) -> bool:
            for t in terms:
                if not t(ctx):
                    return False
            return True

        return all_hold

    def any_holds(ctx: EventContext) -> bool:
        for t in terms:
            if t(ctx):
                return True
        return False

    return any_holds


def _adaptive(terms: tuple[Check, ...], all_of: bool, cheap: int) -> Check:
    """`_combined` whose deciding cheap term moves to the front. The order is swapped whole (a new
    tuple), never changed in place: a check running in another thread keeps the tuple it began with."""
    order = [terms]
    decider = set(terms[:cheap])

    def promote(ts: tuple[Check, ...], t: Check) -> None:
        if t is not ts[0] and t in decider:
            order[0] = (t, *[x for x in ts if x is not t])

    if all_of:
        def all_hold(ctx: EventContext) -> bool:
            ts = order[0]
            for t in ts:
                if not t(ctx):
                    promote(ts, t)
                    return False
            return True

        return all_hold

    def any_holds(ctx: EventContext) -> bool:
        ts = order[0]
        for t in ts:
            if t(ctx):
                promote(ts, t)
                return True
        return False

    return any_holds
