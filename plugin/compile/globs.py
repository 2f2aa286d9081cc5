"""Text predicates of plain literals -> a Python string test, exact where a field scan would be.

A field scan runs the whole field database (thousands of patterns) over one value: ~10 us, which
the memo in run/match.py saves only for values seen before. Most text predicates are literals with
`*` around them (Sigma `contains`, `startswith`, EQL `like "/tmp/*"`): `str` methods decide those in
well under a microsecond. What the field patterns do, and so what these tests must do:

- the value is scanned as its UTF-8 bytes; `*` is any run of bytes, so any run of characters;
- HS_FLAG_CASELESS folds ASCII letters only. A caseless test therefore lowers an ASCII value with
  `str.lower` (ASCII-only on ASCII text) and leaves any other value to the field scan: `str.lower`
  would fold `K` (Kelvin sign) to `k`, which the database does not.

Not covered (the field scan decides): regexes, `?` (one character), literals with non-ASCII text.
"""

from __future__ import annotations

from collections.abc import Callable

from shellsieve.compile.regex import ANY, wildcard_parts
from shellsieve.model.expr import Op, Predicate

__all__ = ["StrTest", "literal_test"]

StrTest = Callable[[str], bool]


def _glob(parts: list[str]) -> StrTest:
    """`*`-separated literals (at least two parts): the first opens the value, the last closes it,
    the others follow in order between them. Leftmost placement is enough: a match exists iff the
    greedy one does."""
    head, *middle, tail = parts
    least = len(head) + len(tail) + sum(map(len, middle))

    def test(s: str) -> bool:
        if len(s) < least or not s.startswith(head) or not s.endswith(tail):
            return False
        pos, stop = len(head), len(s) - len(tail)
        for lit in middle:
            i = s.find(lit, pos, stop)
            if i < 0:
                return False
            pos = i + len(lit)
        return True

    return test


def _wildcard_parts(value: str) -> list[str] | None:
    """The literals between `*`s (empty at an end that is a `*`), or None with a `?`."""
    parts = [""]
    for kind, text in wildcard_parts(value):
        if kind == ANY:
            parts.append("")
        elif kind == "lit":
            parts[-1] += text
        else:
            return None
    return parts


def _any_of(tests: list[StrTest]) -> StrTest:
    if len(tests) == 1:
        return tests[0]

    def test(s: str) -> bool:
        for t in tests:
            if t(s):
                return True
        return False

    return test


def _contains(subs: list[str]) -> StrTest:
    if len(subs) == 1:
        sub = subs[0]
        return lambda s: sub in s

    def test(s: str) -> bool:
        for sub in subs:
            if sub in s:
                return True
        return False

    return test


def _parts(pred: Predicate, value: str) -> list[str] | None:
    """The value as `*`-separated literals (empty at an end that is a `*`), or None."""
    if pred.op is Op.CONTAINS:
        return ["", value, ""]
    if pred.op is Op.STARTSWITH:
        return [value, ""]
    if pred.op is Op.ENDSWITH:
        return ["", value]
    return _wildcard_parts(value)


def literal_test(pred: Predicate) -> tuple[StrTest, bool] | None:
    """(test of one string, whether it wants the value lowered) equal to the predicate's field
    patterns on every value it is given (caseless: ASCII values only), or None."""
    if pred.op not in (Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.WILDCARD):
        return None
    caseless = not pred.case_sensitive
    # grouped by shape, so that each group is one C call or one short loop
    equal: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    subs: list[str] = []
    globs: list[list[str]] = []
    for v in pred.values:
        if not isinstance(v, str) or not v.isascii():
            return None
        parts = _parts(pred, v.lower() if caseless else v)
        if parts is None:
            return None
        if len(parts) == 1:
            equal.add(parts[0])
        elif len(parts) == 2 and not parts[1]:
            prefixes.append(parts[0])
        elif len(parts) == 2 and not parts[0]:
            suffixes.append(parts[1])
        elif len(parts) == 3 and not parts[0] and not parts[2]:
            subs.append(parts[1])
        else:
            globs.append(parts)
    tests: list[StrTest] = []
    if equal:
        tests.append(equal.__contains__)
    if prefixes:
        starts = tuple(prefixes)
        tests.append(lambda s: s.startswith(starts))
    if suffixes:
        ends = tuple(suffixes)
        tests.append(lambda s: s.endswith(ends))
    if subs:
        tests.append(_contains(subs))
    tests.extend(map(_glob, globs))
    return _any_of(tests), caseless
