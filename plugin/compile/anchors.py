"""Prefilter anchors: what must appear in a raw NDJSON line for a rule to possibly match.

A rule is only evaluated on a line where one of its anchor literals occurs. Literals are taken in
the form canonical JSON escaping gives them (`"` -> `\\"`, `\\` -> `\\\\`, control characters as
`\\n`, `\\t` ...). A line with a non-canonical escape (`\\uXXXX`, `\\/`) could spell any literal
differently, so the ruleset also holds ESCAPE_MARKER: a line where it fires is a candidate for
every rule. So is a line holding a character whose casefold is ASCII or several characters
(fold_marker): a caseless equality compares casefolded strings.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal
from typing import NamedTuple, TypeGuard
from collections.abc import Callable

import msgspec

from shellsieve.compile.raw_regex import raw_regex
from shellsieve.compile.regex import casefolds, literal_regex, wildcard_parts
from shellsieve.compile.regex_tree import (AnyChar, At, Branch, Char, Flag, Group, Node, Parsed, Range, Repeat,
                                           RepeatKind, Set, min_width, parse)
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Op, Predicate

__all__ = ["Literal", "Clause", "anchor_clauses", "predicate_literals", "ESCAPE_MARKER", "json_escaped",
           "marker_pattern"]

# An odd run of backslashes before `u` or `/`: a \uXXXX or \/ escape in a JSON string.
ESCAPE_MARKER = rb"(?:\A|[^\\])(?:\\\\)*\\[u/]"


@functools.cache
def fold_marker() -> bytes:
    """Characters a caseless equality folds to ASCII (`K` Kelvin sign, `ſ`) or to several
    characters (`ß` -> "ss", ligatures): a line holding one could equal any literal under
    casefold, so it is a candidate for every rule, as with an escape."""
    chars = [c for c, f in casefolds() if f.isascii() or len(f) > 1]
    return b"|".join(b"".join(b"\\x%02x" % b for b in c.encode()) for c in chars)


def marker_pattern() -> bytes:
    """The line-database pattern of every line an anchor cannot speak for (ESCAPE_MARKER, fold_marker)."""
    return ESCAPE_MARKER + b"|" + fold_marker()


class Literal(NamedTuple):
    text: bytes  # as it appears in the raw line
    caseless: bool
    common: bool = False  # a value of a low-cardinality field: in nearly every line (LOW_CARDINALITY)
    field: str = ""  # the field whose value holds it: literals of two fields never share a byte
    regex: bytes = b""  # instead of `text`: a Hyperscan regex over bytes JSON never escapes (_safe_regex)
    size: int = 0  # the regex's shortest match, its weight when ranked against literals
    key: bytes = b""  # the JSON key whose value (a string, a number, an array) holds it (run/keys.py)
    number: bool = False  # `regex` spells a number: its hit lies inside a number or a numeric string
    shell: bool = False  # a shell's name or path: in most lines of a Linux host (SHELLS)
    ordered: bool = False  # `regex` is a wildcard's parts in order (_ordered_parts): joins another field's set

    @property
    def weight(self) -> int:
        return self.size if self.regex else len(self.text)


def json_escaped(text: str) -> bytes:
    """`text` as canonical JSON escaping writes it inside a string, without the quotes."""
    return msgspec.json.encode(text)[1:-1]


def _quoted(value: str) -> bytes:
    return msgspec.json.encode(value)


def _best(cands: list[bytes]) -> bytes | None:
    cands = [c for c in cands if c]
    return max(cands, key=len) if cands else None


def _parse(pattern: str) -> Parsed | None:
    # EQL regexes are stored as `(?s)\A(?:...)\z`; Python's parser spells the end `\Z`. An odd run
    # of backslashes before the `z` makes it `\z` (an even one is an escaped backslash, then `z`).
    if pattern.endswith("\\z") and (len(pattern) - 1 - len(pattern[:-1].rstrip("\\"))) % 2 == 1:
        pattern = pattern[:-2] + "\\Z"
    return parse(pattern)


def _plain(node: Node | None) -> TypeGuard[Group]:
    """A capturing group that changes no flags (a non-capturing one without flags is spliced by the parser)."""
    return isinstance(node, Group) and not node.add_flags and not node.del_flags


def _regex_literal(pattern: str, caseless: bool) -> list[Literal] | None:
    """Literals of which every match of `pattern` contains one; alternatives at top level give several."""
    parsed = _parse(pattern)
    if parsed is None:
        return None
    caseless = caseless or bool(parsed.flags & Flag.IGNORECASE)
    items = list(parsed.items)
    if len(items) == 1 and isinstance(items[0], Branch):
        out: list[Literal] = []
        for branch in items[0].alternatives:
            lits = _sequence_literals(list(branch), caseless)
            if lits is None:
                return None
            out.extend(lits)
        return out
    return _sequence_literals(items, caseless)


MAX_SPELLINGS = 8  # strings a run of small alternatives (`-(W|R)`, `[xX]`) may expand to


def _spellings(node: Node) -> list[str] | None:
    """The strings one regex node can match, when they are fixed and few."""
    if isinstance(node, Char):
        return [chr(node.code)]
    if (isinstance(node, Set) and not node.negate and len(node.members) <= MAX_SPELLINGS
            and all(isinstance(m, Char) for m in node.members)):
        return [chr(m.code) for m in node.members]  # type: ignore[union-attr]  # all Char
    if _plain(node):
        return _spelled(list(node.items))
    if isinstance(node, Branch):
        out: list[str] = []
        for branch in node.alternatives:
            spelled = _spelled(list(branch))
            if spelled is None:
                return None
            out.extend(spelled)
        return out if len(out) <= MAX_SPELLINGS else None
    return None


def _spelled(items: list[Node]) -> list[str] | None:
    out = [""]
    for node in items:
        opts = _spellings(node)
        if opts is None or len(out) * len(opts) > MAX_SPELLINGS:
            return None
        out = [a + b for a in out for b in opts]
    return out


def _sequence_literals(items: list[Node], caseless: bool) -> list[Literal] | None:
    best = _best_spellings(items)
    return [Literal(json_escaped(x), caseless) for x in best] if best else None


def _best_spellings(items: list[Node]) -> list[str] | None:
    """The best literal set of a concatenation: the spellings of a run of fixed nodes (`-(W|R)`
    gives `-W`, `-R`), or the best set of a plain group inside it. Best: the longest shortest member."""
    cands: list[list[str]] = []
    run = [""]
    for node in [*items, None]:
        opts = _spellings(node) if node is not None else None
        if opts is not None and len(run) * len(opts) <= MAX_SPELLINGS:
            run = [a + b for a in run for b in opts]
            continue
        cands.append(run)
        run = opts if opts is not None else [""]
        if opts is None and _plain(node):
            inner = _best_spellings(list(node.items))
            if inner is not None:
                cands.append(inner)
    cands = [c for c in cands if all(c)]  # one empty spelling would match anywhere
    if not cands:
        return None
    best = max(cands, key=_rank)
    return list(dict.fromkeys(best))


def _rank(spellings: list[str]) -> tuple[int, int]:
    """Longest shortest member first, then fewest members."""
    return min(len(x) for x in spellings), -len(spellings)


# Bytes canonical JSON writes as they are inside a string: printable ASCII but `"` and `\`. Any
# other spelling of them (`\u0041`, `\/`) fires the escape marker.
_SAFE = frozenset(range(0x20, 0x7F)) - {0x22, 0x5C}
_LETTERS = frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B))
MIN_REGEX_WIDTH = 4  # shortest match of a regex anchor: shorter ones fire on too many lines
MIN_SELECTIVE = 2  # a raw regex with fewer nearly fixed characters than this anchors nothing


def _safe_regex(pattern: str) -> tuple[bytes, int] | None:
    r"""A regex whose every match is spelled the same in the raw line: (a Hyperscan regex for it,
    its shortest match), or None. Only literals and classes of _SAFE bytes, repeats, groups and
    alternatives; leading and trailing anchors and `.*` are left out (a weaker condition). Not
    `\d`, `\w` or ignore-case letters: Python's match non-ASCII digits and letters (`K` for `k`)."""
    parsed = _parse(pattern)
    if parsed is None:
        return None
    caseless = bool(parsed.flags & Flag.IGNORECASE)
    items = list(parsed.items)

    def trim(items: list[Node]) -> list[Node]:
        while items and (isinstance(items[0], At) or _any_run(items[0])):
            items = items[1:]
        while items and (isinstance(items[-1], At) or _any_run(items[-1])):
            items = items[:-1]
        return items

    items = trim(items)
    if len(items) == 1 and _plain(items[0]):
        items = trim(list(items[0].items))
    out = _unparse(items, caseless)
    if out is None:
        return None
    width = min_width(items)
    return (out, width) if width >= MIN_REGEX_WIDTH else None


