"""The reverse shells of the repository's test corpora, as one stream of ECS events.

Every reverse shell must stay alerted under the recommended selection (docs/noise.md). Sources:

- the seed cases of tests/test_seeds.py: seed 000's triggering `php -r fsockopen` commands, seed
  001's tested payload and every listed `python -c` variant, and each branch of seed 002's sequence
  followed by its connection;
- the reverse shells of /work/shared/peers/gen_corpus.py (lines whose `.truth` says `mal:`), each
  with the connection the generator wrote for it (in the 1 s window, late, or to loopback);
- the reverse shells of the built-in noise sample (shellsieve.noise.SHELLS).

A shell is one or two events (the process start and its connection); it counts as alerted when one
of them is. Each shell gets its own entity ids and a time 10 s after the previous one, so that the
sequence rules see each pair alone and in order.
"""

from __future__ import annotations

import copy
import itertools
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

__all__ = ["Shell", "shells", "seed_shells", "peer_shells", "sample_shells", "PEER_CORPUS"]

TESTS = Path(__file__).resolve().parents[1]
PEER_CORPUS = TESTS.parents[1] / "shared" / "peers" / "gen_corpus.py"
PEER_EVENTS = 50_000  # about 46 reverse shells of all ten families with the generator's default seed
T0 = datetime(2026, 11, 1, 0, 0, 0, tzinfo=UTC)


class Shell(NamedTuple):
    """One reverse shell: where it comes from and its events (process start, then maybe its connection)."""
    label: str
    events: list[dict[str, Any]]


def _params(func: Any, name: str) -> list[Any]:
    """The values a test's @pytest.mark.parametrize gives `name`."""
    for mark in getattr(func, "pytestmark", []):
        if mark.name == "parametrize" and mark.args[0] == name:
            return list(mark.args[1])
    raise LookupError(f"{func.__qualname__} has no parametrize of {name!r}")


def seed_shells() -> list[Shell]:
    """The reverse shells of the seed tests (tests/test_seeds.py)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import test_seeds as ts

    out = [Shell(f"seed000:{i}", [ts.cmdline(line, "php")])
           for i, line in enumerate(_params(ts.TestSeed000PhpFsockopen.test_seed_triggering_commands, "line"))]
    out.append(Shell("seed001:tested", [ts.cmdline(ts.TESTED_PAYLOAD, "python")]))
    for interp, imports, target, dup2, shell, quote in itertools.product(
            ["python", "python3"], sorted(ts.IMPORTS), sorted(ts.TARGETS), sorted(ts.DUP2), ["sh", "bash"], ['"', "'"]):
        line = ts.python_payload(interp, imports, target, dup2, shell, quote)
        out.append(Shell(f"seed001:{interp}:{imports}:{target}:{dup2}:{shell}:{quote}", [ts.cmdline(line, interp)]))
    for branch, args in ts.BRANCHES.items():
        first = ts.exec_of(args)
        out.append(Shell(f"seed002:{branch}", [first, ts.net(process__name=first["process"]["name"])]))
    return out


def peer_shells(events: int = PEER_EVENTS) -> list[Shell]:
    """The reverse shells gen_corpus.py writes in its first `events` events, each with its connection."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "corpus.ndjson"
        subprocess.run([sys.executable, str(PEER_CORPUS), str(out), str(events)], check=True, capture_output=True)
        lines = out.read_bytes().splitlines()
        truth = Path(f"{out}.truth").read_text().splitlines()
    decoded = [(t, msgspec.json.decode(line)) for t, line in zip(truth, lines, strict=True)
               if t.startswith(("mal:", "net:"))]
    starts = {ev["process"]["entity_id"]: Shell(t, [ev]) for t, ev in decoded if t.startswith("mal:")}
    for t, ev in decoded:
        if t.startswith("net:") and ev["process"]["entity_id"] in starts:
            starts[ev["process"]["entity_id"]].events.append(ev)
    return [Shell(f"peers:{s.label}:{i}", s.events) for i, s in enumerate(starts.values())]


def sample_shells() -> list[Shell]:
    """The reverse shells of the built-in noise sample, each with its connection."""
    from shellsieve import noise

    lines = [msgspec.json.decode(line) for line, _ in noise.sample()]
    names = {name for name, _ in noise.SHELLS}
    procs = [ev for ev in lines if ev["event"]["category"] == ["process"] and ev["process"]["args"] in
             [args for _, args in noise.SHELLS]]
    nets = {ev["process"]["entity_id"]: ev for ev in lines if ev["event"]["category"] == ["network"]
            and ev["process"]["name"] in names}
    return [Shell(f"sample:{ev['process']['name']}:{i}", [ev, *([nets[ev["process"]["entity_id"]]]
                                                               if ev["process"]["entity_id"] in nets else [])])
            for i, ev in enumerate(procs)]


def _time(ev: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(ev["@timestamp"].replace("Z", "+00:00"))


def _stamp(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _rebase(k: int, shell: Shell) -> Shell:
    """Shell k at T0 + 10k s, its events keeping their spacing; entity ids made its own."""
    events = copy.deepcopy(shell.events)
    start = _time(events[0])
    for ev in events:
        ev["@timestamp"] = _stamp(T0 + timedelta(seconds=10 * k) + (_time(ev) - start))
        proc = ev.setdefault("process", {})
        proc["entity_id"] = f"shell{k:05d}"
        proc.setdefault("parent", {})["entity_id"] = f"shell{k:05d}p"
    if len(events) > 1:  # the connection's own process record has no parent
        events[1]["process"].pop("parent")
    return Shell(shell.label, events)


def shells(peers: bool = True) -> list[Shell]:
    """Every reverse shell of the test corpora, rebased into one stream in time order."""
    found = seed_shells() + sample_shells()
    if peers and PEER_CORPUS.is_file():
        found += peer_shells()
    return [_rebase(k, s) for k, s in enumerate(found)]
