"""compile/regex_tree.py builds the tree `re` builds, and anchors derived from it stay as they were.

tests/regex_anchors.json holds, for every regex of the shipped and public rules, the anchors
compile/anchors.py derived while it still read Python's private `re._parser` tree (generated with
that code: `python tests/test_regex_tree.py` rewrites it from the current code). A pattern a rule
adds later is added by the same command, once its anchors have been checked.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from shellsieve.compile.anchors import Literal, predicate_literals
from shellsieve.compile.regex_tree import (MAXWIDTH, AnyChar, Assert, At, Atomic, Branch, Category, Char, Flag, Group,
                                           GroupRef, GroupRefExists, NotChar, Range, Repeat, RepeatKind, Set,
                                           min_width, parse)
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate
from shellsieve.model.rule import Sequence
from shellsieve.rules.discover import load_rules, shipped_patterns

ROOT = Path(__file__).resolve().parents[1]
RULESETS = ROOT.parent / "shared" / "rulesets"
PUBLIC = [RULESETS / "sigma", RULESETS / "elastic" / "linux"]
GOLDEN = Path(__file__).with_name("regex_anchors.json")
FIELD = "process.command_line"


def _items(pattern: str) -> tuple[Any, ...]:
    parsed = parse(pattern)
    assert parsed is not None, pattern
    return parsed.items


a, b, c = Char(ord("a")), Char(ord("b")), Char(ord("c"))


class TestParse:
    @pytest.mark.parametrize(("pattern", "items"), [
        ("ab", (a, b)),
        (r"\.\-\/", (Char(ord(".")), Char(ord("-")), Char(ord("/")))),
        (r"\n\t\r\f\v\a\0\x41\u00e9\U0001F600\N{EM DASH}\101\\",
         tuple(Char(x) for x in (10, 9, 13, 12, 11, 7, 0, 0x41, 0xE9, 0x1F600, 0x2014, 0o101, 92))),
        (r"\d\W", (Set((Category.DIGIT,)), Set((Category.NOT_WORD,)))),
        (r"\A^\b\B$\Z", (At.BEGINNING_STRING, At.BEGINNING, At.BOUNDARY, At.NON_BOUNDARY, At.END, At.END_STRING)),
        (".", (AnyChar(),)),
    ])
    def test_characters_escapes_and_positions(self, pattern: str, items: tuple[Any, ...]) -> None:
        """Escapes give characters, `\\d`-style ones a set of a category, `\\A \\b ^ $` positions."""
        assert _items(pattern) == items

    @pytest.mark.parametrize(("pattern", "items"), [
        ("[ab]", (Set((a, b)),)),
        ("[a]", (a,)),
        ("[^a]", (NotChar(ord("a")),)),
        ("[^ab]", (Set((a, b), negate=True),)),
        ("[]a]", (Set((Char(ord("]")), a)),)),
        ("[a-c\\d-]", (Set((Range(ord("a"), ord("c")), Category.DIGIT, Char(ord("-")))),)),
        ("[\\b\\]]", (Set((Char(8), Char(ord("]")))),)),
        ("[aa]", (a,)),
    ])
    def test_classes(self, pattern: str, items: tuple[Any, ...]) -> None:
        """A class of one character is that character (or NotChar); `]` first is literal; members deduplicated."""
        assert _items(pattern) == items

    def test_groups(self) -> None:
        """Capturing groups are numbered; a plain non-capturing group is spliced; named ones refer back."""
        assert _items("(a)(?:b)") == (Group(1, Flag(0), Flag(0), (a,)), b)
        assert _items("(?P<n>ab)(?P=n)\\1") == (Group(1, Flag(0), Flag(0), (a, b)), GroupRef(1, 2), GroupRef(1, 2))
        assert _items("(?i:a)(?-s:b)") == (Group(None, Flag.IGNORECASE, Flag(0), (a,)),
                                           Group(None, Flag(0), Flag.DOTALL, (b,)))
        assert _items("(?>a)") == (Atomic((a,)),)
        assert _items("a(?#note)b") == (a, b)
        assert _items("(a)(?(1)b|c)") == (Group(1, Flag(0), Flag(0), (a,)), GroupRefExists(1, (b,), (c,)))

    def test_lookarounds(self) -> None:
        """Look-ahead and look-behind, positive and negative."""
        assert _items("(?=a)(?!b)(?<=c)(?<!a)") == (Assert(False, False, (a,)), Assert(False, True, (b,)),
                                                    Assert(True, False, (c,)), Assert(True, True, (a,)))

    def test_global_flags(self) -> None:
        """Flags at the start are global; UNICODE is implied unless ASCII."""
        parsed = parse("(?is)a")
        assert parsed is not None and parsed.items == (a,)
        assert parsed.flags == Flag.IGNORECASE | Flag.DOTALL | Flag.UNICODE
        assert parse("(?a)a").flags == Flag.ASCII  # type: ignore[union-attr]

    def test_verbose(self) -> None:
        """With `x`, blanks and `#` comments are skipped outside classes."""
        assert _items("(?x) a  b # comment\n [ ]") == (a, b, Char(ord(" ")))

    @pytest.mark.parametrize(("pattern", "items"), [
        ("a*", (Repeat(0, None, (a,)),)),
        ("a+?", (Repeat(1, None, (a,), RepeatKind.LAZY),)),
        ("a?+", (Repeat(0, 1, (a,), RepeatKind.POSSESSIVE),)),
        ("a{2}", (Repeat(2, 2, (a,)),)),
        ("a{2,}", (Repeat(2, None, (a,)),)),
        ("a{,3}", (Repeat(0, 3, (a,)),)),
        ("a{2,3}?", (Repeat(2, 3, (a,), RepeatKind.LAZY),)),
        ("(?:ab)*", (Repeat(0, None, (a, b)),)),
        ("a{", (a, Char(ord("{")))),
        ("a{}", (a, Char(ord("{")), Char(ord("}")))),
        ("a{x}", (a, Char(ord("{")), Char(ord("x")), Char(ord("}")))),
    ])
    def test_quantifiers(self, pattern: str, items: tuple[Any, ...]) -> None:
        """Greedy, lazy and possessive counts; a `{` that is no count is a character."""
        assert _items(pattern) == items

    @pytest.mark.parametrize(("pattern", "items"), [
        ("ab|ac", (a, Set((b, c)))),
        ("abc|abd|ab", (a, b, Branch(((c,), (Char(ord("d")),), ())))),
        ("a|[bc]|\\d", (Set((a, b, c, Category.DIGIT)),)),
        ("a|[^b]", (Branch(((a,), (NotChar(ord("b")),))),)),
        ("a|[^bc]", (Branch(((a,), (Set((b, c), negate=True),))),)),
        ("(a)x|(a)y", (Branch(((Group(1, Flag(0), Flag(0), (a,)), Char(ord("x"))),
                              (Group(2, Flag(0), Flag(0), (a,)), Char(ord("y"))))),)),
        ("a*x|a*y", (Branch(((Repeat(0, None, (a,)), Char(ord("x"))), (Repeat(0, None, (a,)), Char(ord("y"))))),)),
    ])
    def test_alternatives(self, pattern: str, items: tuple[Any, ...]) -> None:
        """A simple common first node moves in front; single characters and sets merge into one set;
        nodes holding a subpattern are never factored (CPython compares them by identity)."""
        assert _items(pattern) == items

    @pytest.mark.parametrize("pattern", [
        "(", ")", "[a", "a**", "*", "^*", "\\", "\\q", "\\8", "\\1", "(a)\\2", "a{3,2}", "a{4294967295}",
        "(?P<1>a)", "(?P=n)", "(?<x)", "a(?i)", "(?L)", "(?au)", "(?t:a)", "(?i-i:a)", "(?(2)a)(b)",
        "\\777", "[\\777]", "[z-a]", "[\\d-z]", "\\x4", "\\N{NO SUCH NAME}", "(?P<n>a)(?P<n>b)", "(a(?<=\\1))",
    ])
    def test_rejected(self, pattern: str) -> None:
        """What `re` refuses parses to None."""
        with pytest.raises((re.error, OverflowError)):  # a{4294967295}: OverflowError
            re.compile(pattern)
        assert parse(pattern) is None

    @pytest.mark.parametrize(("pattern", "width"), [
        ("abc", 3), ("a*b{2,5}", 2), ("(?:ab|c)d", 2), ("(a)\\1", 2), ("(?=abc)x", 1), ("(a)(?(1)bc)", 1),
        ("(?:(?:a{4000000000}){4000000000}){4000000000}x", MAXWIDTH), ("", 0),
    ])
    def test_min_width(self, pattern: str, width: int) -> None:
        """The shortest match, as CPython's getwidth()[0] (capped at 2**64; look-arounds are empty)."""
        assert min_width(_items(pattern)) == width