_GREEDY_OR_LAZY = (RepeatKind.GREEDY, RepeatKind.LAZY)


def _any_run(node: Node) -> bool:
    return isinstance(node, Repeat) and node.kind in _GREEDY_OR_LAZY and node.items == (AnyChar(),)


def _unparse(items: list[Node], caseless: bool) -> bytes | None:
    out = []
    for node in items:
        if isinstance(node, Char):
            if node.code not in _SAFE or (caseless and node.code in _LETTERS):
                return None
            out.append(b"\\x%02x" % node.code)
        elif isinstance(node, Set):
            if node.negate:
                return None
            members = []
            for m in node.members:
                if isinstance(m, Char):
                    lo, hi = m.code, m.code
                elif isinstance(m, Range):
                    lo, hi = m.lo, m.hi
                else:
                    return None  # a category
                if not all(c in _SAFE and not (caseless and c in _LETTERS) for c in range(lo, hi + 1)):
                    return None  # a byte JSON escapes
                members.append(b"\\x%02x-\\x%02x" % (lo, hi))
            out.append(b"[" + b"".join(members) + b"]")
        elif isinstance(node, Repeat) and node.kind in _GREEDY_OR_LAZY:
            inner = _unparse(list(node.items), caseless)
            if inner is None:
                return None
            count = b"{%d,}" % node.lo if node.hi is None else b"{%d,%d}" % (node.lo, node.hi)
            out.append(b"(?:" + inner + b")" + count)
        elif _plain(node):
            inner = _unparse(list(node.items), caseless)
            if inner is None:
                return None
            out.append(b"(?:" + inner + b")")
        elif isinstance(node, Branch):
            alts = [_unparse(list(b), caseless) for b in node.alternatives]
            if any(a is None for a in alts):
                return None
            out.append(b"(?:" + b"|".join(alts) + b")")  # type: ignore[arg-type]  # no None: checked above
        else:
            return None
    return b"".join(out) if out else None


