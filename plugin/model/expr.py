"""Boolean expressions over event fields: AllOf / AnyOf / Not / Predicate."""

from __future__ import annotations

import enum
from collections.abc import Iterator

import msgspec

from shellsieve.diagnostics import Location

__all__ = ["Op", "Predicate", "AllOf", "AnyOf", "Not", "Expr", "render", "fields_of", "predicates"]


class Op(enum.Enum):
    """What a predicate does with its field value; one compile strategy per member."""

    EQ = "eq"  # whole-value equality (strings by case rule, numbers, booleans)
    WILDCARD = "wildcard"  # whole value, `*` any run, `?` one character
    CONTAINS = "contains"
    STARTSWITH = "startswith"
    ENDSWITH = "endswith"
    REGEX = "regex"  # unanchored search, PCRE syntax; anchor it in the value itself if needed
    CIDR = "cidr"  # IP value inside any of the networks
    EXISTS = "exists"  # field present and not null
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    LENGTH_LT = "length_lt"  # EQL length(field) compared with a number
    LENGTH_LE = "length_le"
    LENGTH_GT = "length_gt"
    LENGTH_GE = "length_ge"
    LENGTH_EQ = "length_eq"
    FIELDREF = "fieldref"  # equal to another field of the same event (values hold its name)


TEXT_OPS = frozenset({Op.WILDCARD, Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.REGEX})
NUMERIC_OPS = frozenset({Op.LT, Op.LE, Op.GT, Op.GE})
LENGTH_OPS = frozenset({Op.LENGTH_LT, Op.LENGTH_LE, Op.LENGTH_GT, Op.LENGTH_GE, Op.LENGTH_EQ})

Value = str | int | float | bool


class Predicate(msgspec.Struct, frozen=True):
    """`field op any-of(values)`; an array field holds when any element does; a missing field never holds."""

    field: str  # canonical ECS name
    op: Op
    values: tuple[Value, ...] = ()
    case_sensitive: bool = False
    location: Location | None = None


class AllOf(msgspec.Struct, frozen=True):
    terms: tuple[Expr, ...]


class AnyOf(msgspec.Struct, frozen=True):
    terms: tuple[Expr, ...]


class Not(msgspec.Struct, frozen=True):
    term: Expr


Expr = Predicate | AllOf | AnyOf | Not


def all_of(terms: list[Expr] | tuple[Expr, ...]) -> Expr:
    """AllOf, flattened; one term stands alone."""
    flat: list[Expr] = []
    for t in terms:
        flat.extend(t.terms if isinstance(t, AllOf) else (t,))
    return flat[0] if len(flat) == 1 else AllOf(tuple(flat))


def any_of(terms: list[Expr] | tuple[Expr, ...]) -> Expr:
    """AnyOf, flattened; one term stands alone."""
    flat: list[Expr] = []
    for t in terms:
        flat.extend(t.terms if isinstance(t, AnyOf) else (t,))
    return flat[0] if len(flat) == 1 else AnyOf(tuple(flat))


def render(expr: Expr) -> str:
    """Readable text of an expression, for diagnostics and tests."""
    if isinstance(expr, Predicate):
        cs = "" if expr.case_sensitive or expr.op not in TEXT_OPS | {Op.EQ} else "~"
        vals = ", ".join(repr(v) for v in expr.values)
        return f"{expr.field} {expr.op.value}{cs} ({vals})"
    if isinstance(expr, Not):
        return f"not {render(expr.term)}"
    joiner = " and " if isinstance(expr, AllOf) else " or "
    return "(" + joiner.join(render(t) for t in expr.terms) + ")"


def fields_of(expr: Expr) -> set[str]:
    """Every field an expression reads."""
    if isinstance(expr, Predicate):
        out = {expr.field}
        if expr.op is Op.FIELDREF:
            out.update(str(v) for v in expr.values)
        return out
    if isinstance(expr, Not):
        return fields_of(expr.term)
    return set().union(*(fields_of(t) for t in expr.terms))


def predicates(expr: Expr) -> Iterator[Predicate]:
    """Every predicate of an expression, depth first."""
    if isinstance(expr, Predicate):
        yield expr
    elif isinstance(expr, Not):
        yield from predicates(expr.term)
    else:
        for t in expr.terms:
            yield from predicates(t)
