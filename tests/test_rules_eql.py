"""EQL translation keeps Elasticsearch's case rules, array semantics and null handling."""

from __future__ import annotations

from typing import Any

import pytest

from shellsieve.compile.ruleset import compile_rules
from shellsieve.diagnostics import Location
from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import Not, Op, Predicate
from shellsieve.model.rule import Rule, Sequence
from shellsieve.rules.eql import parse_eql

from conftest import rule_ids, run_events


def _matches(query: str, event: dict[str, Any]) -> bool:
    rule = Rule(id="t", name="t", ruleset="elastic", query=parse_eql(query), location=Location("t"))
    ruleset, diags = compile_rules([rule])
    assert not [d for d in diags if d.severity == "error"]
    return rule_ids(run_events(ruleset, [event])[0]) == ["t"]


P = "process where "


class TestOperators:
    @pytest.mark.parametrize(
        ("query", "name", "hit"),
        [
            ('process.name : "Bash"', "bash", True),  # `:` ignores case
            ('process.name == "Bash"', "bash", False),  # `==` does not
            ('process.name like "ba*"', "BASH", False),  # like is case-sensitive
            ('process.name like~ "ba*"', "BASH", True),
            ('process.name like "b?sh"', "bash", True),
            ('process.name like "b?sh"', "bsh", False),
            ('process.name in ("Bash")', "bash", False),
            ('process.name in~ ("Bash")', "bash", True),
            ('process.name : ("x", "ba*")', "bash", True),
            ('process.name regex~ "BA.H"', "bash", True),
            ('process.name regex "ba.h"', "xbash", False),  # regex is whole-value
            ('startsWith(process.name, "ba")', "bash", True),
            ('endsWith(process.name, "SH")', "bash", False),
            ('stringContains(process.name, "as")', "bash", True),
            ('process.name : "C:\\\\Windows\\\\*"', "c:\\windows\\x.exe", True),  # backslash literal
        ],
    )
    def test_string_operators(self, query: str, name: str, hit: bool) -> None:
        """Each EQL string operator has its Elasticsearch case rule and wildcard meaning."""
        assert _matches(P + query, {"event": {"category": ["process"]}, "process": {"name": name}}) is hit

    @pytest.mark.parametrize(
        ("query", "name", "hit"),
        [
            ('process.name : ("x", "BA*")', "bash", True),  # wildcard `:` with a list ignores case
            ('process.name : ("x", "BASH")', "bash", True),
            ('process.name like ("x", "BA*")', "bash", False),  # `like` with a list keeps it
            ('process.name like~ ("x", "BA*")', "bash", True),
            ('process.name in~ ("x", "BASH")', "bash", True),
            ('process.name == "bash"', "bash", True),
        ],
    )
    def test_case_rule_kept_with_lists(self, query: str, name: str, hit: bool) -> None:
        """The case rule eql folds away (`:`, `like`, `like~`, `in~`) survives with several values."""
        assert _matches(P + query, {"event": {"category": ["process"]}, "process": {"name": name}}) is hit

    def test_array_any_element(self) -> None:
        """A predicate on an array field holds when any element does."""
        ev = {"event": {"category": "process"}, "process": {"args": ["nc", "-e", "/bin/sh"]}}
        assert _matches(P + 'process.args : "-E"', ev)
        assert not _matches(P + 'not process.args == "-e"', ev)
        assert not _matches(P + 'process.args != "-e"', ev)

    def test_optional_and_null(self) -> None:
        """`?field` may be absent; `!= null` requires presence; a missing field fails a predicate."""
        ev = {"event": {"category": "process"}, "process": {"name": "java"}}
        assert not _matches(P + '?process.working_directory like "/u0?/*"', ev)
        assert _matches(P + "process.working_directory == null", ev)
        assert not _matches(P + "process.working_directory != null", ev)
        assert _matches(P + 'not process.working_directory like "/x*"', ev)

    @pytest.mark.parametrize(("ip", "hit"), [("10.1.2.3", True), ("127.0.0.9", False), ("::1", False),
                                             ("fe80::1", True), ("not-an-ip", True)])
    def test_cidrmatch(self, ip: str, hit: bool) -> None:
        """cidrmatch over IPv4 and IPv6; a value that is no IP is not in any network."""
        q = 'network where not cidrmatch(destination.ip, "127.0.0.0/8", "::1")'
        assert _matches(q, {"event": {"category": ["network"]}, "destination": {"ip": ip}}) is hit

    @pytest.mark.parametrize(("count", "hit"), [(3, True), (2, False), ("3", True)])
    def test_numeric_compare(self, count: Any, hit: bool) -> None:
        """Numeric comparisons read numbers and numeric strings."""
        ev = {"event": {"category": ["process"]}, "process": {"args_count": count}}
        assert _matches(P + "process.args_count >= 3", ev) is hit

    def test_event_category_filter(self) -> None:
        """`process where` requires event.category process."""
        assert not _matches(P + 'process.name : "bash"', {"event": {"category": ["network"]},
                                                          "process": {"name": "bash"}})


