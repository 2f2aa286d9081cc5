"""The line database: every rule's anchor clauses as patterns over raw NDJSON lines.

This is the database the whole input goes through. A pattern reports only where a whole clause of a
rule occurs inside ONE line, so a hit names a candidate line and its rules with no further check:
a clause of several literal sets becomes one regex, each order of its sets joined by `[^\\n]*`.
Field patterns (what the confirm matches decoded values against) live in their own database and
never fire on raw input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations
from typing import NamedTuple

import hyperscan as hs

from shellsieve.compile.anchors import Clause, Literal, marker_pattern
from shellsieve.compile.database import Pattern
from shellsieve.compile.regex import literal_regex
from shellsieve.events.envelope import COMPILED_FIELDS, key_marker
from shellsieve.events.formats import ECS_MARKERS

__all__ = ["Keyed", "Need", "LineLayout", "joins", "keyed", "line_layout", "literal_pattern", "clause_pattern",
           "single_match"]

# Never across a line: JSON strings cannot hold a raw newline, so one line is one event.
_GAP = rb"[^\n]*"
# What may follow a JSON string value (and not a key, followed by `:`): `"host"` must not fire on
# every "host" key. JSON whitespace other than the newline that ends the line.
_VALUE_END = rb"[ \t\r]*[,\]}]"
_VALUE_END_CHARS = b" \t\r,]}"
MAX_JOINED = 3  # sets one clause regex joins: 3! orders at most
MAX_PATTERN = 8_000  # bytes of one clause regex; Hyperscan refuses long patterns ("length exceeds limit")
# literals in one join: Hyperscan scans a join of wide sets slowly (shipped rules, 200k-event corpus:
# raw scan 1,400 MB/s at 16, 780 at 32, 560 at 48) and the narrower sets carry the selectivity
MAX_JOIN_WIDTH = 16
# A line database of this many joins or more is scanned a line at a time (run/match.py), every pattern
# but the keyed ones reporting once per line (HS_FLAG_SINGLEMATCH): a join's `[^\n]*` state, alive
# from its first set to the line's end, stops at its first match. The public collections (2,790
# joins, 20,000 events): the scan 0.61 -> 0.41 CPU-s, the matcher ~10% less (docs/performance.md); the shipped rules
# (few joins) lose 20% that way, a scan call per line costing more than their joins.
PER_LINE_JOINS = 256


def _closes_value(text: bytes) -> bool:
    """The literal ends with a string's closing quote (an even run of backslashes before it)."""
    if not text.endswith(b'"'):
        return False
    body = text[:-1]
    return (len(body) - len(body.rstrip(b"\\"))) % 2 == 0


def _body(lit: Literal) -> bytes:
    if lit.regex:
        return lit.regex
    # anchors are JSON-escaped UTF-8 text; non-ASCII letters of a caseless one need their case forms
    try:
        body = literal_regex(lit.text.decode("utf-8"), lit.caseless, escape_all=True, folds=True)
    except UnicodeDecodeError:
        body = b"".join(b"\\x%02x" % b for b in lit.text)
    if _closes_value(lit.text):
        body += _VALUE_END
    return body


def literal_pattern(lit: Literal) -> tuple[bytes, int]:
    """One literal alone: (expression, flags)."""
    return _body(lit), hs.HS_FLAG_CASELESS if lit.caseless else 0


def _alternation(lits: tuple[Literal, ...]) -> bytes:
    return b"(?:" + b"|".join(b"(?i:" + _body(x) + b")" if x.caseless else _body(x) for x in lits) + b")"


def _may_overlap(a: Literal, b: Literal) -> bool:
    """Could one occurrence of `a` and one of `b` share bytes? Then `a[^\\n]*b` could miss a line
    that holds both, so the two are not joined (conservative: any doubt is an overlap).

    Literals of two different fields lie in two different JSON values of the line, and a literal's
    match ends at the latest at the `,]}` after its value: they never overlap."""
    if (a.regex and not (a.ordered or a.number)) or (b.regex and not (b.ordered or b.number)):
        return True  # a regex anchor stays alone: a join would run it after every common literal
    if _apart(a.field, b.field):
        return False  # a number's regex starts at its key or its first digit: cheap to join
    if a.regex or b.regex:
        return True  # a wildcard's ordered parts: any byte of its value may be another literal's
    x, y = a.text, b.text
    if a.caseless or b.caseless:
        if not (x.isascii() and y.isascii()):
            return True
        x, y = x.lower(), y.lower()
    if x in y or y in x:
        return True
    return _runs_into(x, y) or _runs_into(y, x)


def _apart(f: str, g: str) -> bool:
    """Two known fields, neither within the other (`process.args.0` is part of `process.args`)."""
    if not f or not g:
        return False
    fp, gp = f.split("."), g.split(".")
    n = min(len(fp), len(gp))
    return fp[:n] != gp[:n]


