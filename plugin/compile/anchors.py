"""Prefilter anchors: what must appear in a raw NDJSON line for a rule to possibly match.

A rule is only evaluated on a line where one of its anchor literals occurs. Literals are taken in
the form canonical JSON escaping gives them (`"` -> `\\"`, `\\` -> `\\\\`, control characters as
`\\n`, `\\t` ...). A line with a non-canonical escape (`\\uXXXX`, `\\/`) could spell any literal
differently, so the ruleset also holds ESCAPE_MARKER: a line where it fires is a candidate for
every rule.
"""

from __future__ import annotations

import re._constants as sre_c  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import NamedTuple

import msgspec

from shellsieve.compile.regex import wildcard_parts
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate

__all__ = ["Literal", "Clause", "anchor_clauses", "predicate_literals", "ESCAPE_MARKER", "json_escaped"]

# An odd run of backslashes before `u` or `/`: a \uXXXX or \/ escape in a JSON string.
ESCAPE_MARKER = rb"(?:\A|[^\\])(?:\\\\)*\\[u/]"



class Literal(NamedTuple):
    text: bytes  # as it appears in the raw line
    caseless: bool
    common: bool = False  # a value of a low-cardinality field: in nearly every line (LOW_CARDINALITY)


def json_escaped(text: str) -> bytes:
    """`text` as canonical JSON escaping writes it inside a string, without the quotes."""
    return msgspec.json.encode(text)[1:-1]


def _quoted(value: str) -> bytes:
    return msgspec.json.encode(value)


def _best(cands: list[bytes]) -> bytes | None:
    cands = [c for c in cands if c]
    return max(cands, key=len) if cands else None


def _regex_literal(pattern: str, caseless: bool) -> list[Literal] | None:
    """Longest literal run every match of `pattern` must contain; alternatives at top level give several."""
    try:
        parsed = sre_parse.parse(pattern)
    except Exception:
        return None
    caseless = caseless or bool(parsed.state.flags & sre_c.SRE_FLAG_IGNORECASE)
    items = list(parsed)
    if len(items) == 1 and items[0][0] is sre_c.BRANCH:
        out: list[Literal] = []
        for branch in items[0][1][1]:
            lit = _sequence_literal(list(branch), caseless)
            if lit is None:
                return None
            out.append(lit)
        return out
    lit = _sequence_literal(items, caseless)
    return [lit] if lit is not None else None


def _sequence_literal(items: list[tuple[object, object]], caseless: bool) -> Literal | None:
    """Best literal of a concatenation: a run of LITERAL nodes, or the best of a plain group inside it."""
    cands: list[bytes] = []
    run: list[str] = []
    for op, arg in items + [(None, None)]:
        if op is sre_c.LITERAL:
            run.append(chr(arg))  # type: ignore[arg-type]
            continue
        if run:
            cands.append(json_escaped("".join(run)))
            run = []
        if op is sre_c.SUBPATTERN and arg[1] == 0 and arg[2] == 0:  # type: ignore[index]
            inner = _sequence_literal(list(arg[3]), caseless)  # type: ignore[index]
            if inner is not None:
                cands.append(inner.text)
    best = _best(cands)
    return Literal(best, caseless) if best else None


# Fields with a handful of values in any corpus ("process", "start", "linux"): literals on them
# occur in nearly every line, so they anchor a rule only when nothing else can.
LOW_CARDINALITY = frozenset({
    "event.category", "event.type", "event.kind", "event.outcome", "event.dataset", "event.module",
    "event.action", "host.os.type", "host.os.family", "host.os.platform", "agent.type",
    "data_stream.dataset",
})


