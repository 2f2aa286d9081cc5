"""Is a literal's hit in a string under its field's key? A check of a few bytes before the hit.

A common literal (`/usr/bin/`, `"bash"`) is in nearly every line, but rarely in the field a rule
reads: `process.command_line` rarely holds `/usr/bin/` where `process.executable` always does. A
Hyperscan pattern that spells the key before the literal made the raw scan 12-29x slower (any byte
of the string between them, in every pattern); this check after the hit reads a few bytes.

A necessary condition, never more: where the rule holds, the literal lies inside the string value
of the field (a line with a non-canonical escape is a candidate for every rule before this runs), so
the nearest unescaped quote before it opens that string, and the key and a colon precede it. Any
other occurrence may pass or fail. A string in an array (`[` or `,` before it) passes: its key is
further back.
"""

from __future__ import annotations

import re

from shellsieve.compile.lines import Keyed, Need

__all__ = ["JoinCheck", "KeyedSet", "join_checks", "under_key"]

_QUOTE, _BACKSLASH, _COLON = 0x22, 0x5C, 0x3A
_BLANK = b" \t\r"
_NUMBER = b"0123456789.eE+-"
_KEY_START = b'".'  # a nested key's opening quote, or the dot before a flat key's last part
# Every walk is bounded: past the bound the check gives up and says yes (a candidate, never a miss),
# so a hostile line (`\"` a hundred thousand times before a literal that hits as often) stays linear.
_MAX_RUN = 64  # blanks, backslashes or number bytes walked over
_MAX_QUOTES = 16  # escaped quotes walked past


class _GiveUp(Exception):
    pass


def _skip_blanks_back(block: bytes, i: int, start: int) -> int:
    """Index of the last byte at or before `i` that is not a JSON blank (below `start` if none)."""
    if i < start or block[i] not in _BLANK:
        return i  # the usual case: no blank at all
    stop = max(start - 1, i - _MAX_RUN)
    while i > stop and block[i] in _BLANK:
        i -= 1
    if i == stop and i >= start:
        raise _GiveUp
    return i


def _escaped(block: bytes, q: int, start: int) -> bool:
    """Is the quote at `q` escaped (an odd run of backslashes before it, within the line)?"""
    if q <= start or block[q - 1] != _BACKSLASH:
        return False  # the usual case
    run = q
    stop = max(start, q - _MAX_RUN)
    while run > stop and block[run - 1] == _BACKSLASH:
        run -= 1
    if run == stop and run > start:
        raise _GiveUp
    return (q - run) % 2 == 1


def _is_key(block: bytes, pos: int, start: int) -> bool:
    """Is the string whose closing quote is at or after `pos` followed by a colon?"""
    q = block.find(b'"', pos)
    for _ in range(_MAX_QUOTES):
        if q < 0 or not _escaped(block, q, start):
            break
        q = block.find(b'"', q + 1)
    else:
        raise _GiveUp
    if q < 0:
        return False
    i = _skip_blanks(block, q + 1, len(block))
    return i < len(block) and block[i] == _COLON


def _skip_blanks(block: bytes, i: int, end: int) -> int:
    """Index of the first byte at or after `i` (before `end`) that is not a JSON blank, or `end`."""
    stop = min(end, i + _MAX_RUN)
    while i < stop and block[i] in _BLANK:
        i += 1
    if i == stop < end:
        raise _GiveUp
    return i


def under_key(block: bytes, start: int, end: int, k: Keyed) -> bool:
    """The hit of `k`'s literal ending at `end` (its line begins at `start`) may be a value under `k.key`."""
    try:
        return _under_key(block, start, end, k)
    except _GiveUp:
        return True


def _under_key(block: bytes, start: int, end: int, k: Keyed) -> bool:
    if k.number:  # back from the byte after the number, over its bytes: to a quote or what precedes it
        end -= 1
        lit = end
        stop = max(start, end - _MAX_RUN)
        while lit > stop and block[lit - 1] in _NUMBER:
            lit -= 1
        if lit == stop and lit > start:
            return True  # a number this long: give up
        if block[lit - 1] != _QUOTE:
            return _after_value(block, start, _skip_blanks_back(block, lit - 1, start), k, -1)
        lit -= 1  # a numeric string: its opening quote
    else:
        if k.closes:  # the match ran through the value end: back over `,]}` and blanks to the quote
            end = _skip_blanks_back(block, end - 2, start) + 1
        lit = end - k.size
    if block[lit] == _QUOTE:
        q = lit  # the literal opens its string (`"/tmp/`, `"bash"`)
    else:
        q = block.rfind(b'"', start, lit)
        if q < 0:
            return False
        walked = 0
        while _escaped(block, q, start):
            walked += 1
            if walked == _MAX_QUOTES:
                return True
            q = block.rfind(b'"', start, q)
            if q < 0:
                return False
    return _after_value(block, start, _skip_blanks_back(block, q - 1, start), k, end - 1 if k.closes else end)


