"""Lossless ordered passthrough: every line leaves once, in order, as strict JSON or as it came.

The quick variants run by default (a few seconds each). The full sizes (a million lines, a million
distinct processes) are marked slow:

    python -m pytest tests/reliability/test_passthrough.py -m slow -q
"""

from __future__ import annotations

import io
import random
import resource
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.loop import run_filter
from shellsieve.settings import Settings

from .conftest import (MALFORMED_REASON, ODD_KINDS, PHP_FSOCKOPEN, Corpus, Result, ecs_event, iter_corpus, make_corpus,
                       odd_line, strict_json)

QUICK = 20_000
FULL = 1_000_000


def _rule_ids(doc: dict[str, Any]) -> list[str]:
    """Every matching rule's id (shellsieve.alerts; rule.id names only the most severe)."""
    ours = doc.get("shellsieve")
    alerts = ours.get("alerts") if isinstance(ours, dict) else None
    return [a["rule"]["id"] for a in alerts] if isinstance(alerts, list) else []


def _seq_in(doc: Any) -> int | None:
    event = doc.get("event") if isinstance(doc, dict) else None
    return event.get("sequence") if isinstance(event, dict) else None


def check_lines(pairs: Iterable[tuple[str, bytes]], out: Iterable[bytes]) -> int:
    """Output line i is input line i: the same bytes, its alert, or {"message": <it>}; returns the count."""
    last_seq = -1
    n = 0
    for seq, ((kind, line), got) in enumerate(zip(pairs, out, strict=True)):
        n += 1
        where = f"line {seq} ({kind}): {line[:120]!r} -> {got[:160]!r}"
        if kind == "ecs" or (got == line and kind != "alert"):
            assert got == line, where  # no hit: byte for byte
            continue
        if kind == "bom":  # the BOM is read past: the JSON line after it, byte for byte
            assert got == line.removeprefix(b"\xef\xbb\xbf"), where
            continue
        doc = strict_json(got)  # a line we rewrote is strict JSON: no raw control byte in it
        assert isinstance(doc, dict), where
        if kind == "alert":
            assert _seq_in(doc) == seq and PHP_FSOCKOPEN in _rule_ids(doc), where
            assert doc["process"] == strict_json(line)["process"], where
        else:
            msg = doc.get("message")
            assert isinstance(msg, str), where
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:  # how bad bytes are shown is not this test's business
                assert f'"sequence":{seq}' in msg, where
            else:
                assert msg == text.rstrip("\r"), where
        # The sequence numbers that can be read back go up one line at a time.
        got_seq = _seq_in(doc)
        if got_seq is not None:
            assert got_seq == seq and got_seq > last_seq, where
            last_seq = got_seq
    return n


def check_passthrough(corpus: Corpus, res: Result) -> None:
    """Every line of `corpus` once, in order, in the CLI's output (see check_lines)."""
    assert res.returncode == 0, res.stderr[-2000:].decode("utf-8", "replace")
    assert res.stdout.endswith(b"\n") or not corpus.lines
    out = res.stdout.split(b"\n")
    out.pop()
    assert check_lines(zip(corpus.kinds, corpus.lines), out) == len(corpus.lines)


def check_counts(kinds: Counter[str], n_bytes: int, res: Result) -> None:
    """`stopped` counts every line in, and each malformed line under its reason."""
    stopped = res.stopped
    assert stopped.get("reason") == "end_of_input", res.stderr[-2000:]
    assert stopped["events_in"] == kinds.total()
    assert stopped["bytes_in"] == n_bytes
    expected = Counter({r: 0 for r in MALFORMED_REASON.values()})
    for kind, reason in MALFORMED_REASON.items():
        expected[reason] += kinds[kind]
    n_bom = kinds["bom"]
    for reason, n in expected.items():
        assert stopped["malformed"][reason] == n, (reason, stopped)
    assert sum(stopped["malformed"].values()) == expected.total(), stopped
    assert stopped["bom_stripped"] == n_bom, stopped
    assert stopped["alerts"] >= kinds["alert"]


# -- the mixed corpus, quick ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick(run_shellsieve: Any) -> tuple[Corpus, Result]:
    corpus = make_corpus(QUICK, seed=19)
    assert set(ODD_KINDS) <= set(corpus.kinds)  # every kind of odd line is in
    return corpus, run_shellsieve(corpus.data)


