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
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shellsieve.compile.anchors import ESCAPE_MARKER
from shellsieve.run.respell import LONG, respelled

_MARKER = re.compile(ESCAPE_MARKER)
_KEPT_CONTROLS = set("\b\f\n\r\t")


def _escaped(text: str, rng: random.Random, dense: bool = False) -> bytes:
    """`text` as a JSON string, each character at random written canonically, as `\\uXXXX` (either
    case, surrogate pairs above the BMP) or, for `/`, as `\\/`; `dense`: every one as `\\uXXXX`, in
    runs long enough to be decoded at once."""
    out = ['"']
    for ch in text:
        canonical = json.dumps(ch, ensure_ascii=False)[1:-1]
        r = 0.6 + 0.4 * rng.random() if dense else rng.random()
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


# a field that makes a line long enough for the passes in C (respell.py LONG)
_PAD = b',"pad":"' + b"x" * LONG + b'"'


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))), st.integers(0, 2**32), st.booleans(),
       st.booleans())
def test_respelled_is_canonical_or_keeps_the_marker(text: str, seed: int, dense: bool, long: bool) -> None:
    pad = _PAD if long else b""
    args = b',"args":["\\\\u002f"]}' + pad + b"}"
    line = b'{"process":{"command_line":' + _escaped(text, random.Random(seed), dense) + args
    out = respelled(line)
    assert json.loads(out) == json.loads(line)  # the same event
    canonical = b'{"process":{"command_line":' + msgspec.json.encode(text) + args
    if any(ord(c) < 0x20 and c not in _KEPT_CONTROLS for c in text):
        assert _MARKER.search(out)  # an escape canonical JSON keeps: every rule stays a candidate
    else:
        assert out == canonical and not _MARKER.search(out)


@pytest.mark.parametrize("pad", [b"", _PAD], ids=["short", "long"])
def test_escaped_backslash_then_u_is_text(pad: bytes) -> None:
    """`\\\\u0041` is a backslash and the text `u0041`, not an escape of `A`."""
    line = b'["\\\\u0041","\\\\\\/x","\\u0041"' + pad.replace(b':', b',') + b']'
    assert respelled(line) == b'["\\\\u0041","\\\\/x","A"' + pad.replace(b':', b',') + b']'


def test_lone_surrogate_stays_escaped() -> None:
    line = b'["\\ud800x","\\udc00"]'
    assert respelled(line) == line and _MARKER.search(line)


def test_quote_and_backslash_take_their_short_escapes() -> None:
    assert respelled(b'["\\u0022\\u005C\\u000a\\u0009\\u002F"]') == b'["\\"\\\\\\n\\t/"]'


def test_a_lone_surrogate_in_a_long_run_stays_escaped() -> None:
    """A run decoded at once that cannot be (a lone surrogate) is read one escape at a time."""
    run, tail = b"\\u0061" * 10, b',"' + b"x" * LONG + b'"]'
    spelled = b'["' + b"a" * 10 + b'\\ud800' + b"a" * 10 + b'"' + tail
    assert respelled(b'["' + run + b'\\ud800' + run + b'"' + tail) == spelled


def test_a_line_holding_a_raw_nul_is_read_one_escape_at_a_time() -> None:
    """The escaped backslashes are set aside as NUL bytes, which no JSON line holds; a line that does
    holds them itself, and is respelled as before."""
    tail = b',"' + b"x" * LONG + b'"]'
    assert respelled(b'["\\\\u0041\x00\\/","\\u0041"' + tail) == b'["\\\\u0041\x00/","A"' + tail


def test_a_long_run_decoded_at_once_is_canonical() -> None:
    """A run of escapes long enough to be decoded at once: slash, quote, backslash, the short-escaped
    controls, a surrogate pair and plain letters, each as `\\uXXXX`, come out as msgspec writes them."""
    text = 'a/"\\\b\f\n\r\tz\U0001F600/é' * 3
    escaped = _escaped(text, random.Random(1), dense=True)
    assert escaped.count(b"\\u") >= len(text)  # every character escaped: one long run
    tail = b',"' + b"x" * LONG + b'"]'
    assert respelled(b"[" + escaped + tail) == b"[" + msgspec.json.encode(text) + tail
