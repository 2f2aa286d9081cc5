"""A value regex as a raw-line regex: a Hyperscan pattern that matches a raw NDJSON line wherever the
Python regex matches a string value in it, so the whole regex can anchor its rule.

`\\bnc\\b[^|;&\\n]*\\s(-e|-c)` holds no literal better than `nc`, which every `nc -z host port` of a
host holds; as a raw-line regex it fires only where the value can match. The translation only
weakens the regex, so the anchor stays a necessary condition:

* each decoded character becomes every raw spelling canonical JSON gives it: printable ASCII as
  itself, `"` and `\\` and `\\n \\t \\r \\b \\f` as their two-byte escapes, a non-ASCII character as
  a run of UTF-8 bytes (`[\\x80-\\xff]+`, looser than one character);
* a character with no other spelling than `\\uXXXX` (other control characters) is left out: a line
  holding one fires the escape marker (anchors.ESCAPE_MARKER) and is a candidate for every rule
  anyway; so is a line with a character whose casefold is ASCII, which lets ignore-case letters be
  `[kK]` (anchors.fold_marker);
* anchors, word boundaries and lookarounds become the empty string (weaker); a possessive, lazy or
  atomic repeat becomes a greedy one (it matches no more strings); large counts are capped (weaker);
* a backreference has no raw form: None.
"""

from __future__ import annotations

from shellsieve.compile.regex_tree import (AnyChar, Assert, At, Atomic, Branch, Category, Char, Flag, Group,
                                           Node, NotChar, Parsed, Range, Repeat, Set, SetItem)

__all__ = ["raw_regex", "selective_width"]

