"""Cheaper confirm closures, the same results: the term that decided last moves to the front
(compile/confirm.py `_adaptive`), and a field the typed view holds whole is read with one attrgetter
(events/view.py `_typed_accessor`)."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from shellsieve.compile.confirm import EventContext, build_check
from shellsieve.events.view import ViewSchema
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate

FIELDS = ("process.name", "process.parent.name", "user.name", "user.id")
VALUES = ("a", "b", "c")


def _truth(expr: Expr, event: dict[str, Any]) -> bool:
    """The expression on a flat event, as the rules mean it (case-sensitive equality only here)."""
    if isinstance(expr, Predicate):
        return event.get(expr.field) in expr.values
    if isinstance(expr, Not):
        return not _truth(expr.term, event)
    if isinstance(expr, AllOf):
        return all(_truth(t, event) for t in expr.terms)
    assert isinstance(expr, AnyOf)
    return any(_truth(t, event) for t in expr.terms)


_pred = st.builds(lambda f, vs: Predicate(f, Op.EQ, tuple(sorted(vs)), True), st.sampled_from(FIELDS),
                  st.sets(st.sampled_from(VALUES), min_size=1, max_size=2))
_expr = st.recursive(_pred, lambda inner: st.one_of(
    st.builds(AllOf, st.lists(inner, min_size=3, max_size=5).map(tuple)),
    st.builds(AnyOf, st.lists(inner, min_size=3, max_size=5).map(tuple)),
    st.builds(Not, inner)), max_leaves=12)
_event = st.fixed_dictionaries({}, optional={f: st.sampled_from(VALUES) for f in FIELDS})


def _nested(event: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in event.items():
        *path, leaf = field.split(".")
        cur = out
        for p in path:
            cur = cur.setdefault(p, {})
        cur[leaf] = value
    return out


@settings(max_examples=150, deadline=None)
@given(_expr, st.lists(_event, min_size=1, max_size=40))
def test_adaptive_order_keeps_every_result(expr: Expr, events: list[dict[str, Any]]) -> None:
    schema = ViewSchema(FIELDS)
    check = build_check(expr, schema.accessors, lambda p: frozenset(), None)
    for event in events:  # one closure over the whole run: its order carries from event to event
        view = schema.decoder.decode(msgspec.json.encode(_nested(event)))
        assert check(EventContext(view, lambda text: frozenset())) == _truth(expr, event), event


_leaf = st.one_of(st.none(), st.sampled_from(VALUES), st.integers(-2, 2), st.lists(st.sampled_from(VALUES), max_size=2),
                  st.lists(st.fixed_dictionaries({"name": st.sampled_from(VALUES)}), max_size=3))
_keys = st.sampled_from(("process", "parent", "name", "user", "id", "0", "args"))
_object = st.recursive(_leaf, lambda inner: st.dictionaries(_keys, inner, max_size=3), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(("process", "user", "process.name", "user.id", "process.parent.name",
                                        "args", "process.args")),
                       _object, max_size=4))
def test_typed_accessors_read_what_the_plain_event_holds(event: dict[str, Any]) -> None:
    """Each field read from the typed view (view.py `_typed_accessor`: one attrgetter, None where an
    object on the way is missing) is the value read from the same event decoded untyped."""
    schema = ViewSchema((*FIELDS, "process.args", "process.args.0", "process.args.1.name"))
    assert not schema.object_fields
    assert ViewSchema((*FIELDS, "process.parent")).object_fields == ["process.parent"]
    line = msgspec.json.encode(event)
    try:
        view = schema.decoder.decode(line)
    except msgspec.ValidationError:
        return  # a rule field of another shape: the matcher reads the untyped decode then
    doc = msgspec.json.decode(line)
    for field, get in schema.accessors.items():
        assert get(view) == get(doc), field
