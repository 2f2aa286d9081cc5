"""`shellsieve --version` and `shellsieve rules` (issue 22, item 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest

from shellsieve.cli import main


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shellsieve.cli", *argv], capture_output=True, text=True,
                          timeout=60)


def test_version_names_every_component() -> None:
    done = _cli("--version")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert list(lines) == ["shellsieve", "hyperscan-library", "hyperscan-python", "python"]
    assert lines["shellsieve"] == metadata.version("shellsieve")
    assert lines["hyperscan-python"] == metadata.version("hyperscan")
    assert lines["hyperscan-library"][0].isdigit() and lines["hyperscan-library"].count(".") == 2
    assert lines["python"] == ".".join(map(str, sys.version_info[:3]))


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([])
    assert stop.value.code == 2
    assert "--version" in capsys.readouterr().err


def test_rules_table_lists_shipped_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "format", "severity", "status", "location"]
    assert any(line.startswith("100620 ") and "reverse_shells.xml:" in line for line in lines)
    assert {"elastic", "sigma", "wazuh"} <= {w for line in lines[1:] for w in line.split()}


def test_rules_json_lines_follow_selection(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--json", "--min-severity", "critical"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["severity"] == "critical" for r in rows)
    assert set(rows[0]) == {"id", "name", "format", "severity", "status", "location"}
    assert rows[0]["location"].rsplit(":", 1)[1].isdigit()


def test_rules_unknown_id_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--include-rule", "no-such-rule"]) == 2
    assert "--include-rule no-such-rule" in capsys.readouterr().err


def test_check_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """check --json (--format json): rule lines, then one summary line; exit statuses as for the text."""
    assert main(["check", "--json", "--no-cache"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rules = [x for x in lines if x["type"] == "rule"]
    assert lines[-1]["type"] == "summary" and sum(lines[-1]["loaded"].values()) == len(rules) > 0
    assert lines[-1]["patterns"] > 0 and lines[-1]["skipped_by_code"] == {}
    assert main(["check", "--json", "--no-cache", "--include-rule", "no-such-rule"]) == 2
