"""The exceptions gate: drops the hits an exception (model/exceptions.py) matches, counts them per
rule in `Stats.excepted`. It runs first among the gates (run/engine.py), so an excepted hit neither
opens nor extends a suppression window.

Each condition is compiled once into a closure over the event dict. A field is read as a flat dotted
key (`"user.name": ...`) or nested; an array (at the leaf or on the way) matches if any element does;
a missing field never matches. Scalars are compared as text (`0` and `"0"` are one value).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from shellsieve.model.exceptions import Condition, RuleException
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate
from shellsieve.run.enrich import Hit
from shellsieve.run.stats import Stats

__all__ = ["Exceptions", "field_values"]

_Test = Callable[[str], bool]
_Check = Callable[[dict[str, Any]], bool]


def _walk(cur: Any, parts: list[str]) -> Iterator[Any]:
    if type(cur) is list:
        for item in cur:
            yield from _walk(item, parts)
        return
    if not parts:
        yield cur
        return
    if type(cur) is dict:
        # a flat dotted key at this level (`"process.parent": {...}` or `"user.name": ...`) first
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in cur:
                yield from _walk(cur[key], parts[i:])
                return


def _texts(values: Iterator[Any]) -> list[str]:
    out = []
    for v in values:
        if type(v) is bool:
            out.append("true" if v else "false")
        elif isinstance(v, (str, int, float)):
            out.append(str(v))
    return out


def _reader(field: str) -> Callable[[dict[str, Any]], list[str]]:
    """`field_values` for one field: nested objects down to a scalar (the usual ECS event) take the
    fast path; arrays, flat dotted keys and missing fields the full walk."""
    parts = field.split(".")

    def read(doc: dict[str, Any]) -> list[str]:
        cur: Any = doc
        for p in parts:
            if type(cur) is not dict or p not in cur:
                return _texts(_walk(doc, parts))
            cur = cur[p]
        if type(cur) is str:
            return [cur]
        return _texts(_walk(cur, []))

    return read


def field_values(doc: dict[str, Any], field: str) -> list[str]:
    """The scalar values of `field` in `doc`, as text; an array gives each element; empty if missing."""
    return _reader(field)(doc)


def _contains(values: tuple[str, ...]) -> _Test:
    needles = tuple(v.casefold() for v in values)
    return lambda text: any(n in text.casefold() for n in needles)


def _cidr(values: tuple[str, ...]) -> _Test:
    nets = [ipaddress.ip_network(v, strict=False) for v in values]

    def test(text: str) -> bool:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return False
        return any(ip in net for net in nets if net.version == ip.version)

    return test


def _test(cond: Condition) -> _Test:
    """The closure testing one value, picked once per condition."""
    if cond.operator in ("is", "is_one_of"):
        return frozenset(cond.values).__contains__
    if cond.operator == "matches":
        # fnmatch.translate: `*` any run of characters (`/` included), `?` one, `[...]` a class;
        # case-insensitive as Sigma's wildcards
        pattern = re.compile("|".join(fnmatch.translate(v) for v in cond.values), re.IGNORECASE)
        return lambda text: pattern.match(text) is not None
    if cond.operator == "contains":
        return _contains(cond.values)
    if cond.operator == "cidr":
        return _cidr(cond.values)
    raise ValueError(f"{cond.location}: unknown operator {cond.operator!r}")


def _check(cond: Condition) -> _Check:
    test, read = _test(cond), _reader(cond.field)
    return lambda doc: any(test(v) for v in read(doc))


def _wildcard(value: str, flags: int) -> re.Pattern[str]:
    """A Sigma wildcard value (`*`, `?`; a backslash makes the next character literal) as a regex."""
    out, i = [], 0
    while i < len(value):
        c = value[i]
        if c == "\\" and i + 1 < len(value):
            out.append(re.escape(value[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), flags | re.DOTALL)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _predicate_test(pred: Predicate) -> _Test:
    """One predicate's test of one value as text, with the meaning the rule compiler gives it."""
    op, cased = pred.op, pred.case_sensitive
    fold: Callable[[str], str] = (lambda t: t) if cased else str.casefold
    texts = tuple(fold("true" if v is True else "false" if v is False else str(v)) for v in pred.values)
    if op is Op.EQ:
        wanted = frozenset(texts)
        return lambda text: fold(text) in wanted
    if op is Op.CONTAINS:
        return lambda text: any(t in fold(text) for t in texts)
    if op is Op.STARTSWITH:
        return lambda text: fold(text).startswith(texts)
    if op is Op.ENDSWITH:
        return lambda text: fold(text).endswith(texts)
    if op in (Op.WILDCARD, Op.REGEX):
        flags = 0 if cased else re.IGNORECASE
        pats = [_wildcard(str(v), flags) if op is Op.WILDCARD else re.compile(str(v), flags) for v in pred.values]
        if op is Op.WILDCARD:
            return lambda text: any(p.fullmatch(text) for p in pats)
        return lambda text: any(p.search(text) for p in pats)
    if op is Op.CIDR:
        return _cidr(texts)
    if op is Op.EXISTS:
        return lambda text: True
    limits = [float(v) for v in pred.values if isinstance(v, (int, float))]
    compare = {Op.LT: float.__lt__, Op.LE: float.__le__, Op.GT: float.__gt__, Op.GE: float.__ge__}.get(op)
    if compare is None:
        raise ValueError(f"{pred.location}: predicate op {op.value} is not evaluated in exceptions")

    def numeric(text: str) -> bool:
        n = _number(text)
        return n is not None and any(compare(n, lim) for lim in limits)

    return numeric


