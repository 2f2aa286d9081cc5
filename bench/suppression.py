"""Alerts per malicious command, without and with `--suppress-window`: an attacker retrying one
reverse shell from a web server.

    python bench/suppression.py                    # shipped rules
    python bench/suppression.py --collections      # shipped rules + ../shared/rulesets (sigma, elastic/linux)

For each reverse-shell family of ../shared/peers/gen_corpus.py (its MAL table, read as data, never
run), `--attempts` retries `--every` seconds apart on one host, each as the process tree a web shell
makes: apache2 -> `sh -c '<command>'` -> the interpreter -> the shell it spawns (when it spawns
one), and the interpreter's connection to the C2 address. Each family's events go through
`shellsieve run` as a child process, without and with `--suppress-window`; the table gives alerted
events and rule hits (entries of `shellsieve.alerts`) per malicious command, i.e. per attempt.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
GEN_CORPUS = SHARED / "peers" / "gen_corpus.py"
COLLECTIONS = [SHARED / "rulesets" / "sigma", SHARED / "rulesets" / "elastic" / "linux"]
CLI = str(Path(sys.executable).parent / "shellsieve")
T0 = datetime(2026, 11, 22, 8, 0, 0, tzinfo=UTC)
HOST = {"id": "5f1e0c2b9a7d4e31", "name": "web-01", "os": {"type": "linux", "family": "debian"}}
WWW = {"name": "www-data", "id": "33"}
C2_IP, C2_PORT = "203.0.113.7", 4444


def families() -> dict[str, tuple[str, str, str]]:
    """gen_corpus.py's MAL table (family -> name, executable, command template), read with `ast`."""
    tree = ast.parse(GEN_CORPUS.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MAL" for t in node.targets):
            return ast.literal_eval(node.value)  # type: ignore[no-any-return]
    raise SystemExit(f"no MAL table in {GEN_CORPUS}")


_SPAWN = re.compile(r'pty\.spawn\("([^"]+)"\)|(/bin/(?:ba)?sh)( -i)?|\b(bash) -i\b')


def _shell(cmd: str) -> list[str] | None:
    """The argv of the shell the command spawns (its first /bin/sh, bash -i or pty.spawn), or None."""
    m = _SPAWN.search(cmd.split(" ", 1)[1])
    if m is None:
        return None
    if m.group(1):
        return [m.group(1)]
    if m.group(2):
        return [m.group(2), "-i"] if m.group(3) else [m.group(2)]
    return ["bash", "-i"]


def _argv(cmd: str) -> list[str]:
    try:
        return shlex.split(cmd)
    except ValueError:
        return cmd.split()


def _proc(ts: datetime, ident: str, argv: list[str], exe: str, parent: dict[str, Any]) -> dict[str, Any]:
    return {
        "@timestamp": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec",
                  "dataset": "endpoint.events.process"},
        "host": HOST,
        "process": {"entity_id": ident, "pid": 20000 + zlib.crc32(ident.encode()) % 30000, "name": Path(exe).name,
                    "executable": exe, "args": argv, "args_count": len(argv), "command_line": shlex.join(argv),
                    "working_directory": "/var/www/html",
                    "parent": {k: parent[k] for k in ("entity_id", "pid", "name", "executable", "command_line")
                               if k in parent}},
        "user": WWW,
    }