# Fields with a handful of values in any corpus ("process", "start", "linux"): literals on them
# occur in nearly every line, so they anchor a rule only when nothing else can.
LOW_CARDINALITY = frozenset({
    "event.category", "event.type", "event.kind", "event.outcome", "event.dataset", "event.module",
    "event.action", "host.os.type", "host.os.family", "host.os.platform", "agent.type",
    "data_stream.dataset",
})


# Around a number literal: what precedes a JSON number (`:`, `[`, `,`, blanks) or a numeric string
# (`"`), and what follows one.
_NUMBER_BEFORE = rb'[":\[, \t\r]-?(?:0\.0*)?'
_NUMBER_AFTER = rb'0*\.?0*(?:[eE][+\-]?[0-9]+)?[",\]} \t\r]'


def _number_regex(v: int | float) -> tuple[bytes, int] | None:
    r"""Every JSON spelling of the number `v` and its text as a regex, as confirm compares numbers by
    value: the significant digits with an optional point between them, leading `0.0...`, trailing
    zeros, an exponent. 33 is `33`, `33.0`, `3.3e1`, `330e-1` or the string "33", never `1033`."""
    if not math.isfinite(v):
        return None  # no JSON number spells inf or nan: no anchor, the rule is simply weaker
    digits = Decimal(repr(v)).normalize().as_tuple().digits
    return _NUMBER_BEFORE + rb"\.?".join(str(d).encode() for d in digits) + _NUMBER_AFTER, len(digits) + 2