def _after_value(block: bytes, start: int, i: int, k: Keyed, string_end: int) -> bool:
    """`block[i]` precedes the value (a string whose closing quote is at or after `string_end`,
    or a bare number: -1): a colon after `k.key`, or `[` / `,` in an array."""
    if i < start:
        return False
    c = block[i]
    if c != _COLON:
        if c == 0x5B:  # `[`: an array's first element
            return True
        # after `,` an element, or a key (`"executable":` holds `exec`): a key is followed by `:`
        return c == 0x2C and (string_end < 0 or not _is_key(block, string_end, start))
    i = _skip_blanks_back(block, i - 1, start)
    key = k.key
    n = len(key)
    return (i - n - 1 >= start and block[i] == _QUOTE and block[i - n:i] == key
            and block[i - n - 1] in _KEY_START)


def _opens_value(need: Need) -> bool:
    """A text literal that begins with its string's opening quote (`"/tmp/`): where the rule holds,
    it begins the value right after the key and colon."""
    return not need.key.number and need.text.startswith(b'"') and need.text.isascii()


def _value_start_regex(key: bytes, group: list[Need]) -> re.Pattern[bytes]:
    """The key, its colon, then one of the literals opening the value, or `[` (an array: its
    elements are not walked, so it passes). `key"` is a string's end, as the byte before the
    quote is no backslash; the byte before the key (`"` or `.`) is checked after a match."""
    alts = []
    for need in group:
        lit = re.escape(need.text)
        if need.key.closes:
            lit += rb"[ \t\r]*[,\]}]"
        alts.append(b"(?i:" + lit + b")" if need.caseless else lit)
    return re.compile(re.escape(key) + rb'"[ \t\r]*:[ \t\r]*(?:\[|' + b"|".join(alts) + b")")


class KeyedSet:
    """A join's first set (compile/lines.py): does one of its literals lie under its key in a line?

    Its literals are found in the lines the join fired on with bytes.find (a number with Python's
    `re`): as Hyperscan patterns of their own, a common literal (`"/home/`) would call back on every
    line. Every occurrence is tried, overlapping ones too, as only the one in the field's value must
    pass."""

    def __init__(self, needs: tuple[Need, ...]) -> None:
        self.texts: list[tuple[bytes, bool, Keyed]] = []
        self.numbers: list[tuple[re.Pattern[bytes], Keyed]] = []
        self.starts: list[re.Pattern[bytes]] = []
        by_key: dict[bytes, list[Need]] = {}
        for need in needs:
            by_key.setdefault(need.key.key, []).append(need)
        for key, group in by_key.items():
            if all(_opens_value(n) for n in group):
                self.starts.append(_value_start_regex(key, group))
                continue
            for expr, text, caseless, k in group:
                if k.number:
                    self.numbers.append((re.compile(b"(?=(" + expr + b"))"), k))
                else:
                    self.texts.append((text.lower() if caseless else text, caseless, k))

    def passes(self, block: bytes, start: int, end: int) -> bool:
        for rx in self.starts:
            for n, m in enumerate(rx.finditer(block, start, end)):
                if n == _MAX_QUOTES or block[m.start() - 1] in _KEY_START:
                    return True
        folded = None
        for text, caseless, k in self.texts:
            if caseless:
                if folded is None:
                    folded = block[start:end].lower()  # ASCII only, as Hyperscan folds: same offsets
                hay, base = folded, start
            else:
                hay, base = block, 0
            i = hay.find(text, start - base, end - base)
            for _ in range(_MAX_RUN):  # occurrences tried; past them, give up (a candidate)
                if i < 0:
                    break
                hit = i + base + len(text)
                if k.closes:  # the literal's pattern goes on to the value end
                    try:
                        hit = _skip_blanks(block, hit, end)
                    except _GiveUp:
                        return True
                    hit = hit + 1 if hit < end and block[hit] in b",]}" else -1
                if hit > 0 and under_key(block, start, hit, k):
                    return True
                i = hay.find(text, i + 1, end - base)
            else:
                return True
        for rx, k in self.numbers:
            for n, m in enumerate(rx.finditer(block, start, end)):
                if n == _MAX_RUN or under_key(block, start, m.end(1), k):
                    return True
        return False


class JoinCheck:
    """A join's keyed sets (compile/lines.py): it counts on a line where each of them passes."""

    def __init__(self, sets: list[KeyedSet]) -> None:
        self.sets = sets  # (each set compiles regexes: joins sharing one share it, see join_checks)

    def passes(self, block: bytes, start: int, end: int) -> bool:
        sets = self.sets
        for i, ks in enumerate(sets):
            if not ks.passes(block, start, end):
                if i:  # the set that failed is tried first next time: on a host, the same one fails again
                    sets.insert(0, sets.pop(i))
                return False
        return True


def join_checks(requires: dict[int, tuple[tuple[Need, ...], ...]]) -> dict[int, JoinCheck]:
    """A JoinCheck per join id, each keyed set built once however many joins share it (the public
    collections: 2,742 joins of 4,787 sets, ~1 CPU-s of regex compiles at each start unshared)."""
    sets: dict[tuple[Need, ...], KeyedSet] = {}
    checks: dict[tuple[tuple[Need, ...], ...], JoinCheck] = {}
    out: dict[int, JoinCheck] = {}
    for pid, per_join in requires.items():
        if per_join not in checks:
            for needs in per_join:
                if needs not in sets:
                    sets[needs] = KeyedSet(needs)
            checks[per_join] = JoinCheck([sets[needs] for needs in per_join])
        out[pid] = checks[per_join]
    return out