class TestMixedCorpus:
    def test_every_line_once_in_order(self, quick: tuple[Corpus, Result]) -> None:
        """20,000 ECS events with 1% odd lines of every kind: each line once, in order, exact or strict JSON."""
        check_passthrough(*quick)

    def test_malformed_counted_by_reason(self, quick: tuple[Corpus, Result]) -> None:
        """`stopped` counts every line in and each malformed line under its reason."""
        corpus, res = quick
        check_counts(Counter(corpus.kinds), len(corpus.data), res)

    def test_events_out_counts_every_line(self, quick: tuple[Corpus, Result]) -> None:
        """events_out equals events_in when nothing is dropped (empty lines included)."""
        corpus, res = quick
        assert res.stopped["events_out"] == res.stopped["events_in"] == len(corpus.lines)


class TestEachOddKind:
    @pytest.mark.parametrize("kind", ODD_KINDS)
    def test_alone_between_events(self, kind: str, run_shellsieve: Any) -> None:
        """One odd line between two ECS events, and one at the very start: every line back, in order."""
        rng = random.Random(1)
        kinds = [kind, "ecs", kind, "ecs"]
        lines = [odd_line(kind, 0), ecs_event(1, rng, False), odd_line(kind, 2), ecs_event(3, rng, False)]
        corpus = Corpus(lines, kinds, list(range(4)))
        res = run_shellsieve(corpus.data)
        check_passthrough(corpus, res)
        check_counts(Counter(corpus.kinds), len(corpus.data), res)


class TestOddLinesThatHid:
    """Each of these fails on the code issue 19 was filed against."""

    def test_empty_lines_are_counted_out(self, run_shellsieve: Any) -> None:
        """Empty lines leave as {"message": ""} and count in events_out."""
        res = run_shellsieve(b'{"a":1}\n\n\n{"b":2}\n')
        assert res.stdout.count(b"\n") == 4
        assert res.stopped["events_out"] == 4

    def test_bom_line_is_not_a_command_line(self, run_shellsieve: Any) -> None:
        """A BOM before a JSON object is not taken for a command line."""
        res = run_shellsieve(odd_line("bom", 0) + b"\n" + odd_line("bom", 1) + b"\n")
        assert res.stdout.count(b"\n") == 2
        assert res.stopped["formats"].get("cmdline", 0) == 0, res.stopped["formats"]

    @pytest.mark.parametrize("defect", [pytest.param(b"\xff", id="invalid_utf8"),
                                        pytest.param(b"\\ud800", id="lone_surrogate")])
    def test_undecodable_matching_event_still_alerts(self, defect: bytes, run_shellsieve: Any) -> None:
        """A reverse shell in an event that cannot be decoded is scanned on its raw bytes and alerted."""
        line = ecs_event(0, random.Random(0), True)
        line = line.replace(b'"user":{', b'"note":"' + defect + b'","user":{')
        res = run_shellsieve(line + b"\n")
        (out,) = res.stdout.splitlines()
        assert PHP_FSOCKOPEN in _rule_ids(strict_json(out)), out[:300]
        assert res.stopped["malformed"]["invalid_utf8"] == 1

    def test_too_deep_matching_event_still_alerts(self, run_shellsieve: Any) -> None:
        """A reverse shell in an event with a 2,000-deep array is scanned on its raw bytes and alerted."""
        line = ecs_event(0, random.Random(0), True)
        line = line.replace(b'"user":{', b'"pad":' + b"[" * 2000 + b"]" * 2000 + b',"user":{')
        res = run_shellsieve(line + b"\n")
        (out,) = res.stdout.splitlines()
        assert PHP_FSOCKOPEN in _rule_ids(strict_json(out)), out[:300]
        assert res.stopped["malformed"]["too_deep"] == 1


