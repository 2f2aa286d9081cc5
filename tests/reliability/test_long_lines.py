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

from shellsieve.events.argv import split_posix, split_windows


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