def predicate_literals(pred: Predicate) -> list[Literal] | None:
    """Raw-line literals of which at least one occurs wherever `pred` holds; None if none can be named."""
    caseless = not pred.case_sensitive
    out: list[Literal] = []
    for v in pred.values:
        lit: bytes | None
        if pred.op is Op.EQ:
            if isinstance(v, bool):
                lit = b"true" if v else b"false"
            elif isinstance(v, (int, float)):
                # A number value matches a JSON number or a numeric string: the digits alone.
                lit = str(v).encode()
            else:
                lit = _quoted(str(v))
        elif pred.op is Op.CONTAINS:
            lit = json_escaped(str(v))
        elif pred.op is Op.STARTSWITH:
            lit = _quoted(str(v))[:-1]
        elif pred.op is Op.ENDSWITH:
            lit = _quoted(str(v))[1:]
        elif pred.op is Op.WILDCARD:
            parts = wildcard_parts(str(v))
            cands = []
            for i, (kind, text) in enumerate(parts):
                if kind != "lit":
                    continue
                c = json_escaped(text)
                if i == 0:
                    c = b'"' + c
                if i == len(parts) - 1:
                    c = c + b'"'
                cands.append(c)
            lit = _best(cands)
        elif pred.op is Op.REGEX:
            lits = _regex_literal(str(v), caseless)
            if lits is None:
                return None
            out.extend(lits)
            continue
        else:
            return None
        if not lit:
            return None
        out.append(Literal(lit, caseless))
    if out and pred.field in LOW_CARDINALITY:
        out = [lit._replace(common=True) for lit in out]
    return out or None


# A rule's anchor as a condition in disjunctive form: the line must hold, for some clause, at least
# one literal of every set in it. One literal set per rule (as anchors first were) let common values through:
# the seed sequence's `process.parent.name : "bash"` alone made 17% of a Defend corpus candidates.
# Conjunctions stay small: compile/lines.py writes each clause as one regex of every order of its sets.
Clause = tuple[tuple[Literal, ...], ...]
MAX_CLAUSES = 16
MAX_SETS = 2  # literal sets a clause needs before less selective ones stop joining


def _set_score(lits: tuple[Literal, ...]) -> tuple[bool, int, int]:
    """How selective a literal set is (higher: fewer lines hold one of its literals)."""
    return (not any(lit.common for lit in lits), min(len(lit.text) for lit in lits), -len(lits))


def anchor_clauses(expr: Expr) -> list[Clause] | None:
    """Clauses of which one must hold in a line for `expr` to hold there, or None. Every step only
    weakens the condition (a dropped conjunct, a capped product), so it stays necessary."""
    if isinstance(expr, Predicate):
        lits = predicate_literals(expr)
        return [(tuple(lits),)] if lits else None
    if isinstance(expr, Not):
        return None
    if isinstance(expr, AnyOf):
        out: list[Clause] = []
        for t in expr.terms:
            c = anchor_clauses(t)
            if c is None:
                return None
            out.extend(c)
        out = list(dict.fromkeys(out))
        if len(out) > MAX_CLAUSES:  # too many branches: keep each branch's best set, OR-ed together
            best = [max(c, key=_set_score) for c in out]
            return [(tuple(dict.fromkeys(lit for s in best for lit in s)),)]
        return out
    if isinstance(expr, AllOf):
        parts = [(t, c) for t in expr.terms if (c := anchor_clauses(t))]
        if not parts:
            return None
        # Most selective first: fields with many values, then long literals. A low-cardinality field
        # ("linux", "start") joins only while clauses are short of MAX_SETS sets.
        parts.sort(key=lambda p: max(_set_score(s) for cl in p[1] for s in cl), reverse=True)
        acc: list[Clause] = [()]
        for _, clauses in parts:
            if all(len(c) >= MAX_SETS for c in acc):
                break
            product = [a for a in acc if len(a) >= MAX_SETS]
            product += [a + b for a in acc if len(a) < MAX_SETS for b in clauses]
            if len(product) <= MAX_CLAUSES:
                acc = product
        # Each clause's sets most selective first: where sets cannot be joined (compile/lines.py),
        # the first is the one kept.
        return list(dict.fromkeys(tuple(sorted(dict.fromkeys(c), key=_set_score, reverse=True)) for c in acc))
    raise TypeError(expr)
