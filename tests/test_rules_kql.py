"""KQL translation: exact, case-sensitive keyword matching, phrases, wildcards, precedence."""

from __future__ import annotations

import pytest

from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import AllOf, AnyOf, Not, Op, Predicate
from shellsieve.rules.kql import parse_kql


class TestValues:
    def test_seed_query_structure(self) -> None:
        """The seed's KQL rule becomes an AND of five case-sensitive equality predicates."""
        q = parse_kql('event.category:process and host.os.type:linux and event.type:(start or process_started) and\n'
                      'process.name:(bash or dash or ash or zsh or "python*" or "perl*" or "php*") and\n'
                      'process.parent.name:("apache" or "nginx" or "www" or "apache2" or "httpd" or "www-data")')
        assert isinstance(q, AllOf) and len(q.terms) == 5
        names = q.terms[3]
        assert names == Predicate("process.name", Op.EQ,
                                  ("bash", "dash", "ash", "zsh", "python*", "perl*", "php*"), True)

    def test_quoted_star_is_literal_unquoted_is_wildcard(self) -> None:
        """A quoted value is a phrase (its * is literal); an unquoted * is a wildcard."""
        assert parse_kql('a:"x*"') == Predicate("a", Op.EQ, ("x*",), True)
        assert parse_kql("a:x*") == Predicate("a", Op.WILDCARD, ("x*",), True)
        assert parse_kql(r"a:x\*y*") == Predicate("a", Op.WILDCARD, (r"x\*y*",), True)
        assert parse_kql("a:b?c*") == Predicate("a", Op.WILDCARD, (r"b\?c*",), True)

    def test_exists_and_ranges(self) -> None:
        """`field:*` is exists; comparison operators are numeric ranges."""
        assert parse_kql("a:*") == Predicate("a", Op.EXISTS)
        assert parse_kql("a >= 3") == Predicate("a", Op.GE, (3,))
        assert parse_kql("a < 2.5") == Predicate("a", Op.LT, (2.5,))

    def test_unquoted_numbers_and_booleans_keep_their_type_too(self) -> None:
        """An unquoted 4625 or true matches the string and the typed value."""
        assert parse_kql("a:4625") == Predicate("a", Op.EQ, ("4625", 4625), True)
        assert parse_kql("a:TRUE") == Predicate("a", Op.EQ, ("TRUE", True), True)


class TestBoolean:
    def test_precedence_not_and_or(self) -> None:
        """not binds tighter than and, and tighter than or; keywords ignore case."""
        q = parse_kql("a:1 OR b:2 AND NOT c:3")
        assert isinstance(q, AnyOf) and isinstance(q.terms[1], AllOf)
        assert isinstance(q.terms[1].terms[1], Not)

    def test_value_list_with_not(self) -> None:
        """and / not inside a value list apply to the same field."""
        q = parse_kql("a:(x and not y)")
        assert q == AllOf((Predicate("a", Op.EQ, ("x",), True), Not(Predicate("a", Op.EQ, ("y",), True))))

    def test_bare_value_does_not_swallow_and(self) -> None:
        """`a:x and b:y` is two clauses, not a list of values for a."""
        q = parse_kql("a:x and b:y")
        assert isinstance(q, AllOf) and [t.field for t in q.terms] == ["a", "b"]  # type: ignore[union-attr]


class TestRefused:
    @pytest.mark.parametrize(("query", "construct"), [
        ("hello", "hello"), ("process.*:x", "process.*"), ("a:{b:1}", "a:{...}"), ("a:(x", "end of query"),
    ])
    def test_unsupported(self, query: str, construct: str) -> None:
        """Free text, wildcard field names, nested queries and syntax errors name the construct."""
        with pytest.raises(UnsupportedError) as exc:
            parse_kql(query)
        assert exc.value.construct == construct


def _kql_matches(query: str, event: dict[str, object]) -> bool:
    """Run one KQL rule through the compiled matcher."""
    from conftest import rule_ids, run_events

    from shellsieve.compile.ruleset import compile_rules
    from shellsieve.diagnostics import Location
    from shellsieve.model.rule import Rule

    rule = Rule(id="t", name="t", ruleset="elastic", query=parse_kql(query), location=Location("t"))
    ruleset, diags = compile_rules([rule])
    assert not [d for d in diags if d.severity == "error"]
    return rule_ids(run_events(ruleset, [event])[0]) == ["t"]


class TestElasticGrammar:
    """Token rules of Elastic's own KQL grammar (detection-rules lib/kql/kql/kql.g)."""

    def test_wildcard_value_spans_spaces(self) -> None:
        """`* curl*` is ONE wildcard value (kql.g WILDCARD_LITERAL), whitespace included, newlines too."""
        assert parse_kql("a:(* curl* or *wget*)") == Predicate("a", Op.WILDCARD, ("* curl*", "*wget*"), True)
        assert parse_kql("a:(*x.xml\n  */y.json or z)") == AnyOf((
            Predicate("a", Op.WILDCARD, ("*x.xml\n  */y.json",), True), Predicate("a", Op.EQ, ("z",), True)))

    def test_words_without_wildcard_need_quotes(self) -> None:
        """Two bare words are not one value in kql.g; the rule is refused, not guessed."""
        with pytest.raises(UnsupportedError, match="need a wildcard or quotes"):
            parse_kql("a:(x y)")

    @pytest.mark.parametrize(("cmd", "hit"), [(["/usr/bin/curl", "x"], False), (["sh", "-c", "x curl y"], True)])
    def test_spaced_wildcard_matches_an_argument(self, cmd: list[str], hit: bool) -> None:
        assert _kql_matches("process.args:* curl*", {"process": {"args": cmd}}) is hit


class TestFieldTypes:
    @pytest.mark.parametrize(("message", "hit"), [
        ("kernel: nginx[12]: segfault at 0", True),
        ("SEGFAULT in nginx", True),
        ("segfaults in nginx", False),  # a word is matched whole, as the analyser splits it
        ("segfault in nginx-x", True),  # `-` splits words
        ("segfault in rc.nginx", False),  # `.` between letters joins them
        ("nginx ok", False),
    ])
    def test_text_field_unquoted_is_any_word(self, message: str, hit: bool) -> None:
        """`message` is analysed: an unquoted value matches a whole word, case-insensitively."""
        assert _kql_matches("message:(segfault and nginx)", {"message": message}) is hit

    @pytest.mark.parametrize(("message", "hit"), [
        ("x: Started With  executable-stack!", True),
        ("started with executable", False),
        ("started with an executable stack", False),
    ])
    def test_text_field_quoted_is_phrase(self, message: str, hit: bool) -> None:
        """A quoted value on a text field is a phrase: its words in a row, any separators between."""
        assert _kql_matches('message:"started with executable stack"', {"message": message}) is hit

    @pytest.mark.parametrize(("ip", "hit"), [("10.1.2.3", True), ("11.0.0.1", False), ("fe80::1", True)])
    def test_ip_field_takes_cidr(self, ip: str, hit: bool) -> None:
        """ip fields take networks, as Elasticsearch's ip type does."""
        assert parse_kql("destination.ip:10.0.0.0/8") == Predicate("destination.ip", Op.CIDR, ("10.0.0.0/8",))
        assert _kql_matches('destination.ip:(10.0.0.0/8 or "fe80::/10")', {"destination": {"ip": ip}}) is hit
