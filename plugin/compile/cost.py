"""Bounds on what one rule's pattern may cost to compile: its length and its unrolled repeats.

Hyperscan's compile time grows with the pattern once counted repeats are unrolled, and faster than
linearly: measured alone (hyperscan 0.7.19, one core), `a{1000}` 0.04 s, `a{5000}` 1.0 s,
`a{20000}` 25 s, and the 16-character `((a{50}){50}){8}` 16.8 s; a 9 KB alternation of words 1.9 s.
One such rule would stall every start without a cache. The largest pattern of the public Sigma
and Elastic Linux rules unrolls to 306 positions and is 474 characters long.
"""

from __future__ import annotations

import re

from shellsieve.model.expr import Op

__all__ = ["MAX_PATTERN_CHARS", "MAX_UNROLLED", "cost_error"]

MAX_PATTERN_CHARS = 4096  # characters of one value of a text predicate
MAX_UNROLLED = 1000  # positions of a regex with its counted repeats unrolled (`(ab){3}` is 6)

# One token of a PCRE-style regex, as far as counting positions needs: an escape, a class, a group
# opening (flags alone, `(?i)`, open nothing), a close, a bar, a counted repeat, anything else.
_TOKEN = re.compile(r"""
    (?P<esc>\\(?:[xpPN]\{[^}]*\}|x[0-9a-fA-F]{0,2}|c.|[0-7]{1,3}|.))
  | (?P<cls>\[\^?\]?(?:\[:\^?[a-z]+:\]|\\.|[^\]])*\])
  | (?P<comment>\(\?\#[^)]*\))
  | (?P<flags>\(\?[a-zA-Z^-]*\))
  | (?P<open>\((?:\?(?:[:>=!|]|<[=!]|P?<[A-Za-z_][A-Za-z0-9_]*>|'[^']*'|[a-zA-Z^-]*:))?)
  | (?P<close>\))
  | (?P<bar>\|)
  | (?P<count>\{(?P<lo>\d+)(?:,(?P<hi>\d*))?\})
  | (?P<other>.)
""", re.X | re.S)


def _unrolled(pattern: str, limit: int) -> int:
    """Positions of a regex with counted repeats unrolled (an open repeat counts its minimum, at
    least one; the branches of an alternation add up); stops counting past `limit`. A token walk of
    our own: Python's parser is a private module and refuses PCRE-only syntax."""
    stack: list[list[int]] = []  # per open group: [positions of its branches so far, of this branch]
    total, branch, last = 0, 0, 0  # at the top level: closed branches, this branch, the last atom
    for m in _TOKEN.finditer(pattern):
        kind = m.lastgroup
        if kind == "open":
            stack.append([total, branch])
            total = branch = last = 0
            continue
        if kind == "close" and stack:
            size = total + branch
            total, branch = stack.pop()
            branch += size
            last = size
        elif kind == "bar":
            total, branch, last = total + branch, 0, 0
        elif kind == "count":
            hi = m.group("hi")
            times = int(hi) if hi else max(int(m.group("lo")), 1)
            branch += last * (times - 1)
            last *= times
        elif kind in ("comment", "flags"):
            continue
        elif kind == "other" and m.group() in "*+?^$":
            continue  # an open repeat or an anchor adds no position
        else:
            branch += 1
            last = 1
        if total + branch > limit:
            return total + branch
    while stack:  # an unclosed group: Hyperscan refuses it; count what is there
        size = total + branch
        total, branch = stack.pop()
        branch += size
    return total + branch


def cost_error(op: Op, value: object) -> str | None:
    """Why one value of a text predicate is refused as too costly to compile, or None."""
    if not isinstance(value, str):
        return None
    if len(value) > MAX_PATTERN_CHARS:
        return f"pattern of {len(value)} characters is over the {MAX_PATTERN_CHARS}-character cap"
    if op is not Op.REGEX:
        return None  # literals and wildcards compile in time linear in their length
    # EQL regexes are stored as `(?s)\A(?:...)\z`; Python spells the end `\Z`
    text = value
    if text.endswith("\\z") and (len(text) - 1 - len(text[:-1].rstrip("\\"))) % 2 == 1:
        text = text[:-2] + "\\Z"
    size = _unrolled(text, MAX_UNROLLED)
    if size > MAX_UNROLLED:
        return (f"regex unrolls to over {MAX_UNROLLED} positions (counted repeats multiplied out): "
                "too costly to compile; use `+`, `*` or smaller counts")
    return None
