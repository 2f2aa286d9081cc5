"""Seeded corpus of ECS process and network events, shaped like Elastic Defend's (about 650 bytes each).

0.1% reverse shells of several families, about 2% web-server children, and the network events the
seed sequence needs; everything else is ordinary process starts. No blobs: the corpus is generated.
"""

from __future__ import annotations

import calendar
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

# tests/format_samples.py writes auditd records the way the kernel does; the bench reuses it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

__all__ = ["events", "write_corpus", "write_audit_corpus", "write_cmdline_corpus"]

# The templates live with the built-in benign sample that judges noisy anchors (plugin/noise.py):
# one list, so the sample is the corpus's and the corpus is unchanged.
from shellsieve.noise import BENIGN, SHELLS, WEB_CHILDREN, WEB_PARENTS, process_event  # noqa: E402  after the sys.path insert above


def _process(rng: random.Random, i: int, ts: str, name: str, args: list[str], parent: tuple[str, str],
             user: tuple[str, str], cwd: str) -> dict[str, Any]:
    return process_event(i, name, args, parent, user, cwd, ts, rng.getrandbits(48))


def _network(i: int, ts: str, name: str) -> dict[str, Any]:
    return {
        "@timestamp": ts,
        "event": {"action": "connection_attempted", "category": ["network"], "kind": "event", "type": ["start"]},
        "host": {"id": f"h{i % 50:03d}-9c1e0b7a", "os": {"type": "linux"}},
        "process": {"entity_id": f"Y2Y{i:010d}", "name": name, "pid": 1000 + i % 60000},
        "destination": {"ip": "10.10.10.10", "port": 9001}, "source": {"ip": "10.0.0.5", "port": 51234},
        "network": {"direction": "egress", "transport": "tcp"},
    }


_START = calendar.timegm((2026, 11, 22, 10, 0, 0))


def events(n: int, seed: int = 42, unique: bool = False) -> Iterator[dict[str, Any]]:
    """n events: 0.1% reverse shells (each followed by its connection), ~2% web-server children.
    The benign commands come from a short list, so command lines recur, as a host's cron jobs and
    agents do; `unique` appends ` #<n>` to every command line, so that no two are the same."""
    for ev in _events(n, seed):
        if unique and "command_line" in ev["process"]:
            ev["process"]["command_line"] += f" #{ev['process']['entity_id'][3:]}"
        yield ev


def _events(n: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    emitted = 0
    i = 0
    while emitted < n:
        i += 1
        # ten events a second, never going back: a sequence's open state expires on event time
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_START + i // 10)) + f".{(i % 10) * 100:03d}Z"
        r = rng.random()
        if r < 0.001:
            name, args = rng.choice(SHELLS)
            yield _process(rng, i, ts, name, args, ("bash", "/bin/bash"), ("root", "0"), "/tmp")
            emitted += 1
            if emitted < n:
                yield _network(i, ts, name)
                emitted += 1
            continue
        if r < 0.021:
            name, args = rng.choice(WEB_CHILDREN)
            parent = rng.choice(WEB_PARENTS)
            yield _process(rng, i, ts, name, args, parent, ("www-data", "33"), "/var/www/html")
        else:
            name, args = rng.choice(BENIGN)
            yield _process(rng, i, ts, name, args, ("bash", "/bin/bash"), ("deploy", "1000"), "/home/deploy")
        emitted += 1


def write_corpus(path: str, n: int, seed: int = 42, unique: bool = False) -> int:
    """Write n events as NDJSON; returns the byte count."""
    enc = msgspec.json.Encoder()
    size = 0
    with open(path, "wb") as f:
        for ev in events(n, seed, unique):
            line = enc.encode(ev) + b"\n"
            size += len(line)
            f.write(line)
    return size


def _exec_of(ev: dict[str, Any], serial: int) -> Any:
    """An ECS process event as format_samples' Exec (the writer of real-shaped auditd records)."""
    from format_samples import Exec

    p = ev["process"]
    t = 1795341600.0 + serial * 0.01
    return Exec(tuple(p["args"]), p["executable"], pid=p["pid"], ppid=p.get("parent", {}).get("pid", 1),
                uid=int(ev.get("user", {}).get("id", 0)), cwd=p.get("working_directory", "/"), time=t, serial=serial)


def write_audit_corpus(path: str, n: int, seed: int = 42) -> int:
    """The same n events as auditd writes them: an execve's SYSCALL, EXECVE, CWD, PATH x2, PROCTITLE and
    EOE records; a connection's SYSCALL, SOCKADDR, PROCTITLE, EOE. Returns the byte count."""
    from format_samples import audit_connect, audit_exec

    size = 0
    last = None
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        for serial, ev in enumerate(events(n, seed), start=1000):
            if "args" in ev["process"]:
                last = _exec_of(ev, serial)
                recs = audit_exec(last)
            else:
                from dataclasses import replace

                d = ev["destination"]
                recs = audit_connect(replace(last, serial=serial, connect=(d["ip"], d["port"])))
            for r in recs:
                size += f.write(r + "\n")
    return size


def write_cmdline_corpus(path: str, n: int, seed: int = 42) -> int:
    """The command lines of the same n events' process starts, one per line (network events have none)."""
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        for ev in events(n, seed):
            if "command_line" in ev["process"]:
                size += f.write(ev["process"]["command_line"] + "\n")
    return size