class TestStructure:
    def test_sequence_by_and_maxspan(self) -> None:
        """Sequence-level `by` reaches every step; maxspan units become seconds."""
        s = parse_eql('sequence by host.id with maxspan=2m [process where true] by process.pid '
                      '[network where true] by process.pid')
        assert isinstance(s, Sequence) and s.maxspan == 120
        assert [st.by for st in s.steps] == [("host.id", "process.pid")] * 2

    def test_not_equal_is_negated_equality(self) -> None:
        """`!=` translates to not(==), so on arrays it means no element equals."""
        q = parse_eql(P + 'process.args != "-z"')
        assert isinstance(q, type(q))
        terms = q.terms  # type: ignore[union-attr]
        assert isinstance(terms[1], Not) and isinstance(terms[1].term, Predicate)
        assert terms[1].term.op is Op.EQ and terms[1].term.case_sensitive

    @pytest.mark.parametrize("query", [P + 'process.name : "x" | head 5', P + "length(process.name) > 2 and "
                                       'between(process.name, "a", "b") == "c"'])
    def test_unsupported_constructs_are_refused(self, query: str) -> None:
        """Pipes, unimplemented functions and samples raise UnsupportedError naming the construct."""
        with pytest.raises(UnsupportedError) as exc:
            parse_eql(query)
        assert exc.value.construct


class TestBeyondSeeds:
    def test_runs_expands_to_repeated_steps(self) -> None:
        """`[q] with runs=3` is three copies of the step (Elasticsearch's shorthand)."""
        q = parse_eql('sequence by host.id with maxspan=5s [process where process.name == "x"] with runs=3')
        assert isinstance(q, Sequence) and len(q.steps) == 3 and q.maxspan == 5.0
        assert len({s.query for s in q.steps}) == 1

    def test_runs_needs_three_events(self) -> None:
        """Through the compiled matcher, the third matching event completes the sequence, not the first."""
        q = 'sequence by host.id [process where process.name == "x"] with runs=3'
        rule = Rule(id="r", name="r", ruleset="elastic", query=parse_eql(q), location=Location("t"))
        ruleset, _ = compile_rules([rule])
        events = [{"@timestamp": f"2024-01-01T00:00:0{i}Z", "event": {"category": "process"},
                   "host": {"id": "h"}, "process": {"name": "x"}} for i in range(3)]
        assert [rule_ids(d) for d in run_events(ruleset, events)] == [[], [], ["r"]]

    @pytest.mark.parametrize(("name", "hit"), [("a-bzc", True), ("a-b-z", False), ("-xuq", True), ("^x", False)])
    def test_lucene_negated_class(self, name: str, hit: bool) -> None:
        """`[^-]` is a negated class in Lucene as in PCRE; the whole value must match."""
        assert _matches(P + 'process.name regex "[a-]*-[^-]*[uz][^-]*"', {"event": {"category": "process"},
                                                                         "process": {"name": name}}) is hit

    def test_lucene_caret_is_literal(self) -> None:
        """Lucene has no anchors: `^` outside a class is a plain character."""
        ev = {"event": {"category": "process"}, "process": {"name": "a^b"}}
        assert _matches(P + 'process.name regex "a^b"', ev)
        assert not _matches(P + 'process.name regex "a^b"', {**ev, "process": {"name": "ab"}})

    @pytest.mark.parametrize(("query", "construct"), [
        ("sample by host.id [process where true] [network where true]", "sample by"),
        (P + "startsWith(process.executable, process.command_line)", "startsWith(process.executable, <field>)"),
    ])
    def test_refused_with_reason(self, query: str, construct: str) -> None:
        with pytest.raises(UnsupportedError) as exc:
            parse_eql(query)
        assert exc.value.construct == construct