class TestPartialLastLine:
    @pytest.mark.parametrize("kind", ["ecs", "alert", "fragment", "cmdline"])
    def test_last_line_without_newline(self, kind: str, run_shellsieve: Any) -> None:
        """A last line without its newline still leaves, as a whole line, after all before it."""
        corpus = make_corpus(200, seed=7)
        rng = random.Random(3)
        last = {"ecs": lambda: ecs_event(200, rng, False), "alert": lambda: ecs_event(200, rng, True),
                "fragment": lambda: ecs_event(200, rng, False)[:37],
                "cmdline": lambda: odd_line("cmdline", 200)}[kind]()
        corpus.lines.append(last)
        corpus.kinds.append({"fragment": "invalid_json"}.get(kind, kind))
        corpus.seqs.append(200)
        data = corpus.data[:-1]
        res = run_shellsieve(data)
        check_passthrough(corpus, res)
        assert res.stopped["events_in"] == len(corpus.lines)
        if kind == "fragment":
            assert res.stopped["malformed"]["invalid_json"] == corpus.malformed()["invalid_json"]

    def test_last_line_without_newline_bytes_in(self, run_shellsieve: Any) -> None:
        """bytes_in is the bytes read, not those plus the newline the filter adds to the last line."""
        data = b'{"a":1}\n{"b":2}'
        res = run_shellsieve(data)
        assert res.stdout == data + b"\n"
        assert res.stopped["bytes_in"] == len(data)


# -- correlation state under many distinct processes ----------------------------------------------

class _Log:
    """Records the structured events run_filter logs."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def _log(self, event: str, **kw: Any) -> None:
        self.events.append({"event": event, **kw})

    info = warning = error = debug = _log


def _sequence_openers(n: int) -> Iterator[bytes]:
    """n reverse-shell starts, each a distinct process and all in the same second, so that no open
    sequence expires (maxspan 1 s): each one opens the shipped sequence rule and stays open."""
    rng = random.Random(5)
    for i in range(n):
        yield ecs_event(i, rng, True, timestamp="2026-11-22T10:00:00.000Z") + b"\n"


class TestCorrelationState:
    def test_bounded_and_evictions_counted(self, shipped: Ruleset) -> None:
        """20,000 distinct processes opening a sequence under a cap of 1,000: 1,000 open, 19,000 evicted,
        every event back."""
        n, cap = 20_000, 1_000
        data = b"".join(_sequence_openers(n))
        out, log = io.BytesIO(), _Log()
        stats = run_filter(shipped, Settings(max_open_sequences=cap, stats_interval_s=0), io.BytesIO(data), out, log)
        (stopped,) = [e for e in log.events if e["event"] == "stopped"]
        assert stopped["open_sequences"] == cap
        assert stopped["sequence_evictions"] == n - cap
        assert stats.lines_in == stats.lines_out == n == out.getvalue().count(b"\n")

    @pytest.mark.slow
    def test_a_million_processes(self, run_shellsieve: Any, tmp_path: Path) -> None:
        """A million distinct processes through the CLI: open sequences stay at the default cap
        (Settings.max_open_sequences), the rest are evicted and counted, every event comes back."""
        cap = Settings().max_open_sequences
        data = tmp_path / "openers.ndjson"
        with data.open("wb") as f:
            f.writelines(_sequence_openers(FULL))
        out = tmp_path / "out.ndjson"
        res = run_shellsieve(data, timeout=3600, stdout_path=out)
        assert res.returncode == 0, res.stderr[-2000:]
        assert res.stopped["open_sequences"] == cap
        assert res.stopped["sequence_evictions"] == FULL - cap
        with out.open("rb") as f:
            out_lines = sum(1 for _ in f)
        assert res.stopped["events_in"] == res.stopped["events_out"] == out_lines == FULL
        rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        assert rss_mib < 1024, f"child peak RSS {rss_mib:.0f} MiB"


# -- full size --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_million_lines_lossless(run_shellsieve: Any, tmp_path: Path) -> None:
    """A million lines with 1% odd lines of every kind: each once, in order, counted by reason. The
    corpus is written to a file and regenerated from its seed to check the output: nothing is held."""
    src, dst = tmp_path / "in.ndjson", tmp_path / "out.ndjson"
    kinds: Counter[str] = Counter()
    with src.open("wb") as f:
        for kind, line in iter_corpus(FULL, seed=1919):
            kinds[kind] += 1
            f.write(line + b"\n")
    res = run_shellsieve(src, timeout=3600, stdout_path=dst)
    assert res.returncode == 0, res.stderr[-2000:]
    with dst.open("rb") as out:
        assert check_lines(iter_corpus(FULL, seed=1919), (line[:-1] for line in out)) == FULL
    check_counts(kinds, src.stat().st_size, res)
    assert all(kinds[k] > 100 for k in ODD_KINDS), kinds
