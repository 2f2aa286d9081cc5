"""Predicate values -> Hyperscan patterns that match one decoded field value exactly."""

from __future__ import annotations

import functools
import re

import hyperscan as hs

from shellsieve.errors import UnsupportedError
from shellsieve.model.expr import Op, Predicate

__all__ = ["FieldPattern", "field_patterns", "wildcard_parts", "ONE_CHAR", "ANY", "ONE"]

# Field scans put this byte before the value and every field pattern starts with `\A` + it. No
# UTF-8 text holds 0xFF, so in the raw-line scan of a block (same database) every field pattern
# dies at the first byte instead of running `.*` across the whole block.
SENTINEL = b"\xff"
_START = rb"\A\xff"
SENTINEL_RE = rb"\xff"
# One UTF-8 encoded character: `?` in a wildcard is one character, not one byte. Scanning bytes
# (no HS_FLAG_UTF8) keeps Hyperscan defined on any input.
ONE_CHAR = rb"(?:[\x00-\x7f]|[\xc0-\xff][\x80-\xbf]*)"


class FieldPattern:
    """One Hyperscan expression for one predicate value; `confirm` is set when Hyperscan runs it
    in prefilter mode (it may over-match) and a bounded full engine must decide."""

    __slots__ = ("expression", "flags", "confirm", "source")

    def __init__(self, expression: bytes, flags: int, source: str, confirm: str | None = None) -> None:
        self.expression = expression
        self.flags = flags
        self.source = source
        self.confirm = confirm


def _bytes(text: str, escape_all: bool) -> bytes:
    return b"".join(
        bytes([b]) if not escape_all and (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) else b"\\x%02x" % b
        for b in text.encode("utf-8", "surrogatepass")
    )


# Cased characters end at U+1E943 (Adlam): no character past it has another case or fold.
CASED_END = 0x1E944


@functools.cache
def casefolds() -> tuple[tuple[str, str], ...]:
    """(character, its casefold) for every non-ASCII character the casefold changes (~30 ms, once)."""
    return tuple((c, f) for c in map(chr, range(0x80, CASED_END)) if (f := c.casefold()) != c)


@functools.cache
def fold_partners() -> dict[str, tuple[str, ...]]:
    """Casefolded character -> every character that casefolds to it alone (`σ`: σ, Σ, ς)."""
    rev: dict[str, list[str]] = {}
    for c, f in casefolds():
        if len(f) == 1:
            rev.setdefault(f, [f]).append(c)
    return {f: tuple(cs) for f, cs in rev.items()}


def literal_regex(text: str, caseless: bool = False, escape_all: bool = False, folds: bool = False) -> bytes:
    """A literal as a Hyperscan regex, non-alphanumeric bytes escaped as \\xHH.

    HS_FLAG_CASELESS folds ASCII letters only (the database scans bytes, not UTF-8), so for a
    caseless literal every other letter with case forms becomes an alternation of their encodings:
    Sigma's `contains: 'В'` must match "в" too. `folds` adds every character with the same
    casefold (`ς` for `σ`), as a caseless equality compares casefolded strings.
    """
    if not caseless or text.isascii():
        return _bytes(text, escape_all)
    out = []
    for c in text:
        forms = dict.fromkeys(f for f in (c, c.lower(), c.upper()) if len(f) == 1)
        if folds and not c.isascii():
            forms.update(dict.fromkeys(fold_partners().get(c.casefold(), ())))
        if c.isascii() or len(forms) == 1:
            out.append(_bytes(c, escape_all))
        else:
            out.append(b"(?:" + b"|".join(_bytes(f, True) for f in forms) + b")")
    return b"".join(out)



ANY = "*"  # wildcard_parts markers; literal runs are ("lit", text)
ONE = "?"


def wildcard_parts(pattern: str) -> list[tuple[str, str]]:
    """Split a model WILDCARD value (backslash escapes the next char) into ("lit", text), ("*", ""), ("?", "")."""
    parts: list[tuple[str, str]] = []
    buf: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            buf.append(pattern[i + 1])
            i += 2
            continue
        if c in "*?":
            if buf:
                parts.append(("lit", "".join(buf)))
                buf = []
            parts.append((c, ""))
        else:
            buf.append(c)
        i += 1
    if buf:
        parts.append(("lit", "".join(buf)))
    return parts


def _wildcard(pattern: str, caseless: bool) -> bytes:
    out = [_START]
    for kind, text in wildcard_parts(pattern):
        out.append(rb".*" if kind == ANY else ONE_CHAR if kind == ONE else literal_regex(text, caseless))
    out.append(rb"\z")
    return b"".join(out)


