"""Hostile JSON on the hot path: never a crash, never blind, every output line strict JSON (issue 19)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import PHP_FSOCKOPEN, WEBSHELL_RECON, rule_ids
from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.tolerant import MAX_DEPTH, may_hide_duplicates, read
from shellsieve.run.enrich import message_line
from shellsieve.run.loop import run_filter
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# a php fsockopen reverse shell (rule 100103), one ECS line
PHP = (EXAMPLES / "events.ndjson").read_bytes().splitlines()[1]
# a Winlogbeat Sysmon event of the Sigma web-shell recon rule
SYSMON = (EXAMPLES / "sysmon.ndjson").read_bytes().splitlines()[1]
BENIGN = b'{"process":{"name":"ls","command_line":"ls -la"},"host":{"os":{"type":"linux"}}}'


class _Log:
    def info(self, *args: Any, **kw: Any) -> None:
        pass

    warning = info


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict(line: bytes) -> Any:
    """A line as strict JSON: UTF-8, no NaN or Infinity; numbers of any size kept (as text when huge,
    which msgspec refuses to decode though JSON allows them)."""
    return json.loads(line.decode("utf-8"), parse_constant=_no_constant,
                      parse_int=lambda s: int(s) if len(s) < 100 else s)


def _with(line: bytes, extra: bytes) -> bytes:
    """`line` with `extra` (a `"key":value` pair) added before its closing brace."""
    assert line.endswith(b"}")
    return line[:-1] + b"," + extra + b"}"


def _run(lines: list[bytes]) -> tuple[list[bytes], Stats]:
    """Lines through the whole filter in process (router, fast path, line path), with shipped rules."""
    from conftest import PATTERNS
    from shellsieve.cli import build

    global _RULESET
    if _RULESET is None:
        _, _RULESET, _ = build([PATTERNS])
    out = io.BytesIO()
    stats = run_filter(_RULESET, Settings(stats_interval_s=0), io.BytesIO(b"".join(x + b"\n" for x in lines)),
                       out, _Log())
    got = out.getvalue().splitlines()
    assert len(got) == len(lines) == stats.lines_out, "a line was lost or added"
    for x in got:
        assert isinstance(_strict(x), dict)  # strict JSON, valid UTF-8, one object
        assert not any(b < 0x20 or b == 0x7F for b in x), "a raw control byte in an output line"
    return got, stats


_RULESET: Ruleset | None = None


def _docs(lines: list[bytes]) -> tuple[list[dict[str, Any]], Stats]:
    got, stats = _run(lines)
    return [_strict(x) for x in got], stats


class TestTolerantReader:
    def test_lone_surrogates_and_pairs(self) -> None:
        doc, found = read(b'{"a":"\\ud800","b":"\\ud83d\\ude00","c":"\\\\ud800","d":"\\udc00"}')
        assert doc == {"a": "\ufffd", "b": "\U0001f600", "c": "\\ud800", "d": "\ufffd"}
        assert found == ["invalid_utf8"]

    def test_too_deep_is_skipped_without_recursion(self) -> None:
        """A million levels: skipped in bulk (no recursion, no quadratic walk), the rest still read."""
        line = b'{"a":' + b"[" * 1_000_000 + b"]" * 1_000_000 + b',"b":"x"}'
        doc, found = read(line)
        assert doc is not None and doc["b"] == "x" and found == ["too_deep"]
        depth, cur = 1, doc["a"]
        while cur:
            depth, cur = depth + 1, cur[0]
        assert depth == MAX_DEPTH - 1  # and the root object

    def test_numbers_out_of_range_stay_verbatim(self) -> None:
        line = b'{"a":1e400,"b":' + b"7" * 5000 + b',"c":' + b"9" * 400 + b',"d":2.5,"e":-1e-400}'
        doc, found = read(line)
        assert doc is not None and found == ["out_of_range"]
        assert doc["c"] == int("9" * 400) and doc["e"] == 0.0  # as msgspec reads them
        assert msgspec.json.encode(doc) == line.replace(b"-1e-400", b"-0.0")

    def test_duplicates_merge_like_arrays(self) -> None:
        doc, found = read(b'{"c":"a","c":"b","c":["d"],"p":{"x":1},"p":{"y":2},"l":[1],"l":[2]}', True)
        assert doc == {"c": ["a", "b", "d"], "p": {"x": 1, "y": 2}, "l": [1, 2]}
        assert found == ["duplicate_key"]
        assert read(b'{"c":"a","c":"b"}')[0] == {"c": "b"}  # without merging: the last, as msgspec

    def test_broken_syntax_is_stepped_over(self) -> None:
        doc, found = read(b'{"a" "b", junk, "c":tru, "d":[1 2], "e":"open')
        assert doc == {"a": "b", "d": [1, 2], "e": "open"} and "invalid_json" in found

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_never_raises(self, data: bytes) -> None:
        doc, _ = read(data, merge_duplicates=True)
        if doc is not None:
            msgspec.json.encode(doc)  # what it read encodes back: no surrogate, no unencodable value

    @settings(max_examples=300, deadline=None)
    @given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                        | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))
    def test_agrees_with_msgspec_on_strict_json(self, value: Any) -> None:
        line = msgspec.json.encode({"v": value})
        assert read(line, merge_duplicates=True) == (msgspec.json.decode(line), [])