# A number at least n (1 <= n <= 9) as JSON writes it after its key: a digit from n, two digits or
# more, or an exponent; a string (confirm reads "12" as a number, float() takes " 1_0" too) or an
# array (any element) always passes. A negative number, 0, or a small integer does not.
_LOWER_BOUND = rb'%s"[ \t\r\n]*:[ \t\r\n]*(?:[\["]|[%d-9]|[1-9][0-9]|[0-9.]+[eE])'
MAX_LOWER_BOUND = 9


def _at_least(pred: Predicate) -> Literal | None:
    """`args_count >= 3` as a regex over its key and value: a bare `telnet` (one argument) is not
    the `telnet HOST PORT` the reverse-shell sequence waits for. The key's last part is in the
    regex (`"process.args_count"` holds `args_count"` too); a nested key of the same name passes
    as well, a weaker condition that the key check then narrows."""
    v = pred.values[0] if len(pred.values) == 1 else None
    key = _key(pred)
    if not key or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    n = math.floor(v)  # >= 2.5 holds for 2.7: its first digit is 2
    if not 1 <= n <= MAX_LOWER_BOUND:
        return None
    return Literal(b"", False, regex=_LOWER_BOUND % (key, n), size=len(key) + 3, number=True)


# Between two parts of one wildcard value: anything but the line's end. Kept inside one JSON string
# (`(?:[^"\\\n]|\\.)*`), the public line database scanned ~25% slower for the same candidate lines.
_WILD_GAP = rb"[^\n]*"


# A part this long anchors well alone. Every multi-part wildcard in order (437 regexes) made the
# public line database scan 45% slower: a value's first part that most lines hold (`"/home/` of
# `/home/*/.zshrc`, `"http`, ` -e`) keeps the gap after it live over the rest of the line. So only
# contains-style values (`*a*b*c*`) of three or more parts, each short but not a single character
# (`|`), the first a word, get one: 2 regexes of the public collections, no change past the noise.
STRONG_PART = 8
FIRST_PART = 6  # and the first part rare enough: a word, not a path's start or a blank


def _ordered_parts(parts: list[tuple[str, str]], caseless: bool) -> Literal | None:
    """A wildcard `*a*b*c*` of three or more short parts (`*import*pty*spawn*`) as one regex anchor: its
    parts in order in the line. Its best part alone (`import`) fired on every `python3 -c
    'import sys ...'` of a host; in order, only where the whole value can match. Else None."""
    lits = [json_escaped(text) for kind, text in parts if kind == "lit"]
    if (len(lits) < 3 or parts[0][0] == "lit" or parts[-1][0] == "lit"
            or max(map(len, lits)) >= STRONG_PART or min(map(len, lits)) < 3
            or len(lits[0]) < FIRST_PART or lits[0][:1] in b" /"):
        return None
    body = [literal_regex(text.decode("utf-8"), caseless, escape_all=True, folds=True) for text in lits]
    return Literal(b"", caseless, regex=_WILD_GAP.join(body), size=sum(map(len, lits)), ordered=True)


