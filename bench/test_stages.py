"""Per-stage micro-benchmarks (pytest-benchmark), outside the default test run:

    python -m pytest bench/test_stages.py --benchmark-only

Each stage is timed on the same seeded corpus (bench/data.py, 20,000 Defend-shaped events) with the
shipped rules: framing a 1 MiB chunk into lines, the raw block scan, candidate selection (scan plus
anchor clauses), decoding candidate lines, confirming rules on decoded events, sequence correlation,
enrichment, and the non-ECS decoders (an auditd block, command lines).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from data import events, write_audit_corpus  # noqa: E402  after the sys.path insert above
from shellsieve.cli import build  # noqa: E402  after the sys.path insert above
from shellsieve.compile.confirm import EventContext  # noqa: E402  after the sys.path insert above
from shellsieve.compile.ruleset import Ruleset  # noqa: E402  after the sys.path insert above
from shellsieve.run.correlate import SequenceState  # noqa: E402  after the sys.path insert above
from shellsieve.run.enrich import Hit, enrich  # noqa: E402  after the sys.path insert above
from shellsieve.run.framing import Framer  # noqa: E402  after the sys.path insert above
from shellsieve.run.match import BlockMatcher  # noqa: E402  after the sys.path insert above
from shellsieve.run.route import Router  # noqa: E402  after the sys.path insert above
from shellsieve.run.stats import Stats  # noqa: E402  after the sys.path insert above

N = 20_000


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    _, rs, _ = build(None)
    return rs


@pytest.fixture(scope="module")
def block() -> bytes:
    return b"".join(msgspec.json.encode(e) + b"\n" for e in events(N, seed=3))


@pytest.fixture(scope="module")
def lines(block: bytes) -> list[bytes]:
    out = block.split(b"\n")
    out.pop()
    return out


@pytest.fixture(scope="module")
def candidates(ruleset: Ruleset, block: bytes, lines: list[bytes]) -> dict[int, Any]:
    return BlockMatcher(ruleset, Stats())._candidates(block, lines)


def test_framing(benchmark: Any, block: bytes) -> None:
    chunk = block[: 1 << 20]

    def run() -> int:
        return sum(len(p) for p, _ in Framer(1 << 20).feed(chunk))

    assert benchmark(run) > 0


def test_raw_scan(benchmark: Any, ruleset: Ruleset, block: bytes) -> None:
    benchmark(lambda: ruleset.database.scan(block, match_event_handler=lambda *a: None))


def test_candidates(benchmark: Any, ruleset: Ruleset, block: bytes, lines: list[bytes]) -> None:
    matcher = BlockMatcher(ruleset, Stats())
    found = benchmark(lambda: matcher._candidates(block, lines))
    assert 0 < len(found) < N // 10


def test_decode_candidates(benchmark: Any, ruleset: Ruleset, lines: list[bytes], candidates: dict[int, Any]) -> None:
    chosen = [lines[i] for i in candidates]
    decode = ruleset.schema.decoder.decode
    benchmark(lambda: [decode(x) for x in chosen])


def test_confirm(benchmark: Any, ruleset: Ruleset, lines: list[bytes], candidates: dict[int, Any]) -> None:
    decode = ruleset.schema.decoder.decode
    work = [(decode(lines[i]), sorted(r for r in rules if ruleset.rules[r].check is not None))
            for i, (rules, _, _) in candidates.items()]

    def run() -> int:
        n = 0
        for view, rules in work:
            ctx = EventContext(view, ruleset.scan_field)
            n += sum(1 for r in rules if ruleset.rules[r].check(ctx))  # type: ignore[misc]
        return n

    assert benchmark(run) > 0


def test_correlate(benchmark: Any) -> None:
    def run() -> int:
        state = SequenceState(2, 1.0, 100_000)
        done = 0
        for i in range(N):
            key = ("h", i // 2)
            done += state.advance(key, i * 0.001, i % 2, {}) is not None
        return done

    assert benchmark(run) == N // 2


def test_enrich(benchmark: Any, ruleset: Ruleset, lines: list[bytes]) -> None:
    hits = [Hit(ruleset.rules[0].rule), Hit(ruleset.rules[-1].rule)]
    docs = [msgspec.json.decode(x) for x in lines[:1000]]
    encode = msgspec.json.Encoder().encode
    benchmark(lambda: [encode(enrich(dict(d), hits)) for d in docs])


def test_auditd_block(benchmark: Any, ruleset: Ruleset, tmp_path_factory: Any) -> None:
    path = tmp_path_factory.mktemp("audit") / "audit.log"
    write_audit_corpus(str(path), 2_000)
    data = path.read_bytes()

    def run() -> int:
        stats = Stats()
        router = Router(BlockMatcher(ruleset, stats), stats)
        router.process(data, 0.0)
        router.finish()
        return stats.audit_events

    assert benchmark(run) == 2_000


def test_command_lines(benchmark: Any, ruleset: Ruleset, lines: list[bytes]) -> None:
    cmds = b"".join(msgspec.json.decode(x)["process"].get("command_line", "x").encode() + b"\n"
                    for x in lines[:5000])

    def run() -> bytes:
        stats = Stats()
        return Router(BlockMatcher(ruleset, stats), stats).process(cmds, 0.0)

    assert benchmark(run).count(b"\n") == 5000