def attempt(family: str, spec: tuple[str, str, str], k: int, ts: datetime) -> list[dict[str, Any]]:
    """One retry: the web server's `sh -c` wrapper, the interpreter, its shell, its connection."""
    name, exe, template = spec
    cmd = template.format(ip=C2_IP, port=C2_PORT)
    web = {"entity_id": "apache2-main", "pid": 812, "name": "apache2", "executable": "/usr/sbin/apache2",
           "command_line": "/usr/sbin/apache2 -k start"}
    wrap = _proc(ts, f"{family}-{k}-sh", ["sh", "-c", cmd], "/usr/bin/sh", web)
    interp_argv = _argv(cmd)
    interp_argv[0] = name
    interp = _proc(ts + timedelta(milliseconds=3), f"{family}-{k}-i", interp_argv, exe, wrap["process"])
    interp["process"]["command_line"] = cmd  # as the command was typed
    out = [wrap, interp]
    shell = _shell(cmd)
    if shell is not None:
        sh_exe = "/usr/bin/bash" if "bash" in shell[0] else "/usr/bin/sh"
        out.append(_proc(ts + timedelta(milliseconds=40), f"{family}-{k}-s", shell, sh_exe, interp["process"]))
    net_ts = ts + timedelta(milliseconds=20)
    out.append({
        "@timestamp": net_ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event": {"kind": "event", "category": ["network"], "type": ["start"], "action": "connection_attempted",
                  "dataset": "endpoint.events.network"},
        "host": HOST, "user": WWW,
        "process": {k: interp["process"][k] for k in ("entity_id", "pid", "name", "executable")},
        "source": {"ip": "10.0.0.5", "port": 40000 + k}, "destination": {"ip": C2_IP, "port": C2_PORT},
        "network": {"transport": "tcp", "direction": "egress"},
    })
    return sorted(out, key=lambda e: e["@timestamp"])


def _run(data: bytes, rule_args: list[str], extra: list[str]) -> tuple[int, int, dict[str, int]]:
    """(alerted events, rule hits, suppressed per rule) of `shellsieve run` over `data`."""
    res = subprocess.run([CLI, "run", "--stats-interval", "0", *rule_args, *extra], input=data,
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"shellsieve run failed ({res.returncode}):\n{res.stderr.decode()[-2000:]}")
    events = hits = 0
    for line in res.stdout.splitlines():
        alerts = msgspec.json.decode(line).get("shellsieve", {}).get("alerts")
        if alerts:
            events += 1
            hits += len(alerts)
    stopped = msgspec.json.decode(res.stderr.splitlines()[-1])
    return events, hits, stopped["suppressed_per_rule"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--attempts", type=int, default=10, help="retries of each command (default: %(default)s)")
    ap.add_argument("--every", type=float, default=60, help="seconds between retries (default: %(default)s)")
    ap.add_argument("--window", default="5m", help="the --suppress-window of the second run (default: %(default)s)")
    ap.add_argument("--collections", action="store_true", help="add the SigmaHQ and Elastic collections")
    args = ap.parse_args()
    rule_args = ["--rules", str(ROOT / "patterns")]
    if args.collections:
        rule_args += [a for p in COLLECTIONS for a in ("--rules", str(p))]
    n = args.attempts
    print(f"{n} attempts {args.every:g} s apart per family; per malicious command: alerted events / rule hits; "
          f"rules: {'shipped + collections' if args.collections else 'shipped'}")
    print(f"{'family':<16} {'events':>6} | {'before':>11} | {'after ' + args.window:>11} | suppressed")
    tot = [0, 0, 0, 0]
    for family, spec in families().items():
        events = [e for k in range(n) for e in attempt(family, spec, k, T0 + timedelta(seconds=k * args.every))]
        data = b"".join(msgspec.json.encode(e) + b"\n" for e in events)
        before = _run(data, rule_args, [])
        after = _run(data, rule_args, ["--suppress-window", args.window])
        for i, v in enumerate((*before[:2], *after[:2])):
            tot[i] += v
        print(f"{family:<16} {len(events) // n:>6} | {before[0] / n:>5.1f} / {before[1] / n:>4.1f}"
              f" | {after[0] / n:>5.1f} / {after[1] / n:>4.1f} | {sum(after[2].values())}")
    k = n * len(families())
    print(f"{'all':<16} {'':>6} | {tot[0] / k:>5.1f} / {tot[1] / k:>4.1f} | {tot[2] / k:>5.1f} / {tot[3] / k:>4.1f} |")


if __name__ == "__main__":
    main()