def _expr(expr: Expr) -> _Check:
    """An expression over the event dict; a field holds if any of its values does."""
    if isinstance(expr, Predicate):
        test, read = _predicate_test(expr), _reader(expr.field)
        return lambda doc: any(test(v) for v in read(doc))
    if isinstance(expr, Not):
        inner = _expr(expr.term)
        return lambda doc: not inner(doc)
    terms = [_expr(t) for t in expr.terms]
    if isinstance(expr, AllOf):
        return lambda doc: all(t(doc) for t in terms)
    assert isinstance(expr, AnyOf)
    return lambda doc: any(t(doc) for t in terms)


def _entry(entry: RuleException) -> _Check:
    checks = [_check(c) for c in entry.conditions]
    if entry.expr is not None:
        checks.append(_expr(entry.expr))
    return lambda doc: all(check(doc) for check in checks)


class Exceptions:
    """A gate (run/enrich.py `Gate`) applying `entries`; `per_rule` counts the entries by rule id
    (`*`: every rule), for `check` and the `started` log."""

    def __init__(self, entries: Sequence[RuleException], stats: Stats) -> None:
        self.stats = stats
        self.entries = tuple(entries)
        self._checks = [_entry(e) for e in self.entries]
        self._all = [i for i, e in enumerate(self.entries) if e.rules is None]
        self._by_rule: dict[str, list[int]] = {}
        for i, e in enumerate(self.entries):
            for rid in e.rules or ():
                self._by_rule.setdefault(rid, []).append(i)
        self.per_rule = Counter({rid: len(ix) for rid, ix in self._by_rule.items()})
        if self._all:
            self.per_rule["*"] = len(self._all)

    def __len__(self) -> int:
        return len(self.entries)

    def __call__(self, doc: dict[str, Any], hits: list[Hit]) -> list[Hit]:
        seen: dict[int, bool] = {}  # an entry is evaluated once per event, however many hits it covers

        def excepted(rid: str) -> bool:
            for i in (*self._by_rule.get(rid, ()), *self._all):
                hit = seen.get(i)
                if hit is None:
                    hit = seen[i] = self._checks[i](doc)
                if hit:
                    return True
            return False

        kept = []
        for h in hits:
            if excepted(h.rule.id):
                self.stats.excepted[h.rule.id] += 1
            else:
                kept.append(h)
        return kept
