"""Bounds on what one rule's pattern may cost to compile: its length and its unrolled repeats.

Hyperscan's compile time grows with the pattern once counted repeats are unrolled, and faster than
linearly: measured alone (hyperscan 0.7.19, one core), `a{1000}` 0.04 s, `a{5000}` 1.0 s,
`a{20000}` 25 s, and the 16-character `((a{50}){50}){8}` 16.8 s; a 9 KB alternation of words 1.9 s.
One such rule would stall every start without a cache. The largest pattern of the public Sigma
and Elastic Linux rules unrolls to 306 positions and is 474 characters long.
"""

from __future__ import annotations

import re
import warnings
import re._constants as sre_c  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any

from shellsieve.model.expr import Op

__all__ = ["MAX_PATTERN_CHARS", "MAX_UNROLLED", "cost_error"]

MAX_PATTERN_CHARS = 4096  # characters of one value of a text predicate
MAX_UNROLLED = 1000  # positions of a regex with its counted repeats unrolled (`(ab){3}` is 6)

_COUNT = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", sre_c.MAX_REPEAT))


def _unrolled(items: Any, limit: int) -> int:
    """Positions of a parsed regex with counted repeats unrolled (an open repeat counts its minimum);
    stops counting past `limit`."""
    n = 0
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            times = hi if hi != sre_c.MAXREPEAT else max(lo, 1)
            n += _unrolled(sub, limit) * times
        elif op is sre_c.SUBPATTERN:
            n += _unrolled(arg[3], limit)
        elif op is sre_c.BRANCH:
            n += sum(_unrolled(b, limit) for b in arg[1])
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            n += _unrolled(arg[1], limit)
        elif op is getattr(sre_c, "ATOMIC_GROUP", None):
            n += _unrolled(arg, limit)
        elif op is not sre_c.AT:
            n += 1
        if n > limit:
            return n
    return n


def _count_product(pattern: str) -> int:
    """For a regex Python cannot parse (PCRE-only syntax): the product of its repeat counts, an upper
    bound of how much they multiply it when nested."""
    out = 1
    for lo, hi in _COUNT.findall(pattern):
        out *= max(int(hi) if hi else int(lo), 1)
        if out > MAX_UNROLLED:
            break
    return out


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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set" of a POSIX class: only counted here
            size = _unrolled(sre_parse.parse(text), MAX_UNROLLED)
    except Exception:  # noqa: BLE001 - any syntax Python's parser refuses: bound it by its counts
        size = _count_product(value)
    if size > MAX_UNROLLED:
        return (f"regex unrolls to over {MAX_UNROLLED} positions (counted repeats multiplied out): "
                "too costly to compile; use `+`, `*` or smaller counts")
    return None