def _runs_into(x: bytes, y: bytes) -> bool:
    """Could `y` start inside `x`'s match (x's end, or the value end that follows a closing quote)?"""
    closes = _closes_value(x)
    if closes and _fits_value_end(y):
        return True
    for k in range(1, min(len(x), len(y))):
        # y would continue right after x's closing quote, where x's pattern needs a value end: in
        # valid JSON (the only lines rules run on) `"a"` and `"b"` never share a quote
        if x.endswith(y[:k]) and not (closes and not _fits_value_end(y[k:])):
            return True
    return False


def _fits_value_end(y: bytes) -> bool:
    """Could `y` begin inside the value end (blanks, then one of `,]}`) after a closing quote? Its
    leading blanks must be followed by its end or by one of `,]}`: `/bash"` and ` -i ` never share
    a byte, as `-` can follow neither a closing quote nor a blank after one."""
    rest = y.lstrip(b" \t\r")
    return not rest or rest[:1] in (b",", b"]", b"}")


def _joinable(clause: Clause) -> Clause:
    """The clause's sets that can be joined: in order (most selective first), each set kept only if
    none of its literals may overlap one of a set already kept. Dropping a set only weakens the
    clause, so it stays a necessary condition."""
    kept: list[tuple[Literal, ...]] = []
    for lits in clause:
        if len(kept) == MAX_JOINED:
            break
        if len(kept) >= 2 and any(lit.common for lit in lits):
            break  # "linux" as a third set narrows little and triples the orders to scan for
        if kept and sum(map(len, kept)) + len(lits) > MAX_JOIN_WIDTH:
            continue  # left out: a narrower set after it may still join
        if not any(_may_overlap(a, b) for s in kept for a in s for b in lits):
            kept.append(lits)
    return tuple(kept)


def joins(clause: Clause) -> bool:
    """Whether two sets or more of the clause join into one regex (clause_pattern) that narrows:
    a value nearly every line holds (`"process"`, a shell) narrows little, and so does the same
    word in two fields (`telnet` in the command line and in the parent's): it is in every line of
    that process, whatever else the line holds."""
    kept = [lits for lits in _joinable(clause) if not any(lit.common or lit.shell for lit in lits)]
    words = [{lit.text.strip(b'"').lower() for lit in lits} for lits in kept]
    return len(kept) >= 2 and all(a.isdisjoint(b) for i, a in enumerate(words) for b in words[i + 1:])


def clause_pattern(clause: Clause) -> tuple[bytes, int] | None:
    """One regex for a clause of two or more joinable sets; None if only one set is left."""
    alts = [_alternation(s) for s in _joinable(clause)]
    while len(alts) > 1:
        expr = b"|".join(_GAP.join(order) for order in permutations(alts))
        if len(expr) <= MAX_PATTERN:
            return expr, 0
        alts.pop()  # the least selective set goes first: fewer sets only weaken the clause
    return None


class Keyed(NamedTuple):
    """A literal pattern whose hit counts only in a string under `key` (run/keys.py checks)."""

    key: bytes
    size: int  # bytes of the literal's text: its hit starts that far before its end
    closes: bool  # the match goes on past the closing quote to the value end (`[ \t\r]*[,\]}]`)
    number: bool = False  # the hit ends inside a number or a numeric string (size unknown)


def keyed(lit: Literal) -> Keyed | None:
    """What a hit of `lit` alone must be preceded by, when its match length is known (ASCII text:
    a caseless non-ASCII letter may match a case form of another length)."""
    if not lit.key:
        return None
    if lit.number:
        return Keyed(lit.key, 0, False, number=True)
    if lit.regex or not lit.text.isascii():
        return None
    return Keyed(lit.key, len(lit.text), _closes_value(lit.text))


def _needs(lits: tuple[Literal, ...]) -> tuple[Need, ...] | None:
    """A join's set as run/keys.py checks it, when every literal of it is keyed."""
    needs = []
    for lit in lits:
        k = keyed(lit)
        if k is None:
            return None
        needs.append(Need(lit.regex, lit.text, lit.caseless, k))
    return tuple(needs)


class Need(NamedTuple):
    """One literal of a join's keyed set, as run/keys.py finds it in a line."""

    regex: bytes  # a number's regex (Python's `re` reads it too), else b""
    text: bytes
    caseless: bool
    key: Keyed


