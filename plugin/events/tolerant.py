"""A tolerant JSON reader for the lines the strict decoder refuses: what can be read, never a raise.

msgspec refuses a whole line for one invalid UTF-8 byte, one lone surrogate escape (`\\ud800`),
nesting past ~1,000 levels or one number out of range, and keeps the last of duplicate keys. An
attacker who controls a command line controls all of these, so a line that fails the strict decode
is read here instead, and its event is still confirmed and alerted. Only such lines come here: the
fast path never pays for it.

The reader is iterative (an explicit stack, no recursion) and linear: one regex tokenizer pass,
each token looked at once. What it reads:

- invalid UTF-8 bytes and lone surrogate escapes become U+FFFD (`invalid_utf8`);
- containers nested deeper than `MAX_DEPTH` are skipped, not built (`too_deep`);
- numbers out of float or 64-bit range are kept verbatim as `msgspec.Raw` (`out_of_range`): they
  encode back exactly and no predicate takes them for a number;
- syntax errors are stepped over (`invalid_json`): stray bytes and separators are skipped, a
  missing `,` or `:` is assumed, an unterminated string runs to the end of the line, containers
  still open at the end are closed;
- with `merge_duplicates`, every occurrence of a duplicate key is kept, as an array field is
  (`duplicate_key`): objects merge, other values gather into one list, so a rule on the field fires
  when any occurrence matches, as for an array.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import msgspec

__all__ = ["MAX_DEPTH", "NOT_JSON", "REASON_ORDER", "first_reason", "read", "may_hide_duplicates"]

# The reason a line read here is counted under: the first of its reasons, in this order.
REASON_ORDER = ("invalid_utf8", "too_deep", "invalid_json", "not_object", "out_of_range", "duplicate_key")
# Reasons that leave a line no faithful JSON object: it leaves as `{"message": ...}`.
NOT_JSON = frozenset(("invalid_utf8", "too_deep", "invalid_json", "not_object"))


def first_reason(found: list[str], default: str | None) -> str | None:
    """The reason of `found` a line is counted under, or `default` if it has none."""
    return next((r for r in REASON_ORDER if r in found), default)


MAX_DEPTH = 64  # ECS events nest < 10 levels; deeper containers are skipped, never recursed into

_REPLACEMENT = "\ufffd".encode()

# One token per match; possessive quantifiers keep each match linear (Python 3.11+).
_TOKEN = re.compile(
    rb"""[ \t\r\n]*+(?:
      (?P<str>"[^"\\]*+(?:\\.[^"\\]*+)*+")
     |(?P<num>-?[0-9]++(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+)
     |(?P<open>[{\[])
     |(?P<close>[}\]])
     |(?P<lit>true|false|null)
     |(?P<sep>[,:])
     |(?P<open_str>"(?:[^"\\]|\\.)*+\\?+$)
     |(?P<junk>[^ \t\r\n"{}\[\],:]++|.)
    )""",
    re.X | re.S,
)
_SCALARS = re.compile(rb'[^"\[\]{}]*+')
# Scalars each followed by a comma, as many as there are (possessive: linear, no backtracking)
_SCALAR_RUN = re.compile(
    rb"""(?:[ \t\r\n]*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"|-?[0-9]++(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+
    |true|false|null)[ \t\r\n]*+,)++""", re.X | re.S)
_PAIR = re.compile(
    rb"""[ \t\r\n]*+"([^"\\]*+(?:\\.[^"\\]*+)*+)"[ \t\r\n]*+:[ \t\r\n]*+
    (?:"([^"\\]*+(?:\\.[^"\\]*+)*+)"|(-?[0-9]++(?:\.[0-9]++)?+(?:[eE][+-]?+[0-9]++)?+)|(true|false|null))
    [ \t\r\n]*+,""", re.X | re.S)
_LITERALS: dict[bytes, Any] = {b"true": True, b"false": False, b"null": None}
_SIMPLE_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n",
                   b"r": b"\r", b"t": b"\t"}
_ESCAPE = re.compile(rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
                     rb"|\\u([0-9a-fA-F]{4})|\\(.)|\\$", re.S)
_MAX_INT_CHARS = (sys.get_int_max_str_digits() or 1 << 62)  # int() refuses longer digit strings


class _Reasons:
    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found: list[str] = []

    def add(self, reason: str) -> None:
        if reason not in self.found:
            self.found.append(reason)


def _unescape(m: re.Match[bytes], reasons: _Reasons) -> bytes:
    hi, lo, one, simple = m.group(1), m.group(2), m.group(3), m.group(4)
    if hi is not None:
        code = 0x10000 + ((int(hi, 16) - 0xD800) << 10) + (int(lo, 16) - 0xDC00)
        return chr(code).encode()
    if one is not None:
        code = int(one, 16)
        if 0xD800 <= code <= 0xDFFF:  # a lone surrogate: no character, as an invalid byte is none
            reasons.add("invalid_utf8")
            return _REPLACEMENT
        return chr(code).encode()
    if simple is not None:
        out = _SIMPLE_ESCAPES.get(simple)
        if out is not None:
            return out
        reasons.add("invalid_json")
        return simple  # `\x`: the character itself
    reasons.add("invalid_json")  # a backslash ending the line
    return b""


def _string(body: bytes, reasons: _Reasons) -> str:
    """The text of a JSON string's bytes between its quotes."""
    if b"\\" in body:
        body = _ESCAPE.sub(lambda m: _unescape(m, reasons), body)
    try:
        return body.decode()
    except UnicodeDecodeError:
        reasons.add("invalid_utf8")
        return body.decode("utf-8", "replace")


def _number(tok: bytes, reasons: _Reasons) -> Any:
    if tok.lstrip(b"-").isdigit():
        # as msgspec: an int of any size Python converts from text (4,300 digits by default)
        if len(tok) <= _MAX_INT_CHARS:
            return int(tok)
    else:
        f = float(tok)  # linear in the token; out of range gives inf, never raises
        if f not in (float("inf"), float("-inf")):
            return f
    reasons.add("out_of_range")
    return msgspec.Raw(tok)


def _float_hook(reasons: _Reasons) -> Any:
    """msgspec's float hook: a float past float range stays Raw (its digits as written), counted."""
    def on_float(text: str) -> Any:
        f = float(text)
        if f in (float("inf"), float("-inf")):
            reasons.add("out_of_range")
            return msgspec.Raw(text.encode())
        return f

    return on_float


def _scalars(run: bytes, reasons: _Reasons) -> list[Any] | None:
    """The values of `a, b, c` (scalars only), or None if msgspec refuses them (bad bytes, an escape
    or an integer it cannot take): the token loop then reads them one by one."""
    decoder: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[Any], float_hook=_float_hook(reasons))
    try:
        return decoder.decode(b"[" + run + b"]")
    except _STRICT_ERRORS:
        pass
    fixed = _fix_text(run)
    if fixed is run:
        return None
    try:
        values = decoder.decode(b"[" + fixed + b"]")
    except _STRICT_ERRORS:
        return None
    reasons.add("invalid_utf8")
    return values


def _gather(old: Any, new: Any) -> Any:
    """The occurrences of a duplicate key as one array field: any occurrence may match."""
    if isinstance(old, list):
        old.extend(new) if isinstance(new, list) else old.append(new)
        return old
    return [old, *new] if isinstance(new, list) else [old, new]


# A lone surrogate escape after an even run of backslashes (an escape, not escaped text): a high one
# not followed by a low one, a low one not preceded by a high one.
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)((?:\\\\)*+)(?:\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2})")
_STRICT_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError)


