"""run/respell.py: an escaped JSON line respelled in bytes equals canonical JSON's spelling.

The fast path scans a respelled line instead of decoding it (run/match.py `_respelled_span`): its
anchors hold only if the respelling is exactly what canonical JSON writes, or still carries the
escape marker (then every rule is a candidate, as before).
"""

from __future__ import annotations

import json
import random
import re

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from shellsieve.compile.anchors import ESCAPE_MARKER
from shellsieve.run.respell import respelled

_MARKER = re.compile(ESCAPE_MARKER)
_KEPT_CONTROLS = set("\b\f\n\r\t")


def _escaped(text: str, rng: random.Random) -> bytes:
    """`text` as a JSON string, each character at random written canonically, as `\\uXXXX` (either
    case, surrogate pairs above the BMP) or, for `/`, as `\\/`."""
    out = ['"']
    for ch in text:
        canonical = json.dumps(ch, ensure_ascii=False)[1:-1]
        r = rng.random()
        if r < 0.4:
            out.append(canonical)
        elif ch == "/" and r < 0.6:
            out.append("\\/")
        elif ord(ch) > 0xFFFF:
            code = ord(ch) - 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(f"\\u{ord(ch):04x}" if r < 0.8 else f"\\u{ord(ch):04X}")
    out.append('"')
    return "".join(out).encode()


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), st.integers(0, 2**32))
def test_respelled_is_canonical_or_keeps_the_marker(text: str, seed: int) -> None:
    line = b'{"process":{"command_line":' + _escaped(text, random.Random(seed)) + b',"args":["\\\\u002f"]}}'
    out = respelled(line)
    assert json.loads(out) == json.loads(line)  # the same event
    canonical = b'{"process":{"command_line":' + msgspec.json.encode(text) + b',"args":["\\\\u002f"]}}'
    if any(ord(c) < 0x20 and c not in _KEPT_CONTROLS for c in text):
        assert _MARKER.search(out)  # an escape canonical JSON keeps: every rule stays a candidate
    else:
        assert out == canonical and not _MARKER.search(out)


def test_escaped_backslash_then_u_is_text() -> None:
    """`\\\\u0041` is a backslash and the text `u0041`, not an escape of `A`."""
    assert respelled(b'["\\\\u0041","\\\\\\/x","\\u0041"]') == b'["\\\\u0041","\\\\/x","A"]'


def test_lone_surrogate_stays_escaped() -> None:
    line = b'["\\ud800x","\\udc00"]'
    assert respelled(line) == line and _MARKER.search(line)


def test_quote_and_backslash_take_their_short_escapes() -> None:
    assert respelled(b'["\\u0022\\u005C\\u000a\\u0009\\u002F"]') == b'["\\"\\\\\\n\\t/"]'