_BASE = hs.HS_FLAG_DOTALL | hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_ALLOWEMPTY
# Inline flags at the very start of a user regex, e.g. (?is).
_LEAD_FLAGS = re.compile(rb"\A(?:\(\?[a-zA-Z]+\))*")


def _start_anchors(body: bytes, multiline: bool) -> tuple[bytes, bool]:
    """`body` with every start anchor (`\\A`, and `^` outside classes) made to match the sentinel.

    Values are scanned as SENTINEL + text, and valid UTF-8 never holds 0xFF, so "at the start"
    is "right after the sentinel". Under (?m) `^` also holds after a newline; consuming that
    newline keeps the verdict, which is all a SINGLEMATCH pattern reports. Returns the new body
    and whether it had any anchor.
    """
    out = bytearray()
    found = in_class = False
    i = 0
    while i < len(body):
        c = body[i : i + 1]
        if c == b"\\":
            pair = body[i : i + 2]
            if pair == b"\\A" and not in_class:
                out += SENTINEL_RE
                found = True
            else:
                out += pair
            i += 2
            continue
        if in_class:
            # `]` right after `[` or `[^` is a member, not the end
            in_class = not (c == b"]" and body[i - 1 : i] != b"[" and body[i - 2 : i] != b"[^")
        elif c == b"[":
            in_class = True
        elif c == b"^":
            out += rb"(?:\xff|\n)" if multiline else SENTINEL_RE
            found = True
            i += 1
            continue
        out += c
        i += 1
    return bytes(out), found


def _user_regex(pattern: str) -> bytes:
    """A user regex (unanchored search) behind the sentinel, keeping its own meaning.

    The sentinel is a non-word byte, so a leading \\b still holds before a word character. A `^`
    or `\\A` at the start becomes the sentinel's position; anchors elsewhere (inside alternations)
    are rewritten to match the sentinel itself: exact, only slower in the block scan.
    """
    raw = pattern.encode("utf-8")
    lead = _LEAD_FLAGS.match(raw).group()  # type: ignore[union-attr]  # matches "" too: never None
    body = raw[len(lead):]
    multiline = b"m" in lead or b"(?m" in body
    if body.startswith(b"^") or body.startswith(b"\\A"):
        rest = body[1:] if body.startswith(b"^") else body[2:]
        if not multiline and not _start_anchors(rest, False)[1]:
            return _START + lead + rest
    rewritten, found = _start_anchors(body, multiline)
    if found:
        return rb"\A(?s:.)*?" + lead + b"(?:" + rewritten + b")"
    # (?s:.)*? reaches any start position; the user's own flags apply from there on.
    return _START + rb"(?s:.)*?" + lead + b"(?:" + body + b")"


def field_patterns(pred: Predicate) -> list[FieldPattern]:
    """One pattern per value of a text predicate (WILDCARD, CONTAINS, STARTSWITH, ENDSWITH, REGEX)."""
    case = 0 if pred.case_sensitive else hs.HS_FLAG_CASELESS
    fold = not pred.case_sensitive
    out: list[FieldPattern] = []
    for v in pred.values:
        if not isinstance(v, str):
            raise UnsupportedError(repr(v), f"{pred.op.value} needs a string value")
        if pred.op is Op.WILDCARD:
            out.append(FieldPattern(_wildcard(v, fold), _BASE | case, v))
        elif pred.op is Op.CONTAINS:
            out.append(FieldPattern(_START + rb".*" + literal_regex(v, fold), _BASE | case, v))
        elif pred.op is Op.STARTSWITH:
            out.append(FieldPattern(_START + literal_regex(v, fold), _BASE | case, v))
        elif pred.op is Op.ENDSWITH:
            out.append(FieldPattern(_START + rb".*" + literal_regex(v, fold) + rb"\z", _BASE | case, v))
        elif pred.op is Op.REGEX:
            out.append(FieldPattern(_user_regex(v), hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_ALLOWEMPTY | case, v))
        else:
            raise ValueError(f"not a text operator: {pred.op}")
    return out


def python_flags(pattern: FieldPattern) -> int:
    """`regex`-module flags equivalent to a pattern's Hyperscan flags (for prefilter confirms)."""
    import regex

    flags = 0
    if pattern.flags & hs.HS_FLAG_CASELESS:
        flags |= regex.IGNORECASE
    if pattern.flags & hs.HS_FLAG_DOTALL:
        flags |= regex.DOTALL
    return flags