@dataclass
class LineLayout:
    patterns: list[Pattern] = field(default_factory=list)
    rules: dict[int, list[int]] = field(default_factory=dict)  # pattern id -> rule indices
    clause_ids: dict[Clause, list[int]] = field(default_factory=dict)  # clause -> its pattern ids
    keyed: dict[int, Keyed] = field(default_factory=dict)  # pattern id -> the key its hit must be under
    requires: dict[int, tuple[tuple[Need, ...], ...]] = field(default_factory=dict)  # join id -> its keyed sets
    marker_id: int = -1
    reserved_id: int = -1  # the key only the filter writes (run/enrich.py RESERVED), as a top-level key
    format_ids: frozenset[int] = frozenset()  # keys of the other JSON shapes (events/formats.py)
    envelope_ids: dict[int, str] = field(default_factory=dict)  # a shipper envelope's key -> its field
    per_line: bool = False  # scanned a line at a time (PER_LINE_JOINS)


def line_layout(clauses_per_rule: dict[int, list[Clause]]) -> LineLayout:
    """Pattern ids for every rule's clauses, shared between rules; then the escape marker and the
    format markers."""
    layout = LineLayout()
    # A keyed literal is its own pattern: the same bytes unkeyed (another field) must not be filtered;
    # a join is one per set of keyed patterns it needs.
    ids: dict[tuple[bytes, int, Keyed | tuple[tuple[Need, ...], ...] | None], int] = {}

    def link(pid: int, ri: int) -> None:
        rules = layout.rules.setdefault(pid, [])
        if not rules or rules[-1] != ri:
            rules.append(ri)

    def pattern(expr_flags: tuple[bytes, int], key: Keyed | tuple[tuple[Need, ...], ...] | None = None) -> int:
        pid = ids.get((*expr_flags, key))
        if pid is None:
            pid = ids[(*expr_flags, key)] = len(layout.patterns)
            layout.patterns.append(Pattern(expr_flags[0], expr_flags[1], None))
            if isinstance(key, Keyed):
                layout.keyed[pid] = key
            elif key is not None:
                layout.requires[pid] = key
        return pid

    def add(pid: int, ri: int, clause: Clause) -> None:
        link(pid, ri)
        layout.clause_ids.setdefault(clause, []).append(pid)

    joins_made = 0
    for ri, clauses in clauses_per_rule.items():
        for clause in clauses:
            if clause in layout.clause_ids:  # another rule has the same clause: same patterns
                for pid in layout.clause_ids[clause]:
                    link(pid, ri)
                continue
            joined = clause_pattern(clause)
            if joined is not None:
                joins_made += 1
                # A join cannot say where its literals lie; a hit counts only on a line where each of
                # its keyed sets passes a key check (run/keys.py finds their literals in the line: as
                # patterns of their own they would fire on most). `fsockopen` in the args and `/bin/`
                # in the executable join, but `/bin/` is not in the args.
                needs = tuple(n for lits in _joinable(clause) if (n := _needs(lits)) is not None)
                add(pattern(joined, needs or None), ri, clause)
            else:  # one set: each literal its own pattern, shared with every rule naming it
                for lit in clause[0]:
                    add(pattern(literal_pattern(lit), keyed(lit)), ri, clause)
    layout.marker_id = len(layout.patterns)
    layout.patterns.append(Pattern(marker_pattern(), 0, None))
    # The format probe rides on the same scan: a block holding a Sysmon or Wazuh key is routed line
    # by line, and an ECS block is not scanned a second time (~9% of the shipped fast path).
    first = len(layout.patterns)
    layout.patterns += [Pattern(m, 0, None) for m in ECS_MARKERS]  # no regex metacharacter in them
    layout.format_ids = frozenset(range(first, len(layout.patterns)))
    # So do the keys of shipper envelopes (events/envelope.py): an ECS block holding none of them
    # is not looked at again for envelopes. Once per block: many ECS events carry a `message`, and a
    # callback per line cost 2.5 us per event; the lines are then found with bytes searches.
    for f in COMPILED_FIELDS:
        layout.envelope_ids[len(layout.patterns)] = f
        layout.patterns.append(Pattern(key_marker(f), hs.HS_FLAG_SINGLEMATCH, None))
    # A line holding a `shellsieve` key (or a flat `shellsieve.` one) is decoded even without a rule:
    # the input's own moves aside, so a `shellsieve` object in the output is always the filter's.
    layout.reserved_id = len(layout.patterns)
    layout.patterns.append(Pattern(rb'"shellsieve(?:"[ \t\r]*:|\.)', 0, None))
    if joins_made >= PER_LINE_JOINS:
        # a keyed literal reports every occurrence: only the one under its key must pass (run/keys.py)
        layout.per_line = True
        for pid, p in enumerate(layout.patterns):
            if pid not in layout.keyed:
                p.flags |= hs.HS_FLAG_SINGLEMATCH
    return layout


def single_match(patterns: list[Pattern]) -> list[Pattern]:
    """The same patterns, ids and all, each reporting at most once per scan: scanned one line at a
    time, a line (one event) then makes at most one callback per pattern however often it repeats."""
    return [Pattern(p.expression, p.flags | hs.HS_FLAG_SINGLEMATCH, p.rule_index) for p in patterns]
