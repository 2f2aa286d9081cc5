"""The serve suite's corpus and runner: sequence-numbered events per connection, and the real
`shellsieve serve` in a child process between the peers of peers.py.

Every ECS event carries its number in `event.sequence` and its connection in `labels.conn`; every odd line
(malformed JSON, invalid UTF-8, a text line) carries the token `ssq-<conn>-<seq>-` in its text, so an
output event can be traced back to the one input line it came from.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest

from reliability.conftest import ecs_event

# SHELLSIEVE_CLI runs another build of the CLI (an installed binary, a wrapper under a profiler)
CLI = os.environ.get("SHELLSIEVE_CLI") or str(Path(sys.executable).parent / "shellsieve")
PHP_FSOCKOPEN = "100103"
ODD = ("invalid_json", "invalid_utf8", "not_object", "cmdline")
MALFORMED = {"invalid_json": "invalid_json", "invalid_utf8": "invalid_utf8", "not_object": "not_object"}
_TOKEN = re.compile(r"ssq-([A-Za-z0-9_]+)-(\d+)-")


def event(conn: str, seq: int, rng: random.Random, alert: bool = False) -> bytes:
    """One ECS process start numbered `seq` on connection `conn`."""
    obj = msgspec.json.decode(ecs_event(seq, rng, alert))
    obj["labels"] = {"conn": conn}
    return msgspec.json.encode(obj)


def odd(kind: str, conn: str, seq: int) -> bytes:
    """One line of `kind` (see ODD) with the token of (conn, seq) in its text; no newline in it."""
    tok = b"ssq-%s-%d-" % (conn.encode(), seq)
    if kind == "invalid_json":
        return b'{"note":"' + tok + b'", "process": {"name": "ls"'
    if kind == "invalid_utf8":
        return b'{"note":"' + tok + b'","process":{"command_line":"ls \xff\xfe /tmp"}}'
    if kind == "not_object":
        return b'["' + tok + b'"]'
    if kind == "cmdline":
        return b"ls -la /tmp/" + tok
    raise ValueError(kind)


@dataclass
class Stream:
    """The lines one connection sends, with the kind of each ("ecs", "alert" or an ODD kind)."""
    conn: str
    lines: list[bytes]
    kinds: list[str]

    @property
    def seqs(self) -> list[int]:
        return list(range(len(self.lines)))

    def malformed(self) -> Counter[str]:
        return Counter(MALFORMED[k] for k in self.kinds if k in MALFORMED)

    def records(self) -> list[dict[str, Any]]:
        """The lines as records (for Fluent Bit peers, which only carry maps); requires objects only."""
        return [json.loads(x) for x in self.lines]


def stream(conn: str, n: int, seed: int = 7, alert_every: int = 97, odd_every: int = 0) -> Stream:
    """`n` lines for `conn`: every `alert_every`-th a reverse shell, every `odd_every`-th (if > 0) an odd line."""
    rng = random.Random(f"{seed}-{conn}")
    lines, kinds = [], []
    for seq in range(n):
        if odd_every and seq % odd_every == odd_every - 1:
            kind = ODD[(seq // odd_every) % len(ODD)]
            lines.append(odd(kind, conn, seq))
        else:
            kind = "alert" if alert_every and seq % alert_every == alert_every // 2 else "ecs"
            lines.append(event(conn, seq, rng, kind == "alert"))
        kinds.append(kind)
    return Stream(conn, lines, kinds)


def trace(obj: dict[str, Any]) -> tuple[str, int] | None:
    """(conn, seq) of an output event, or None if it carries neither mark."""
    ev, labels = obj.get("event"), obj.get("labels")
    if isinstance(ev, dict) and "sequence" in ev and isinstance(labels, dict) and "conn" in labels:
        return labels["conn"], int(ev["sequence"])
    m = _TOKEN.search(obj.get("message", "") if isinstance(obj.get("message"), str) else json.dumps(obj))
    return (m.group(1), int(m.group(2))) if m else None


def is_alert(obj: dict[str, Any]) -> bool:
    ev = obj.get("event")
    return isinstance(ev, dict) and ev.get("kind") == "alert" and bool(obj.get("rule"))


@dataclass
class Delivery:
    """Per-connection account of what arrived downstream against what was sent."""
    lost: dict[str, list[int]] = field(default_factory=dict)
    reordered: dict[str, int] = field(default_factory=dict)  # inversions among first arrivals
    duplicates: dict[str, int] = field(default_factory=dict)
    missing_alerts: dict[str, list[int]] = field(default_factory=dict)
    untraced: int = 0
    received: int = 0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.reordered and not self.missing_alerts and not self.untraced

    def summary(self) -> str:
        def head(d: dict[str, Any]) -> dict[str, Any]:
            return {k: (v[:10] if isinstance(v, list) else v) for k, v in list(d.items())[:5]}
        return (f"received={self.received} lost={ {k: len(v) for k, v in self.lost.items()} } "
                f"first lost={head(self.lost)} reordered={head(self.reordered)} "
                f"duplicates={sum(self.duplicates.values())} missing_alerts={head(self.missing_alerts)} "
                f"untraced={self.untraced}")


def account(sent: Iterable[Stream], received: Iterable[dict[str, Any]],
            sent_seqs: dict[str, list[int]] | None = None, alerts: bool = True) -> Delivery:
    """Compare `received` (output events, in arrival order) with `sent`; `sent_seqs` narrows what must
    have arrived (e.g. only what was acknowledged); `alerts` checks every reverse shell that arrived is an alert."""
    got: dict[str, list[int]] = defaultdict(list)
    alerted: dict[str, set[int]] = defaultdict(set)
    d = Delivery()
    for obj in received:
        d.received += 1
        t = trace(obj)
        if t is None:
            d.untraced += 1
            continue
        got[t[0]].append(t[1])
        if is_alert(obj):
            alerted[t[0]].add(t[1])
    for s in sent:
        must = set(sent_seqs[s.conn]) if sent_seqs is not None else set(s.seqs)
        seen = got.get(s.conn, [])
        lost = sorted(must - set(seen))
        if lost:
            d.lost[s.conn] = lost
        firsts, have = [], set()
        for q in seen:
            if q not in have:
                have.add(q)
                firsts.append(q)
        inv = sum(1 for a, b in zip(firsts, firsts[1:]) if b < a)
        if inv:
            d.reordered[s.conn] = inv
        if len(seen) != len(have):
            d.duplicates[s.conn] = len(seen) - len(have)
        want = {q for q, k in zip(s.seqs, s.kinds) if k == "alert" and q in have}
        if alerts and want - alerted[s.conn]:
            d.missing_alerts[s.conn] = sorted(want - alerted[s.conn])
    return d


def parse_logs(raw: bytes) -> list[dict[str, Any]]:
    logs = []
    for line in raw.splitlines():
        try:
            logs.append(json.loads(line))
        except ValueError:
            logs.append({"event": "not_json", "line": line.decode("utf-8", "replace")})
    return logs


def rss_kib(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _connectable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        if parts.scheme == "unix":
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(parts.path)
        else:
            socket.create_connection((parts.hostname, parts.port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class Stopped:
    returncode: int
    logs: list[dict[str, Any]]
    stopped: dict[str, Any]  # the `stopped` event ({} if none was logged)
    seconds: float


class Serve:
    """A running `shellsieve serve`; stderr goes to a file read for its JSON logs."""

    def __init__(self, args: list[str], workdir: Path, timeout: float = 90) -> None:
        self.args = args
        self.err_path = workdir / f"serve-{time.monotonic_ns()}.stderr"
        self.out_path = self.err_path.with_suffix(".stdout")
        with self.err_path.open("wb") as err, self.out_path.open("wb") as out:
            self.proc = subprocess.Popen([CLI, "serve", *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited {self.proc.returncode} before `started`: "
                                   f"{self.err_path.read_bytes()[-3000:]!r}")
            if time.monotonic() > deadline:
                self.proc.kill()
                tail = self.err_path.read_bytes()[-3000:]
                raise TimeoutError(f"serve did not log `started` in {timeout} s: {tail!r}")
            time.sleep(0.05)
        self.started = next((x for x in self.logs() if x.get("event") == "started"), {})

    def _ready(self) -> bool:
        """`listening` logged (every listener bound), or `started` logged and every listener connectable."""
        names = {x.get("event") for x in self.logs()}
        if "listening" in names:
            return True
        if "started" not in names:
            return False
        urls = [self.args[i + 1] for i, a in enumerate(self.args) if a == "--listen"]
        return all(_connectable(u) for u in urls)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> list[dict[str, Any]]:
        return parse_logs(self.err_path.read_bytes())

    def stdout(self) -> bytes:
        return self.out_path.read_bytes()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> Stopped:
        """Send `sig`, wait for the exit, return the exit code and the logs."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        logs = self.logs()
        return Stopped(self.proc.returncode, logs, next((x for x in logs if x.get("event") == "stopped"), {}),
                       time.monotonic() - t0)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def serve_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile cache for the suite's serve processes: the shipped rules compile once."""
    return tmp_path_factory.mktemp("serve-cache")


@pytest.fixture
def start_serve(tmp_path: Path, serve_cache: Path) -> Iterator[Any]:
    """`start_serve(listen=[...], forward=..., *args) -> Serve` once its `started` line is logged; every
    process still running at teardown is killed."""
    procs: list[Serve] = []

    def start(listen: list[str], forward: str, *args: str, timeout: float = 90) -> Serve:
        argv = [a for url in listen for a in ("--listen", url)]
        argv += ["--forward", forward, "--cache-dir", str(serve_cache), "--stats-interval", "0", *args]
        s = Serve(argv, tmp_path, timeout)
        procs.append(s)
        return s

    yield start
    for s in procs:
        s.kill()


async def await_for(pred: Any, timeout: float, step: float = 0.05) -> bool:
    """Poll `pred()` from a coroutine until true or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(step)
    return bool(pred())