# The two-byte escapes canonical JSON writes for these code points; the other control characters
# are written \u00XX, which fires the escape marker.
_ESCAPED = {0x22: b'"', 0x5C: b"\\", 0x0A: b"n", 0x09: b"t", 0x0D: b"r", 0x08: b"b", 0x0C: b"f"}
_NON_ASCII = b"[\\x80-\\xff]+"
_SPACE = frozenset(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")  # Python's \s on ASCII
_DIGIT = frozenset(range(0x30, 0x3A))
_WORD = _DIGIT | frozenset(range(0x41, 0x5B)) | frozenset(range(0x61, 0x7B)) | {0x5F}
_ASCII = frozenset(range(0x80))
MAX_COUNT = 16  # a bounded repeat above this becomes unbounded; a minimum above it is cut to it


def _category(cat: Category) -> tuple[frozenset[int], bool]:
    """The ASCII code points a category holds, and whether it holds non-ASCII ones too."""
    base = {"d": _DIGIT, "s": _SPACE, "w": _WORD}[cat.value.lower()]
    return (base, True) if cat.value.islower() else (_ASCII - base, True)


def _members(items: tuple[SetItem, ...], caseless: bool) -> tuple[frozenset[int], bool]:
    codes: set[int] = set()
    wide = False
    for m in items:
        if isinstance(m, Char):
            lo, hi = m.code, m.code
        elif isinstance(m, Range):
            lo, hi = m.lo, m.hi
        else:
            ascii_, more = _category(m)
            codes |= ascii_
            wide = wide or more
            continue
        codes.update(range(lo, min(hi, 0x7F) + 1))
        wide = wide or hi >= 0x80
    if caseless:
        codes |= {c ^ 0x20 for c in codes if (c | 0x20) in range(0x61, 0x7B)}
    return frozenset(codes), wide


def _runs(codes: list[int]) -> list[tuple[int, int]]:
    """Sorted code points as (first, last) runs."""
    runs: list[tuple[int, int]] = []
    for c in codes:
        if runs and runs[-1][1] == c - 1:
            runs[-1] = (runs[-1][0], c)
        else:
            runs.append((c, c))
    return runs


def _class(codes: frozenset[int], wide: bool) -> bytes | None:
    """A raw-line regex for one decoded character among `codes` (ASCII) or, if `wide`, any non-ASCII one."""
    plain = sorted(c for c in codes if 0x20 <= c <= 0x7F and c not in _ESCAPED)
    alts = [b"\\x5c\\x%02x" % letter[0] for c, letter in _ESCAPED.items() if c in codes]
    if len(plain) == 1:
        alts.insert(0, b"\\x%02x" % plain[0])
    elif plain:
        alts.insert(0, b"[" + b"".join(b"\\x%02x-\\x%02x" % r if r[0] != r[1] else b"\\x%02x" % r[0]
                                       for r in _runs(plain)) + b"]")
    if wide:
        alts.append(_NON_ASCII)
    if not alts:
        return None  # only characters a marker-free line cannot hold
    return alts[0] if len(alts) == 1 else b"(?:" + b"|".join(alts) + b")"


def _char(code: int, caseless: bool) -> bytes | None:
    if code >= 0x80:
        return _NON_ASCII if caseless else b"".join(b"\\x%02x" % b for b in chr(code).encode())
    return _class(*_members((Char(code),), caseless))


def _node(node: Node, flags: Flag) -> bytes | None:
    caseless = bool(flags & Flag.IGNORECASE)
    if isinstance(node, Char):
        return _char(node.code, caseless)
    if isinstance(node, NotChar):
        codes, _ = _members((Char(node.code),), caseless)
        return _class(_ASCII - codes, True)
    if isinstance(node, Set):
        codes, wide = _members(node.members, caseless)
        return _class(_ASCII - codes, True) if node.negate else _class(codes, wide)
    if isinstance(node, AnyChar):
        return _class(_ASCII if flags & Flag.DOTALL else _ASCII - {0x0A}, True)
    if isinstance(node, (At, Assert)):
        return b""
    if isinstance(node, Group):
        inner = _seq(node.items, (flags | node.add_flags) & ~node.del_flags)
        return None if inner is None else b"(?:" + inner + b")"
    if isinstance(node, Atomic):
        inner = _seq(node.items, flags)
        return None if inner is None else b"(?:" + inner + b")"
    if isinstance(node, Branch):
        alts = [_seq(alt, flags) for alt in node.alternatives]
        if any(a is None for a in alts):
            return None
        return b"(?:" + b"|".join(alts) + b")"  # type: ignore[arg-type]  # None excluded above
    if isinstance(node, Repeat):
        inner = _seq(node.items, flags)
        if inner is None:
            return None
        if not inner:
            return b""
        lo = min(node.lo, MAX_COUNT)
        count = b"{%d,}" % lo if node.hi is None or node.hi > MAX_COUNT else b"{%d,%d}" % (lo, node.hi)
        return b"(?:" + inner + b")" + count
    return None  # a backreference


def _seq(items: tuple[Node, ...] | list[Node], flags: Flag) -> bytes | None:
    out = []
    for node in items:
        raw = _node(node, flags)
        if raw is None:
            return None
        out.append(raw)
    return b"".join(out)


# A class this small narrows like a character (`['"]`, `[xX]`); a larger one (`\d`, `.`) barely does.
NARROW_SET = 4


def selective_width(items: tuple[Node, ...] | list[Node]) -> int:
    r"""How many characters of every match are nearly fixed: characters and small classes, in
    sequence; `.`, `\d`, `\S` and negated classes count nothing. `[0-9]{1,3}\.` four times is 3:
    an address, which nearly every process event holds (host.ip); `(.){200,}` is 0."""
    n = 0
    for node in items:
        if isinstance(node, Char):
            n += 1
        elif isinstance(node, Set) and not node.negate and len(node.members) <= NARROW_SET \
                and all(isinstance(m, Char) for m in node.members):
            n += 1
        elif isinstance(node, Branch):
            n += min(selective_width(alt) for alt in node.alternatives)
        elif isinstance(node, (Group, Atomic)):
            n += selective_width(node.items)
        elif isinstance(node, Repeat):
            n += selective_width(node.items) * min(node.lo, MAX_COUNT)
    return n


def _trimmed(items: tuple[Node, ...]) -> tuple[Node, ...]:
    r"""Without the anchors and `.*` runs at either end (EQL's `\A(?:.*x.*)\z`): they cost a scan
    state that every byte keeps alive, and only widen what matches."""
    while True:
        before = items
        while items and (isinstance(items[0], At) or _any_run(items[0])):
            items = items[1:]
        while items and (isinstance(items[-1], At) or _any_run(items[-1])):
            items = items[:-1]
        if len(items) == 1 and isinstance(items[0], Group) and not items[0].add_flags and not items[0].del_flags:
            items = items[0].items
        if items == before:
            return items


def _any_run(node: Node) -> bool:
    return isinstance(node, Repeat) and node.lo == 0 and node.hi is None and node.items == (AnyChar(),)


def raw_regex(parsed: Parsed, caseless: bool) -> tuple[bytes, int] | None:
    """(A Hyperscan regex over raw lines, its selective width) or None (no raw form)."""
    flags = parsed.flags | (Flag.IGNORECASE if caseless else Flag(0))
    items = _trimmed(parsed.items)
    out = _seq(items, flags)
    if not out:
        return None
    return out, selective_width(items)
