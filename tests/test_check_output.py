"""`check --format`: text when stderr is a terminal, JSON lines otherwise, and the JSON carrying all the text does."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import PATTERNS, PHP_FSOCKOPEN
from shellsieve.admit import exceptions_for
from shellsieve.check_output import CheckReport, ExceptionsReport, output_format, render_json, render_text
from shellsieve.cli import build, main

CLI = str(Path(sys.executable).parent / "shellsieve")
NOISY_ID = "0b6f2e1d-7c55-4c8e-9a31-4f1c6e0a2d4b"
# a rule firing on most benign events (a warning, an error under --strict) and one shellsieve cannot run
_NOISY = f"""title: noisy
id: {NOISY_ID}
logsource:
  product: linux
  category: process_creation
detection:
  s:
    ParentImage|endswith: '/bash'
  condition: s
"""
_BAD = ('<group name="x,">\n  <rule id="999001" level="10">\n'
        '    <if_sid>5710</if_sid>\n    <match>foo</match>\n  </rule>\n</group>\n')


def _entry(rules: str, expires: str = "") -> str:
    return f"- rules: {rules}\n  comment: test\n{expires}  when:\n    - field: user.name\n      is: x\n"


# entries for a running rule, for every rule, for a rule that does not exist, and one expired
_EXCEPTIONS = (_entry(f"[{PHP_FSOCKOPEN}]") + _entry("all") + _entry("[typo-id]")
               + _entry("all", "  expires: 2020-01-01\n"))


@pytest.fixture(scope="module")
def extra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("extra")
    (d / "noisy.yml").write_text(_NOISY)
    (d / "bad.xml").write_text(_BAD)
    (d / "exc.yml").write_text(_EXCEPTIONS)
    return d


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _args(extra: Path, cache: Path) -> list[str]:
    return ["--rules", str(PATTERNS), "--rules", str(extra / "noisy.yml"), "--rules", str(extra / "bad.xml"),
            "--cache-dir", str(cache), "--exceptions", str(extra / "exc.yml")]


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


class TestAuto:
    def test_text_when_stderr_is_a_terminal(self, extra: Path, cache: Path) -> None:
        """With stderr on a pty and stdout a pipe, `check` prints the text summary."""
        leader, follower = pty.openpty()
        try:
            res = subprocess.run([CLI, "check", *_args(extra, cache)], stdout=subprocess.PIPE, stderr=follower,
                                 timeout=120)
        finally:
            os.close(follower)
            os.close(leader)
        out = res.stdout.decode()
        assert res.returncode == 0 and "\nloaded: 15 rules" in out and "exceptions: 2 entries" in out, out
        assert not out.startswith("{")

    def test_json_when_stderr_is_a_pipe(self, extra: Path, cache: Path) -> None:
        """With stderr a pipe, `check` prints JSON lines ending with the summary; exit status as for text."""
        res = subprocess.run([CLI, "check", *_args(extra, cache)], capture_output=True, timeout=120)
        lines = _lines(res.stdout.decode())
        assert res.returncode == 0 and lines[-1]["type"] == "summary" and lines[-1]["skipped"] == 1
        strict = subprocess.run([CLI, "check", "--strict", *_args(extra, cache)], capture_output=True, timeout=120)
        assert strict.returncode == 1 and _lines(strict.stdout.decode())[-1]["type"] == "summary"

    def test_explicit_formats_win(self) -> None:
        """--format text/json is kept whatever stderr is; auto on a closed or absent stderr is JSON."""
        closed = io.StringIO()
        closed.close()
        assert output_format("text", None) == "text" and output_format("json", sys.stderr) == "json"
        assert output_format("auto", closed) == "json" and output_format("auto", None) == "json"


@pytest.fixture(scope="module")
def report(extra: Path, cache: Path) -> CheckReport:
    _, ruleset, diags = build([PATTERNS, extra / "noisy.yml", extra / "bad.xml"], cache)
    paths = [extra / "exc.yml"]
    entries, ediags = exceptions_for(paths, ruleset)
    return CheckReport(ruleset, diags, False, False, ExceptionsReport(paths, entries, ediags))


class TestJsonLines:
    def test_every_line_parses_and_has_a_type(self, report: CheckReport) -> None:
        """Each line is one JSON object with a known `type`; the summary comes once, last."""
        lines = _lines(render_json(report))
        kinds = [x["type"] for x in lines]
        assert set(kinds) == {"rule", "diagnostic", "coverage", "exception_diagnostic", "exceptions", "summary"}
        assert kinds.count("summary") == 1 and kinds[-1] == "summary"

    def test_exceptions_report(self, report: CheckReport) -> None:
        """The exceptions files' diagnostics and the entries per rule, as the text gives them."""
        lines = _lines(render_json(report))
        [exc] = [x for x in lines if x["type"] == "exceptions"]
        assert exc == {"type": "exceptions", "entries": 2, "files": 1, "expired": 1, "errors": 1,
                       "per_rule": {PHP_FSOCKOPEN: 1}, "all_rules": 1}
        diags = {x["code"]: x for x in lines if x["type"] == "exception_diagnostic"}
        assert diags["SS504"]["severity"] == "error" and diags["SS504"]["rule_id"] == "typo-id"
        assert diags["SS504"]["location"].startswith(str(report.exceptions.paths[0]) + ":")  # type: ignore[union-attr]
        assert diags["SS506"]["severity"] == "warning"
        text = render_text(report)
        assert "exceptions: 2 entries in force from 1 files (1 expired, 1 errors)" in text
        assert f"  {PHP_FSOCKOPEN}: 1\n  all rules: 1\n" in text

    def test_carries_what_the_text_does(self, report: CheckReport) -> None:
        """Every diagnostic line, count and coverage row of the text is in the JSON, with the same values."""
        lines, text = _lines(render_json(report)), render_text(report)
        summary = lines[-1]
        rendered = [line for line in text.splitlines() if re.match(r"\S+:\d+:\d+: \w+\[SS\d+\]|\S+: \w+\[SS", line)]
        assert len(rendered) == sum(1 for x in lines if x["type"] in ("diagnostic", "exception_diagnostic")) > 0
        for label, key in (("skipped", "skipped"), ("unsupported rule types", "unsupported"),
                           ("replaced by another copy of their id", "replaced"),
                           ("untrusted (errors under --strict)", "untrusted")):
            assert f"\n{label}: {summary[key]} rules\n" in text, label
        assert summary["skipped"] == 1 and summary["untrusted"] == 1 and summary["warnings"] >= 1
        assert f"\nidentical copies read once: {summary['identical_copies']} files\n" in text
        for code, n in {**summary["skipped_by_code"], **summary["untrusted_by_code"]}.items():
            assert f"  {code} {summary['titles'][code]}: {n}\n" in text
        assert f"database: {summary['patterns']} patterns, {summary['database_bytes']} bytes" in text
        rows = [x for x in lines if x["type"] == "coverage"]
        assert sum(r["loaded"] for r in rows) == sum(summary["loaded"].values()) == 15
        assert sum(1 for x in lines if x["type"] == "rule") == 15
        for r in rows:
            assert re.search(rf"\n  {r['format']}\s+{re.escape(r['group'] or '-')}\s+{r['loaded']}\s+{r['skipped']}\s",
                             text), r

    def test_quiet_leaves_out_the_rule_lines(self, report: CheckReport) -> None:
        """--quiet drops the rule lines in JSON as it drops the rule list in text; the counts stay."""
        quiet = _lines(render_json(report._replace(quiet=True)))
        assert not any(x["type"] == "rule" for x in quiet) and quiet[-1] == _lines(render_json(report))[-1]

    def test_json_flag_is_format_json(self, extra: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--json prints the same lines as --format json."""
        assert main(["check", "--json", "--quiet", *_args(extra, cache)]) == 0
        first = _VOLATILE.sub("", capsys.readouterr().out)
        assert main(["check", "--format", "json", "--quiet", *_args(extra, cache)]) == 0
        assert _VOLATILE.sub("", capsys.readouterr().out) == first and first.endswith("}\n")


_VOLATILE = re.compile(r'"compile_s":[0-9.]+,"cache":"\w+"')