def predicate_literals(pred: Predicate, raw: bool = True) -> list[Literal] | None:
    """Raw-line literals of which at least one occurs wherever `pred` holds; None if none can be named.
    `raw`: a regex anchors as itself written over raw lines (compile/raw_regex.py), else by its
    literals when they are long enough: only literals join another set of a clause (compile/lines.py)."""
    caseless = not pred.case_sensitive
    out: list[Literal] = []
    for v in pred.values:
        lit: bytes | None
        if pred.op is Op.EQ:
            if isinstance(v, bool):
                lit = b"true" if v else b"false"
            elif isinstance(v, (int, float)):
                num = _number_regex(v)
                if num is None:
                    return None
                out.append(Literal(b"", False, regex=num[0], size=num[1], number=True))
                continue
            else:
                # confirm compares casefolded strings: "STRASSE" equals "straße" (fold_marker)
                lit = _quoted(str(v) if pred.case_sensitive else str(v).casefold())
        elif pred.op is Op.CONTAINS:
            lit = json_escaped(str(v))
        elif pred.op is Op.STARTSWITH:
            lit = _quoted(str(v))[:-1]
        elif pred.op is Op.ENDSWITH:
            lit = _quoted(str(v))[1:]
        elif pred.op is Op.WILDCARD:
            parts = wildcard_parts(str(v))
            ordered = _ordered_parts(parts, caseless)
            if ordered is not None:
                out.append(ordered)
                continue
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
        elif pred.op in (Op.GE, Op.GT):
            bound = _at_least(pred)
            if bound is None:
                return None
            out.append(bound)
            continue
        elif pred.op is Op.REGEX:
            lits = _regex_literal(str(v), caseless)
            parsed = _parse(str(v)) if raw else None
            whole = raw_regex(parsed, caseless) if parsed is not None else None
            weak = lits is None or min(len(x.text) for x in lits) < MIN_REGEX_WIDTH
            if whole is not None and (whole[1] >= MIN_REGEX_WIDTH or (weak and whole[1] >= MIN_SELECTIVE)):
                # `\bnc\b[^|;&\n]*\s(-e|-c)...` holds no literal better than `nc`, which every
                # `nc -z host port` holds: the whole regex, written over raw lines, anchors as
                # selectively as the rule reads. Its weight is its selective width: an address
                # regex ranks below `"wget"` in the same conjunction.
                lits = [Literal(b"", caseless, regex=whole[0], size=whole[1])]
            elif lits is None or min(len(x.text) for x in lits) < MIN_REGEX_WIDTH:
                # `[0-9]{1,3}\.[0-9]{1,3}...:` holds no literal worth the name, but is itself one
                safe = _safe_regex(str(v))
                if safe is not None:
                    lits = [Literal(b"", caseless, regex=safe[0], size=safe[1])]
            if lits is None:
                return None
            out.extend(lits)
            continue
        else:
            return None
        if not lit:
            return None
        out.append(Literal(lit, caseless))
    low = pred.field in LOW_CARDINALITY
    key = _key(pred)
    # a key check narrows a shell's name little (every parent is a shell) and costs a check a hit
    return [lit._replace(common=low, shell=(shell := _is_shell(lit.text)), field=pred.field,
                         key=key if (lit.text or lit.number) and not (low or shell) else b"")
            for lit in out] or None


# Shells parent nearly every process of a Linux host: `process.parent.name : "bash"` alone made 17%
# of a Defend corpus candidates, `/bin/bash` as a parent's executable is in most lines.
SHELLS = frozenset({b"bash", b"sh", b"dash", b"zsh", b"ksh", b"csh", b"tcsh", b"fish", b"ash"})


def _is_shell(text: bytes) -> bool:
    """A literal that is a shell's name or path, whole (`"bash"`) or at a value's end (`/bin/sh"`)."""
    if not text.endswith(b'"'):
        return False
    return text.strip(b'"').rpartition(b"/")[2].lower() in SHELLS