def _literals(pattern: str, case_sensitive: bool) -> list[dict[str, Any]] | None:
    lits = predicate_literals(Predicate(FIELD, Op.REGEX, (pattern,), case_sensitive), raw=False)
    if lits is None:
        return None
    # every field but `field` (always FIELD) and those left at their default; bytes as latin-1 text
    defaults = Literal._field_defaults
    return [{k: v.decode("latin-1") if isinstance(v, bytes) else v for k, v in lit._asdict().items()
             if k != "field" and (k not in defaults or v != defaults[k])} for lit in lits]


def _derived(pattern: str) -> dict[str, Any]:
    """What anchors.py derives from one regex, matched case-sensitively and caselessly."""
    return {"case_sensitive": _literals(pattern, True), "caseless": _literals(pattern, False)}


def _walk(expr: Expr | Sequence, out: set[str]) -> None:
    if isinstance(expr, Predicate):
        out.update(str(v) for v in expr.values if expr.op is Op.REGEX)
    elif isinstance(expr, (AllOf, AnyOf)):
        for t in expr.terms:
            _walk(t, out)
    elif isinstance(expr, Not):
        _walk(expr.term, out)
    elif isinstance(expr, Sequence):
        for step in expr.steps + ((expr.until,) if expr.until else ()):
            _walk(step.query, out)