def _fix_text(data: bytes) -> bytes:
    """`data` with invalid UTF-8 and lone surrogate escapes as U+FFFD (JSON structure untouched);
    `data` itself if it has neither."""
    out = data
    if not out.isascii():
        try:
            out.decode()
        except UnicodeDecodeError:
            out = out.decode("utf-8", "replace").encode()
    if b"\\u" in out:
        fixed, n = _LONE_SURROGATE.subn(rb"\1\\ufffd", out)
        if n:
            out = fixed
    return out


def _repaired(line: bytes, merge_duplicates: bool) -> tuple[dict[str, Any] | None, list[str]] | None:
    """The usual hostile line read at C speed: invalid bytes and lone surrogates replaced in the
    bytes (the structure is untouched), floats out of range kept as Raw, then one msgspec decode.
    None when that is not enough (syntax, depth, huge integers): the token reader takes over."""
    reasons = _Reasons()
    fixed = _fix_text(line)
    if fixed is not line:
        line = fixed
        reasons.add("invalid_utf8")
    try:
        doc = msgspec.json.Decoder(float_hook=_float_hook(reasons)).decode(line)
    except _STRICT_ERRORS:
        return None
    if not isinstance(doc, dict) or (merge_duplicates and may_hide_duplicates(line, doc)):
        return None
    return doc, reasons.found


