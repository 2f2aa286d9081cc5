"""Alert fields: merged into the event a subtree at a time, with exactly what a field-by-field `put` gives."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from shellsieve.diagnostics import Location
from shellsieve.model.expr import Op, Predicate
from shellsieve.model.rule import Rule, Threat
from shellsieve.run.enrich import _alert_fields, _merge, _tree, put

_Q = Predicate("process.name", Op.EQ, ("nc",), True)
RULES = (
    Rule(id="a", name="A", ruleset="eql", location=Location("t"), query=_Q, severity="high", risk_score=73,
         references=("https://x",), threats=(Threat(tactic_id="TA0002", tactic_name="Execution",
                                                     technique_id="T1059", technique_name="Command"),)),
    Rule(id="b", name="B", ruleset="sigma", location=Location("t"), query=_Q, severity="low", risk_score=21),
)

# What an event may already hold where the alert fields go: nothing, an object, or a scalar in the way.
_slot = st.one_of(st.none(), st.just("text"), st.just(7), st.just([1]))
_inner = st.dictionaries(st.sampled_from(["id", "name", "kind", "technique", "tactic", "other"]),
                         st.one_of(_slot, st.dictionaries(st.sampled_from(["id", "name", "x"]), _slot, max_size=2)),
                         max_size=4)
_doc = st.dictionaries(st.sampled_from(["event", "rule", "threat", "process"]), st.one_of(_slot, _inner), max_size=4)


@settings(max_examples=300, deadline=None)
@given(_doc, st.sampled_from([RULES[:1], RULES[1:], RULES]))
def test_merge_equals_put_field_by_field(doc: dict[str, Any], rules: tuple[Rule, ...]) -> None:
    fields = _alert_fields(rules)
    expected = copy.deepcopy(doc)
    for dotted, value in fields:
        put(expected, dotted, value)
    got = copy.deepcopy(doc)
    _merge(got, _tree(fields))
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)  # same fields, same key order


def test_shared_fields_are_not_changed_by_an_event() -> None:
    """The alert tree is shared by every alert of the same rules: merging must never write into it."""
    tree = _tree(_alert_fields(RULES))
    before = copy.deepcopy(tree)
    for doc in ({}, {"event": {"kind": "event"}}, {"rule": "x"}, {"threat": {"technique": "t"}}):
        _merge(doc, tree)
        doc.setdefault("event", {})["extra"] = 1 if isinstance(doc.get("event"), dict) else None
    assert tree == before
