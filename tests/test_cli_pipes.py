"""The installed CLI as Vector's exec source runs it: a child process with pipes."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from conftest import PATTERNS, PHP_FSOCKOPEN, ROOT, WEB_SERVER_CHILD, rule_ids, seed_rule_ids

CLI = str(Path(sys.executable).parent / "shellsieve")
EXAMPLES = ROOT / "examples" / "events.ndjson"


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([CLI, "run", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes | None:
    """One line from the child's stdout, or None if none arrives in `timeout` seconds."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1)
        if not chunk:
            return None
        buf += chunk
    return buf


class TestRunPipes:
    def test_every_line_in_order_unmatched_byte_identical(self) -> None:
        """All example events come back in order; lines without hits are byte-identical, hits enriched."""
        data = EXAMPLES.read_bytes()
        res = subprocess.run([CLI, "run", "--stats-interval", "0"], input=data, capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode()
        inp, out = data.splitlines(), res.stdout.splitlines()
        assert len(out) == len(inp)
        tagged = 0
        for a, b in zip(inp, out):
            try:
                doc_in = msgspec.json.decode(a)
            except msgspec.DecodeError:
                assert msgspec.json.decode(b) == {"message": a.decode()}
                continue
            doc_out = msgspec.json.decode(b)
            if rule_ids(doc_out):
                tagged += 1
                assert doc_out["event"]["kind"] == "alert"
                assert doc_out["process"] == doc_in["process"]  # the event itself is kept
            else:
                assert a == b
        assert tagged >= 4

    def test_stdout_holds_events_only_and_stderr_is_json(self) -> None:
        """stdout carries only the events; the filter's logs and stats are JSON lines on stderr."""
        res = subprocess.run([CLI, "run", "--stats-interval", "0"], input=EXAMPLES.read_bytes(),
                             capture_output=True, timeout=60)
        for line in res.stdout.splitlines():
            doc = msgspec.json.decode(line)
            assert "event" not in doc or doc.get("event") != "stats"
        logs = [msgspec.json.decode(x) for x in res.stderr.splitlines()]
        events = [x["event"] for x in logs]
        assert events[0] == "started" and events[-1] == "stopped"
        final = logs[-1]
        assert final["events_in"] == final["events_out"] == len(EXAMPLES.read_bytes().splitlines())
        # the one text line is a plain command line under the default `--format auto`
        assert final["formats"] == {"cmdline": 1, "ecs": len(EXAMPLES.read_bytes().splitlines()) - 1}
        assert final["malformed"]["invalid_json"] == 0
        assert final["hits_per_rule"][PHP_FSOCKOPEN] == 1

    def test_format_ecs_counts_a_text_line_as_malformed(self) -> None:
        """Forced `--format ecs`: no detection; a line that is not JSON is forwarded and counted."""
        res = subprocess.run([CLI, "run", "--stats-interval", "0", "--format", "ecs"], input=EXAMPLES.read_bytes(),
                             capture_output=True, timeout=60)
        final = msgspec.json.decode(res.stderr.splitlines()[-1])
        assert final["malformed"]["invalid_json"] == 1 and final["formats"] == {"ecs": final["events_in"]}
        text_line = next(x for x in EXAMPLES.read_bytes().splitlines() if not x.startswith(b"{"))
        assert {"message": text_line.decode()} in [msgspec.json.decode(x) for x in res.stdout.splitlines()]

    def test_line_reaches_stdout_within_100ms_when_input_pauses(self) -> None:
        """With input paused after one line, that line is written out promptly (well under 100 ms)."""
        with _spawn("--stats-interval", "0") as proc:
            assert proc.stdin is not None
            assert _readline(proc, 0.0) is None
            # Wait for start-up (rule compile) by round-tripping a first line.
            proc.stdin.write(b'{"warm":"up"}\n')
            proc.stdin.flush()
            assert _readline(proc, 30.0) == b'{"warm":"up"}\n'
            line = b'{"process":{"command_line":"php -r \'$s=fsockopen(\\"10.1.1.1\\",4444);\'"}}\n'
            proc.stdin.write(line)
            proc.stdin.flush()
            # The input stays open: the line must come out without waiting for more. (The 100 ms
            # figure is measured in bench/, not asserted here on a shared machine.)
            got = _readline(proc, 2.0)
            assert got is not None and seed_rule_ids(msgspec.json.decode(got)) == [PHP_FSOCKOPEN]
            proc.kill()

    def test_auditd_event_without_eoe_leaves_after_the_timeout(self) -> None:
        """The exec contract with input paused mid-event: the records of an auditd event whose EOE has not
        come wait (the event may still grow), then leave on their own after --audit-timeout, in order,
        with the one alert on the EXECVE line; an EOE releases an event without waiting."""
        from test_auditd import REAL

        with _spawn("--stats-interval", "0", "--audit-timeout", "0.3") as proc:
            assert proc.stdin is not None
            proc.stdin.write(b'{"warm":"up"}\n')
            proc.stdin.flush()
            assert _readline(proc, 30.0) == b'{"warm":"up"}\n'
            proc.stdin.write("".join(x + "\n" for x in REAL[:-1]).encode())
            proc.stdin.flush()
            t0 = time.monotonic()
            first = _readline(proc, 5.0)
            waited = time.monotonic() - t0
            assert first is not None and msgspec.json.decode(first) == {"message": REAL[0]}
            assert waited >= 0.25  # held for the timeout, not written record by record
            second = _readline(proc, 1.0)
            assert second is not None and seed_rule_ids(msgspec.json.decode(second)) == [PHP_FSOCKOPEN]
            for _ in REAL[2:-1]:
                assert _readline(proc, 1.0) is not None
            proc.kill()
        with _spawn("--stats-interval", "0", "--audit-timeout", "120") as proc:
            assert proc.stdin is not None
            proc.stdin.write("".join(x + "\n" for x in REAL).encode())
            proc.stdin.flush()
            # a complete event (EOE seen) leaves at once, long before the 120 s timeout
            got = [_readline(proc, 30.0) for _ in REAL]
            assert all(g is not None for g in got)
            proc.kill()

    def test_sigterm_flushes_everything_read(self) -> None:
        """SIGTERM after input was read, with no newline at the end, still writes every line and exits 0."""
        with _spawn("--stats-interval", "0") as proc:
            self._sigterm(proc)

    def _sigterm(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b'{"a":1}\n{"b":2}\n')
        proc.stdin.flush()
        assert _readline(proc, 30.0) == b'{"a":1}\n'
        assert _readline(proc, 5.0) == b'{"b":2}\n'
        proc.stdin.write(b'{"c":3}')  # a last line without its newline
        proc.stdin.flush()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err.decode()
        assert rest == b'{"c":3}\n'
        assert b'"reason":"sigterm"' in err

    def test_only_alerts(self) -> None:
        """--only-alerts writes just the tagged events."""
        res = subprocess.run([CLI, "run", "--only-alerts", "--stats-interval", "0"],
                             input=EXAMPLES.read_bytes(), capture_output=True, timeout=60)
        docs = [msgspec.json.decode(x) for x in res.stdout.splitlines()]
        assert docs and all(rule_ids(d) for d in docs)
        assert any(WEB_SERVER_CHILD in rule_ids(d) for d in docs)


class TestCheck:
    def test_check_lists_shipped_rules(self) -> None:
        """`check` prints every shipped rule by format and nothing skipped."""
        res = subprocess.run([CLI, "check", "--format", "text", "--strict"], capture_output=True, timeout=60)
        out = res.stdout.decode()
        assert res.returncode == 0, out
        for fmt, n in (("elastic", 3), ("sigma", 9), ("wazuh", 2)):  # sigma: the seed rule and 8 of patterns/shellsieve
            assert f"{fmt}: {n} rules" in out
        assert "skipped: 0 rules" in out and "database:" in out

    def test_bad_rule_reported_with_path_id_and_reason(self, tmp_path: Path) -> None:
        """A rule that cannot be run is named with its file, line, rule id and construct; --strict fails."""
        bad = tmp_path / "bad.xml"
        bad.write_text('<group name="x,">\n  <rule id="999001" level="10">\n'
                       '    <if_sid>5710</if_sid>\n    <match>foo</match>\n  </rule>\n</group>\n')
        res = subprocess.run([CLI, "check", "--format", "text", "--rules", str(PATTERNS), "--rules", str(bad)],
                             capture_output=True, timeout=60)
        out = res.stdout.decode()
        assert res.returncode == 0
        assert f"{bad}:2:" in out and "rule 999001" in out and "<if_sid>" in out
        strict = subprocess.run([CLI, "check", "--strict", "--rules", str(bad), "--rules", str(PATTERNS)],
                                capture_output=True, timeout=60)
        assert strict.returncode == 1

    @pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["check", "--help"]])
    def test_help_explains_options(self, argv: list[str]) -> None:
        """--help documents each option."""
        res = subprocess.run([CLI, *argv], capture_output=True, timeout=30)
        assert res.returncode == 0
        text = res.stdout.decode()
        if argv[0] == "run":
            assert "--only-alerts" in text and "--rules" in text and "--strict" in text