def read(line: bytes, merge_duplicates: bool = False) -> tuple[dict[str, Any] | None, list[str]]:
    """(the object read from `line`, or None if it holds none; the reasons it was not strict JSON,
    in the order found). Never raises; linear in the line."""
    repaired = _repaired(line, merge_duplicates)
    if repaired is not None:
        return repaired
    reasons = _Reasons()
    root: dict[str, Any] | None = None
    # Each frame: [container, pending key (objects), whether a key is awaited]
    stack: list[list[Any]] = []
    skip = 0  # depth inside a skipped (too deep) container
    pos, end = 0, len(line)
    match = _TOKEN.match
    refused = 0  # the end of a run msgspec refused: read token by token, not matched again
    while pos < end:
        if pos >= refused and stack and not skip and type(stack[-1][0]) is list:
            done, refused = _array_run(line, pos, stack[-1][0], reasons, refused)
            if done:
                pos = done
                continue
        elif stack and not skip and stack[-1][2] and type(stack[-1][0]) is dict:
            pos = _pairs(line, pos, stack[-1][0], reasons, merge_duplicates)
        m = match(line, pos)
        if m is None:  # only trailing blanks are left
            break
        pos = m.end()
        kind = m.lastgroup
        if kind == "sep":
            continue
        if kind == "junk":
            reasons.add("invalid_json")
            _drop_key(stack)  # junk for a value
            continue
        if skip:
            skip, pos = _skipped(line, pos, skip, kind)
            continue
        if kind == "close":
            if stack:
                stack.pop()
            else:
                reasons.add("invalid_json")
            continue
        if kind != "open":
            value = _scalar(m, kind, reasons)
        elif len(stack) >= MAX_DEPTH:
            reasons.add("too_deep")
            skip = 1
            _drop_key(stack)  # the key's value is skipped
            continue
        else:
            value = {} if m.group("open") == b"{" else []
        if stack:
            _place(stack, value, reasons, merge_duplicates)
        else:
            root = _top_level(stack, value, root, reasons)
    if stack or skip:
        reasons.add("invalid_json")  # unclosed containers: closed here
    return root, reasons.found


def _drop_key(stack: list[list[Any]]) -> None:
    """The key awaiting its value in the innermost object gets none: dropped, a key is awaited again."""
    if stack and stack[-1][2] is False:
        stack[-1][1], stack[-1][2] = None, True


def _array_run(line: bytes, pos: int, items: list[Any], reasons: _Reasons, refused: int) -> tuple[int, int]:
    """An array's run of scalars (the shape of a JSON bomb of numbers) in one msgspec call:
    (where the run ends, or 0 if it was not read here; the end of a run msgspec refused)."""
    r = _SCALAR_RUN.match(line, pos)
    if r is None or r.end() - pos < 64:
        return 0, refused
    values = _scalars(line[pos:r.end() - 1], reasons)
    if values is None:
        return 0, r.end()
    items.extend(values)
    return r.end(), refused


def _pairs(line: bytes, pos: int, container: dict[str, Any], reasons: _Reasons, merge_duplicates: bool) -> int:
    """An object's `"key": scalar,` pairs, one regex match each instead of four tokens; where they end."""
    pair = _PAIR.match
    p = pair(line, pos)
    while p is not None:
        kb, sv, nv, lv = p.group(1, 2, 3, 4)
        key = _string(kb, reasons)
        value: Any = (_string(sv, reasons) if sv is not None
                      else _number(nv, reasons) if nv is not None else _LITERALS[lv])
        if merge_duplicates and key in container:
            reasons.add("duplicate_key")
            container[key] = _gather(container[key], value)
        else:
            container[key] = value
        pos = p.end()
        p = pair(line, pos)
    return pos