# What the key of a string field may be spelled with and still be matched as bytes: JSON never
# escapes these (a `\uXXXX` spelling fires the escape marker).
_KEY_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@")


def _key(pred: Predicate) -> bytes:
    """The last key of `pred.field` when the predicate holds only on a string or a number (or an
    array of them) under that key. An index path (`process.args.0`) reads inside an array: not
    qualified."""
    if pred.op is Op.EQ and any(isinstance(v, bool) for v in pred.values):
        return b""
    parts = pred.field.split(".")
    if any(p.isdigit() for p in parts):
        return b""
    key = parts[-1].encode()
    return key if key and set(key) <= _KEY_BYTES else b""


# A rule's anchor as a condition in disjunctive form: the line must hold, for some clause, at least
# one literal of every set in it. One literal set per rule (as anchors first were) let common values through:
# the seed sequence's `process.parent.name : "bash"` alone made 17% of a Defend corpus candidates.
# Conjunctions stay small: compile/lines.py writes each clause as one regex of every order of its sets.
Clause = tuple[tuple[Literal, ...], ...]
MAX_CLAUSES = 16
MAX_SETS = 2  # literal sets a clause needs before less selective ones stop joining


def _set_score(lits: tuple[Literal, ...]) -> tuple[bool, bool, int, int]:
    """How selective a literal set is (higher: fewer lines hold one of its literals)."""
    return (not any(lit.common for lit in lits), not any(lit.shell for lit in lits),
            min(lit.weight for lit in lits), -len(lits))


def anchor_clauses(expr: Expr, raw: bool = True, joins: Callable[[Clause], bool] | None = None
                   ) -> list[Clause] | None:
    """Clauses of which one must hold in a line for `expr` to hold there, or None. Every step only
    weakens the condition (a dropped conjunct, a capped product), so it stays necessary.

    `raw`: a regex anchors as a whole (compile/raw_regex.py). A conjunction whose every clause
    `joins` (compile/lines.py can join two of its sets into one regex) anchors its regexes by
    their literals instead: `fsockopen` and `exec(` in one line narrow more than either regex alone,
    and a regex anchor is never joined."""
    if isinstance(expr, Predicate):
        lits = predicate_literals(expr, raw)
        # one order for a set: the same values listed in another order by another rule give the
        # same pattern, found once per line instead of twice
        return [(tuple(sorted(set(lits))),)] if lits else None
    if isinstance(expr, Not):
        return None
    if isinstance(expr, AnyOf):
        out: list[Clause] = []
        for t in expr.terms:
            c = anchor_clauses(t, raw, joins)
            if c is None:
                return None
            out.extend(c)
        out = list(dict.fromkeys(out))
        if len(out) > MAX_CLAUSES:  # too many branches: keep each branch's best set, OR-ed together
            best = [max(c, key=_set_score) for c in out]
            return [(tuple(sorted({lit for s in best for lit in s})),)]
        return out
    if isinstance(expr, AllOf):
        if raw and joins is not None:
            by_literals = _all_of(expr, False, None)
            if by_literals is not None and all(map(joins, by_literals)):
                return by_literals
        return _all_of(expr, raw, joins)
    raise TypeError(expr)


def _all_of(expr: AllOf, raw: bool, joins: Callable[[Clause], bool] | None) -> list[Clause] | None:
    parts = [(t, c) for t in expr.terms if (c := anchor_clauses(t, raw, joins))]
    if not parts:
        return None
    # Most selective first: fields with many values, then long literals. A conjunct of one clause
    # adds its set to every clause; an any-of multiplies the clauses only while they are short
    # of MAX_SETS sets. compile/lines.py joins the best few sets of each clause.
    # A part of several clauses (an any-of) is as selective as its weakest clause.
    parts.sort(key=lambda p: min(max(_set_score(s) for s in cl) for cl in p[1]), reverse=True)
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