def _rule_patterns(paths: list[Path]) -> set[str]:
    rules, _ = load_rules(paths)
    out: set[str] = set()
    for rule in rules:
        _walk(rule.query, out)
    return out


def _golden() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text())  # type: ignore[no-any-return]


class TestAnchorParity:
    def test_every_golden_pattern_derives_the_same_anchors(self) -> None:
        """Each regex of the shipped and public rules gives the anchors recorded with re._parser."""
        golden = _golden()
        assert len(golden) > 100
        diffs = [p for p, want in golden.items() if _derived(p) != want]
        assert not diffs, diffs[:5]

    def test_the_golden_file_covers_the_shipped_rules(self) -> None:
        """A regex a shipped rule adds must be recorded (`python tests/test_regex_tree.py`)."""
        missing = _rule_patterns([shipped_patterns()]) - _golden().keys()
        assert not missing, sorted(missing)

    @pytest.mark.skipif(not all(p.is_dir() for p in PUBLIC), reason=f"{RULESETS} is absent: the shared public "
                        "rulesets are not checked out next to the repo")
    def test_the_golden_file_covers_the_public_rulesets(self) -> None:
        """Every regex of ../shared/rulesets sigma and elastic/linux is recorded."""
        missing = _rule_patterns(PUBLIC) - _golden().keys()
        assert not missing, sorted(missing)


def main() -> None:
    """Rewrite tests/regex_anchors.json from the current anchors.py over all shipped and public rules."""
    patterns = _rule_patterns([shipped_patterns()] + [p for p in PUBLIC if p.is_dir()])
    if GOLDEN.exists():  # also the seeded random patterns recorded with the rules' ones
        patterns |= _golden().keys()
    _write({p: _derived(p) for p in patterns})


def _write(data: dict[str, Any]) -> None:
    """One line per pattern, so a change shows as the lines of the patterns it changes."""
    lines = [f"{json.dumps(p)}: {json.dumps(data[p], sort_keys=True)}" for p in sorted(data)]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"{len(data)} patterns -> {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
