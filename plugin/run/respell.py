"""A raw JSON line with `\\uXXXX` and `\\/` escapes, written as canonical JSON writes its strings.

The line database's anchors are spelled as canonical JSON writes values (compile/anchors.py), so a
line holding another spelling of a character (an escape the marker pattern finds) is a candidate
for every rule. Respelled in bytes, without decoding it, the line goes through the same scan as
any other: most escaped lines then hold no anchor and pass unread. Only the escapes change; every
other byte, the spacing and the key order stay, and the anchors already see through those.

Canonical is what msgspec (and `json.dumps(ensure_ascii=False)`) writes: `"` and `\\` and the
controls `\\b \\f \\n \\r \\t` escaped, every other character itself (UTF-8). An escape of any
other control character, or a lone surrogate, is kept: the marker then fires on the respelled line
too, and the caller decodes the line as before.
"""

from __future__ import annotations

import functools
import re

import msgspec

__all__ = ["LONG", "respelled"]

# An escape, read from left to right so that `\\\\u0041` (an escaped backslash, then text) stays text;
# a high surrogate's escape takes the low one after it.
_ESCAPE = re.compile(rb"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))",
                     re.DOTALL)
_decode = msgspec.json.decode
_encode = msgspec.json.encode
_CONTROLS = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r", 0x22: b'\\"', 0x5C: b"\\\\"}


def _canonical(m: re.Match[bytes]) -> bytes:
    high, low, code, char = m.groups()
    if char is not None:
        return b"/" if char == b"/" else m[0]
    if high is not None:
        cp = 0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)
        return chr(cp).encode()
    cp = int(code, 16)
    if cp in _CONTROLS:
        return _CONTROLS[cp]
    if cp < 0x20 or 0xD800 <= cp <= 0xDFFF:
        return m[0]  # canonical JSON escapes it as `\u00XX` too; a lone surrogate has no UTF-8
    return chr(cp).encode()


# A run of `\\uXXXX` escapes (once every `\\\\` pair is set aside, each backslash left opens an
# escape). A literal first: sre skips to it. Possessive: a greedy repeat keeps a backtrack mark per
# escape, and 2 MiB of them took 7x the time of 1 MiB.
_UNICODE_RUN = re.compile(rb"\\u[0-9a-fA-F]{4}(?:\\u[0-9a-fA-F]{4})*+")
_RUN_AT_ONCE = 8  # escapes of a run decoded and encoded again in two msgspec calls, not a callback each
# Lines this long or longer take the passes in C: under it, their three searches cost more than the
# callbacks (a 660-byte event with two `\\u002f`: 4.1 against 2.2 us)
LONG = 4_096
_PAIR = b"\\\\"  # an escaped backslash
_ASIDE = b"\x00"  # never in a JSON line: a raw control byte stands nowhere in it


@functools.lru_cache(maxsize=4_096)
def _spelling(escapes: bytes) -> bytes:
    """One escape, or a short run of `\\u` ones, as canonical JSON writes it: lines repeat a few."""
    return _ESCAPE.sub(_canonical, escapes)


def _spelled(m: re.Match[bytes]) -> bytes:
    return _spelling(m[0])


def _run(m: re.Match[bytes]) -> bytes:
    run = m[0]
    if len(run) >= 6 * _RUN_AT_ONCE:
        try:
            return _encode(_decode(b'"' + run + b'"'))[1:-1]
        except (msgspec.DecodeError, UnicodeEncodeError):
            return _ESCAPE.sub(_canonical, run)  # a lone surrogate: each escape on its own, which keeps it
    return _spelling(run)


def respelled(line: bytes) -> bytes:
    """`line` with its escapes as canonical JSON writes them: one pass, a callback per escape, on a
    line of a usual size; on a longer one, C calls but for runs of a few `\\u` escapes (1 MiB of `\\/`
    or of `\\u0061`, tests/reliability/test_long_lines.py, took 120 and 80 ms a callback each)."""
    if len(line) < LONG:
        return _ESCAPE.sub(_spelled, line)
    aside = _PAIR in line
    if aside:
        if _ASIDE in line:  # not JSON: left to right, one escape at a time
            return _ESCAPE.sub(_canonical, line)
        line = line.replace(_PAIR, _ASIDE)  # left to right, as JSON pairs them
    line = line.replace(b"\\/", b"/")
    if b"\\u" in line:
        line = _UNICODE_RUN.sub(_run, line)
    return line.replace(_ASIDE, _PAIR) if aside else line