class TestLineCap:
    def test_over_long_line_forwarded_and_counted(self) -> None:
        """A line over --max-line-bytes leaves byte for byte, unscanned, and is counted; the next lines are scanned."""
        long_line = b'{"process":{"command_line":"' + b"A" * 200_000 + b'"}}\n'
        hit = b'{"process":{"command_line":"php -r \'$s=fsockopen(\\"1.2.3.4\\",80);\'"}}\n'
        res = subprocess.run([CLI, "run", "--stats-interval", "0", "--max-line-bytes", "1000"],
                             input=long_line + hit, capture_output=True, timeout=60)
        out = res.stdout.splitlines(keepends=True)
        assert out[0] == long_line and rule_ids(msgspec.json.decode(out[1])) == [PHP_FSOCKOPEN]
        final = msgspec.json.decode(res.stderr.splitlines()[-1])
        assert final["malformed"]["line_too_long"] == 1 and final["events_in"] == final["events_out"] == 2


def _final(data: bytes, *args: str) -> tuple[list[bytes], dict[str, object]]:
    """stdout lines and the `stopped` event of one run over `data`."""
    res = subprocess.run([CLI, "run", "--stats-interval", "0", *args], input=data, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode()
    final = msgspec.json.decode(res.stderr.splitlines()[-1])
    assert final["event"] == "stopped"
    assert final["events_in"] == (final["events_out"] + final["events_dropped"] + final["events_pending"]
                                  + final["events_undelivered"])
    assert final["events_pending"] == 0
    return res.stdout.splitlines(keepends=True), final


class TestCounters:
    def test_empty_lines_are_counted_in_and_out(self) -> None:
        """An empty line leaves as `{"message":""}` and is counted on both sides: in == out."""
        out, final = _final(b'{"a":1}\n\n{"b":2}\n\n')
        assert out == [b'{"a":1}\n', b'{"message":""}\n', b'{"b":2}\n', b'{"message":""}\n']
        assert final["events_in"] == final["events_out"] == 4

    def test_byte_order_mark_opening_a_line_is_stripped(self) -> None:
        """A UTF-8 BOM at the start of the stream or of a line is an encoding mark: the line is read as
        the JSON event it is (and scanned), the BOM dropped and counted; one inside a line stays."""
        bom = b"\xef\xbb\xbf"
        hit = b'{"process":{"command_line":"php -r \'$s=fsockopen(\\"10.1.1.1\\",4444);\'"}}\n'
        out, final = _final(bom + hit + b'{"a":1}\n' + bom + b'{"b":2}\n' + b'echo \xef\xbb\xbfx\n')
        assert rule_ids(msgspec.json.decode(out[0])) == [PHP_FSOCKOPEN]
        assert out[1:3] == [b'{"a":1}\n', b'{"b":2}\n']
        assert msgspec.json.decode(out[3]) == {"message": "echo \ufeffx"}
        assert final["bom_stripped"] == 2 and final["formats"] == {"cmdline": 1, "ecs": 3}
        assert final["events_in"] == final["events_out"] == 4

    def test_unterminated_last_line_is_counted(self) -> None:
        """A last line without its newline at the end of input is processed and counted as such."""
        out, final = _final(b'{"a":1}\n{"b":2}')
        assert out == [b'{"a":1}\n', b'{"b":2}\n']
        assert final["unterminated_last_line"] == 1 and final["malformed"]["partial_line"] == 0
        assert final["events_in"] == final["events_out"] == 2
        _, final = _final(b'{"a":1}\n')
        assert final["unterminated_last_line"] == 0

    def test_only_alerts_drops_are_counted(self) -> None:
        """--only-alerts: every line read is either written (an alert) or counted as dropped."""
        data = EXAMPLES.read_bytes() + b"\n\xff\xfe\n"
        out, final = _final(data, "--only-alerts")
        assert final["events_in"] == len(data.splitlines())
        assert final["events_out"] == len(out) == final["alerts"]
        assert final["events_dropped"] == final["events_in"] - len(out)