def _skipped(line: bytes, pos: int, skip: int, kind: str | None) -> tuple[int, int]:
    """Inside a container too deep to build: (the depth still to close, where reading goes on)."""
    if kind == "open" or kind == "close":
        skip += 1 if kind == "open" else -1
    if skip:
        # In bulk: the next `skip` bytes (to a quote) cannot close every open level, and the
        # scalars and junk between brackets are nothing to skip one by one. Linear overall.
        q = line.find(b'"', pos, pos + skip)
        seg = line[pos:pos + skip if q < 0 else q]
        skip += seg.count(b"[") + seg.count(b"{") - seg.count(b"]") - seg.count(b"}")
        pos += len(seg)
        if skip:
            pos = _SCALARS.match(line, pos).end()  # type: ignore[union-attr]  # matches "" too: never None
    return skip, pos


def _scalar(m: re.Match[bytes], kind: str | None, reasons: _Reasons) -> Any:
    """The value of a string (closed or running to the end of the line), number or literal token."""
    if kind == "str":
        return _string(m.group("str")[1:-1], reasons)
    if kind == "open_str":
        reasons.add("invalid_json")
        body = m.group("open_str")[1:]
        if body.endswith(b"\\") and not body.endswith(b"\\\\"):
            body = body[:-1]
        return _string(body, reasons)
    if kind == "num":
        return _number(m.group("num"), reasons)
    return _LITERALS[m.group("lit")]


def _top_level(stack: list[list[Any]], value: Any, root: dict[str, Any] | None,
               reasons: _Reasons) -> dict[str, Any] | None:
    """A value outside every container: the first object is the root; anything else is read (a
    container) and dropped. The root, as it now is."""
    if root is None and isinstance(value, dict):
        stack.append([value, None, True])
        return value
    reasons.add("invalid_json" if root is not None else "not_object")
    if isinstance(value, (dict, list)):
        stack.append([value, None, True])  # read and dropped: a second top-level value
    return root


def _place(stack: list[list[Any]], value: Any, reasons: _Reasons, merge_duplicates: bool) -> None:
    """A value (or an object's key) into the innermost open container; a new container opens."""
    frame = stack[-1]
    container = frame[0]
    if type(container) is list:
        container.append(value)
    elif frame[2]:  # a key is awaited
        if isinstance(value, str):
            frame[1], frame[2] = value, False
            return
        reasons.add("invalid_json")  # a value where a key belongs: dropped
        if isinstance(value, (dict, list)):
            stack.append([value, None, True])
        return
    else:
        key = frame[1]
        frame[1], frame[2] = None, True
        if merge_duplicates and key in container:
            reasons.add("duplicate_key")
            old = container[key]
            if type(value) is type(old) and isinstance(value, (dict, list)):
                value = old  # the later object's keys (array's elements) go into the earlier one
            else:
                container[key] = _gather(old, value)
                return
        else:
            container[key] = value  # without merging, the last occurrence wins, as in msgspec
    if isinstance(value, (dict, list)):
        stack.append([value, None, True])


_strict = msgspec.json.decode
_reencode = msgspec.json.Encoder().encode


def may_hide_duplicates(line: bytes, doc: dict[str, Any] | None = None) -> bool:
    """Whether a strict-valid JSON line may hold a duplicate key (false positives allowed, no false
    negatives). Its colons are counted against those of the object decoded and encoded again, which
    holds each key once: a colon is a key's separator or a character of a string, and a dropped
    occurrence takes its separator with it. Blanks do not count, so no spacing hides one; only a
    `\\u003a` escape could add a colon to the encoding that the line lacks, so one says maybe.
    `doc`: the line decoded already. ~2.5 us on a 660-byte event decoded already, in C calls; ~1.2
    when the line is the encoding itself (compact JSON as msgspec, serde_json and Go write it), which
    holds each key once: the counts are then not needed (bench/shape_stages.py, `duplicates`)."""
    if doc is None:
        try:
            doc = _strict(line)
        except _STRICT_ERRORS:
            return True
    try:
        again = _reencode(doc)
    except (TypeError, ValueError, RecursionError):
        return True
    if again == line:
        return False
    return b"\\u003" in line or line.count(b":") != again.count(b":")
