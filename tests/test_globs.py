"""Text predicates decided in Python (compile/globs.py) must say what the field database says."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import rule_ids, run_events
from shellsieve.compile.database import Pattern, compile_database
from shellsieve.compile.globs import literal_test
from shellsieve.compile.regex import ONE, SENTINEL, field_patterns, wildcard_parts
from shellsieve.compile.ruleset import compile_rules
from shellsieve.diagnostics import Location
from shellsieve.model.expr import Op, Predicate
from shellsieve.model.rule import Rule

# Letters whose case forms differ between ASCII folding and Python's (Kelvin sign, long s, sharp s),
# the wildcard characters and their escape, and a few plain ones.
_ALPHABET = "abkKsS\u212a\u017f\u00df\u00e9\u00c9*?\\/. -"
_OPS = [Op.CONTAINS, Op.STARTSWITH, Op.ENDSWITH, Op.WILDCARD]


def _scan(pred: Predicate, value: str) -> bool:
    """The field database's verdict: any of the predicate's patterns matches the value."""
    db = compile_database([Pattern(fp.expression, fp.flags, None) for fp in field_patterns(pred)])
    hits: list[int] = []
    db.scan(SENTINEL + value.encode("utf-8", "surrogatepass"),
            match_event_handler=lambda i, *_: hits.append(i) and None)
    return bool(hits)


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(_OPS), case_sensitive=st.booleans(),
       values=st.lists(st.text(_ALPHABET, max_size=5), min_size=1, max_size=3),
       value=st.text(_ALPHABET, max_size=12))
def test_a_python_test_agrees_with_the_field_patterns(op: Op, case_sensitive: bool, values: list[str],
                                                      value: str) -> None:
    pred = Predicate("process.command_line", op, tuple(values), case_sensitive)
    literal = literal_test(pred)
    if literal is None:
        ones = op is Op.WILDCARD and any(kind == ONE for v in values for kind, _ in wildcard_parts(v))
        assert ones or not all(v.isascii() for v in values)
        return
    test, lower = literal
    assert lower is not case_sensitive
    if lower and not value.isascii():
        return  # the confirm leaves it to the field scan (test below)
    assert test(value.lower() if lower else value) is _scan(pred, value)


@settings(max_examples=400, deadline=None)
@given(case_sensitive=st.booleans(), pattern=st.text("ab*", max_size=7), value=st.text("abAB", max_size=8))
def test_globs_place_each_literal_after_the_last(case_sensitive: bool, pattern: str, value: str) -> None:
    """A small alphabet, so that literals repeat and overlap: the placement must be the greedy one."""
    pred = Predicate("process.command_line", Op.WILDCARD, (pattern,), case_sensitive)
    test, lower = literal_test(pred)  # type: ignore[misc]
    assert test(value.lower() if lower else value) is _scan(pred, value)


@pytest.mark.parametrize(("op", "pattern", "value", "hit"), [
    (Op.WILDCARD, "/tmp/*", "/tmp/x", True), (Op.WILDCARD, "/tmp/*", "/TMP/x", True),
    (Op.WILDCARD, "*a*b*", "xbxa", False), (Op.WILDCARD, "*a*b*", "xaxb", True),
    (Op.WILDCARD, "ab*ba", "aba", False),  # head and tail may not share a byte
    (Op.WILDCARD, "*a*a*", "bab", False), (Op.WILDCARD, "*a*a*", "aba", True),  # nor two middle literals
    (Op.WILDCARD, r"a\*", "ab", False), (Op.WILDCARD, r"a\*", "a*", True),
    (Op.CONTAINS, "k", "\u212a", False),  # Hyperscan folds ASCII only: the Kelvin sign is no k
    (Op.CONTAINS, "k", "x\u212a K", True),
    (Op.STARTSWITH, "s", "\u017fx", False), (Op.ENDSWITH, "ss", "\u00df", False),
])
def test_the_confirm_gives_the_field_database_verdict(op: Op, pattern: str, value: str, hit: bool) -> None:
    """End to end through compile_rules and the block matcher: a non-ASCII value of a caseless
    predicate is left to the field scan, whose ASCII-only folding `str.lower` does not share."""
    pred = Predicate("process.command_line", op, (pattern,), False)
    assert _scan(pred, value) is hit
    ruleset, diags = compile_rules([Rule(id="r", name="r", ruleset="sigma", location=Location("t"), query=pred)])
    assert not diags
    assert rule_ids(run_events(ruleset, [{"process": {"command_line": value}}])[0]) == (["r"] if hit else [])


def test_regexes_and_single_characters_stay_with_the_field_database() -> None:
    assert literal_test(Predicate("process.name", Op.REGEX, ("a.c",))) is None
    assert literal_test(Predicate("process.name", Op.WILDCARD, ("a?c",))) is None
    assert literal_test(Predicate("process.name", Op.CONTAINS, ("\u0432",))) is None
    for op in _OPS:  # plain literals, `*` and escapes are decided in Python
        assert literal_test(Predicate("process.name", op, ("a", r"a\?c*", "*b*"))) is not None
