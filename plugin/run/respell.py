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

import re

__all__ = ["respelled"]

# An escape, read from left to right so that `\\\\u0041` (an escaped backslash, then text) stays text;
# a high surrogate's escape takes the low one after it.
_ESCAPE = re.compile(rb"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|(.))",
                     re.DOTALL)
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


def respelled(line: bytes) -> bytes:
    """`line` with its escapes as canonical JSON writes them."""
    return _ESCAPE.sub(_canonical, line)
