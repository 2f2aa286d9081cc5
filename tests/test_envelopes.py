"""Shipper envelopes: a raw line in Vector's `message` or Fluent Bit's, Docker's and CRI's `log` is
detected as the same line bare, an envelope without hits leaves byte for byte, and an alert keeps
every envelope field."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, rule_ids, PAYLOAD_RULES
from format_samples import LINUX_FORMATS, WINDOWS_FORMATS, WRITERS, Exec
from test_formats import LINUX_SCENARIOS, WINDOWS_SCENARIOS, _Log
from shellsieve.cli import main
from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.envelope import merge, parse_fields
from shellsieve.run.loop import run_filter
from shellsieve.run.match import BlockMatcher
from shellsieve.run.route import Router
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

_enc = msgspec.json.encode
TS = "2026-05-03T09:20:00.100Z"

# How each shipper hands a raw line on (keys in the order each writes them).
SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    # Vector's file source (socket, exec, stdin and syslog sources: the same `message`)
    "vector-file": lambda line: {"file": "/var/log/app.log", "host": "web-01", "message": line,
                                 "source_type": "file", "timestamp": TS},
    # Fluent Bit's tail input, as its http output (json_lines) sends it: `date` added
    "fluentbit-tail": lambda line: {"date": 1777800000.1, "log": line},
    # Docker's json-file log driver: the line keeps its newline
    "docker": lambda line: {"log": line + "\n", "stream": "stdout", "time": "2026-05-03T09:20:00.100000000Z"},
    # a CRI log line parsed by Fluent Bit's `cri` parser (or Vector's kubernetes_logs): `message`
    "cri": lambda line: {"time": "2026-05-03T09:20:00.100000000Z", "stream": "stdout", "logtag": "F",
                         "message": line},
}
PHP_LINE = "php -r '$s=fsockopen(\"10.10.10.10\",9001);'"


def wrap(shape: str, lines: list[bytes]) -> list[bytes]:
    return [_enc(SHAPES[shape](line.decode())) for line in lines]


def run_raw(ruleset: Ruleset, lines: list[bytes], **settings: Any) -> tuple[list[bytes], Stats]:
    """Lines through run_filter in-process; the output lines as bytes, and the counters."""
    out = io.BytesIO()
    stats = run_filter(ruleset, Settings(stats_interval_s=0, **settings),
                       io.BytesIO(b"".join(x + b"\n" for x in lines)), out, _Log())
    return out.getvalue().splitlines(), stats


def ids_per_line(ruleset: Ruleset, lines: list[bytes], **settings: Any) -> list[list[str]]:
    out, stats = run_raw(ruleset, lines, **settings)
    assert len(out) == len(lines)
    return [rule_ids(msgspec.json.decode(x)) for x in out]


def _format_cases() -> list[Any]:
    cases = []
    for shape in SHAPES:
        for fmts, scenarios in ((LINUX_FORMATS, LINUX_SCENARIOS), (WINDOWS_FORMATS, WINDOWS_SCENARIOS)):
            for fmt in fmts:
                cases.append(pytest.param(shape, fmt, scenarios, id=f"{shape}-{fmt}-{len(scenarios)}"))
    return cases


class TestSameDetection:
    @pytest.mark.parametrize("shape,fmt,scenarios", _format_cases())
    def test_envelope_detects_what_the_bare_line_detects(self, shipped: Ruleset, shape: str, fmt: str,
                                                         scenarios: list[tuple[str, Exec, set[str]]]) -> None:
        """Every scenario in every format, wrapped, alerts the same rules on the same lines as bare."""
        for name, ex, _ in scenarios:
            lines = WRITERS[fmt](ex)
            bare = ids_per_line(shipped, lines)
            assert ids_per_line(shipped, wrap(shape, lines)) == bare, name

    def test_every_seed_scenario_alerts_in_an_envelope(self, shipped: Ruleset) -> None:
        """The equality above is not an empty one: each scenario's expected rules fire inside a Vector envelope."""
        for _, ex, expected in LINUX_SCENARIOS:
            fired = {r for ids in ids_per_line(shipped, wrap("vector-file", WRITERS["ecs"](ex))) for r in ids}
            assert fired - PAYLOAD_RULES == expected  # the seed rules; the payload rules may fire besides

    def test_mixed_stream_keeps_order_and_detection(self, shipped: Ruleset) -> None:
        """Bare lines, envelopes and ECS events interleaved leave in order with the alerts of each line alone."""
        ex = LINUX_SCENARIOS[0][1]
        lines = [*WRITERS["ecs"](ex), *wrap("vector-file", WRITERS["auditd"](ex)), *WRITERS["cmdline"](ex),
                 *wrap("docker", WRITERS["cmdline"](ex)), *wrap("fluentbit-tail", WRITERS["sysmon-syslog"](ex))]
        got = ids_per_line(shipped, lines)
        assert sum(1 for ids in got if ids == [PHP_FSOCKOPEN]) == 4  # Sysmon for Linux cannot carry it


class TestOutput:
    def test_envelope_without_hits_leaves_byte_identical(self, shipped: Ruleset) -> None:
        """Envelope lines no rule matches, of every shape and format, are written exactly as read."""
        ex = LINUX_SCENARIOS[-1][1]  # ls under bash: no rule
        lines = [w for shape in SHAPES for fmt in LINUX_FORMATS for w in wrap(shape, WRITERS[fmt](ex))]
        out, stats = run_raw(shipped, lines)
        assert out == lines
        assert stats.envelopes == len(lines)

    def test_non_hit_records_of_an_alerted_auditd_event_stay_as_they_came(self, shipped: Ruleset) -> None:
        """An auditd event in envelopes alerts once, on its EXECVE record; its other records leave byte for byte."""
        lines = wrap("vector-file", WRITERS["auditd"](LINUX_SCENARIOS[0][1]))
        out, _ = run_raw(shipped, lines)
        alerted = [i for i, x in enumerate(out) if rule_ids(msgspec.json.decode(x))]
        assert len(alerted) == 1 and b"type=EXECVE" in lines[alerted[0]]
        rest = [i for i in range(len(lines)) if i not in alerted]
        assert [out[i] for i in rest] == [lines[i] for i in rest]

    def test_alert_keeps_every_envelope_field(self, shipped: Ruleset) -> None:
        """Vector's fields all stay as they came; the parsed `host` object goes under shellsieve.parsed."""
        env = SHAPES["vector-file"](PHP_LINE)
        out, _ = run_raw(shipped, [_enc(env)])
        doc = msgspec.json.decode(out[0])
        assert {k: doc[k] for k in env} == env
        assert rule_ids(doc) == [PHP_FSOCKOPEN]
        assert doc["process"]["command_line"] == PHP_LINE
        assert doc["shellsieve"]["parsed"] == {"host": {"os": {"type": "linux"}}}
        assert doc["event"]["kind"] == "alert"

    def test_envelope_object_takes_parsed_fields_inside(self, shipped: Ruleset) -> None:
        """Where the envelope holds an object (Filebeat's `host`), the parsed fields go into it beside its own."""
        env = {"host": {"name": "web-01"}, "log": {"file": {"path": "/var/log/cmd"}}, "message": PHP_LINE}
        doc = msgspec.json.decode(run_raw(shipped, [_enc(env)])[0][0])
        assert doc["host"] == {"name": "web-01", "os": {"type": "linux"}}
        assert doc["log"] == env["log"] and doc["message"] == PHP_LINE
        assert "parsed" not in doc["shellsieve"]

    def test_ecs_json_in_an_envelope_alerts_with_its_fields(self, shipped: Ruleset) -> None:
        """ECS JSON carried as a string: the alert holds the event's own fields beside the envelope's."""
        ex = LINUX_SCENARIOS[0][1]
        (line,) = [x for x in WRITERS["ecs"](ex) if b"fsockopen" in x]
        env = SHAPES["vector-file"](line.decode())
        doc = msgspec.json.decode(run_raw(shipped, [_enc(env)])[0][0])
        assert doc["message"] == env["message"] and doc["host"] == "web-01"
        assert doc["process"] == msgspec.json.decode(line)["process"]
        assert doc["shellsieve"]["parsed"]["host"] == msgspec.json.decode(line)["host"]

    def test_merge_changes_neither_input(self) -> None:
        """merge builds a new object: the envelope and the parsed event are left as they were."""
        env, parsed = {"host": {"name": "a"}, "x": 1}, {"host": {"os": {"type": "linux"}}, "x": 2}
        out, taken = merge(env, parsed)
        assert out == {"host": {"name": "a", "os": {"type": "linux"}}, "x": 1} and taken == {"x": 2}
        assert env == {"host": {"name": "a"}, "x": 1}


class TestConfiguration:
    def test_other_field_names(self, shipped: Ruleset) -> None:
        """With envelope_fields=("msg",), `msg` carries the line and `message` no longer does."""
        assert ids_per_line(shipped, [_enc({"msg": PHP_LINE})], envelope_fields=("msg",)) == [[PHP_FSOCKOPEN]]
        assert ids_per_line(shipped, [_enc({"message": PHP_LINE})], envelope_fields=("msg",)) == [[]]

    def test_turned_off(self, shipped: Ruleset) -> None:
        """envelope_fields=() reads envelopes as plain ECS objects: no alert, bytes unchanged."""
        lines = [_enc(SHAPES[s](PHP_LINE)) for s in SHAPES]
        out, stats = run_raw(shipped, lines, envelope_fields=())
        assert out == lines and stats.alerts == 0 and stats.envelopes == 0

    def test_router_reads_fields_at_decode_time(self, shipped: Ruleset) -> None:
        """A driver may set router.envelope_fields and router.host_os between blocks; each block follows them."""
        router = Router(BlockMatcher(shipped, Stats()), Stats())
        line = _enc({"msg": PHP_LINE}) + b"\n"
        assert b'"kind":"alert"' not in router.process(line, 0.0) + router.finish()
        router.envelope_fields = ("msg",)
        router.host_os = "windows"
        out = router.process(line, 0.0) + router.finish()
        assert msgspec.json.decode(out)["host"] == {"os": {"type": "windows"}}

    @pytest.mark.parametrize("value", [",", "a,,b", 'a"b', "a,a", "x\\y"])
    def test_cli_refuses_bad_fields(self, value: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A malformed --envelope-fields stops `run` before it starts, exit 2, naming the option."""
        with pytest.raises(SystemExit) as exc:
            main(["run", "--envelope-fields", value])
        assert exc.value.code == 2
        assert "--envelope-fields" in capsys.readouterr().err

    def test_parse_fields(self) -> None:
        """`message,log` is two names, spaces around them dropped; the empty string is none."""
        assert parse_fields(" message , log ") == ("message", "log")
        assert parse_fields("") == ()

    def test_settings_refuse_bad_fields(self) -> None:
        """Settings built by another driver check the names too."""
        with pytest.raises(ValueError):
            Settings(envelope_fields=("a", "a"))


class TestBadInnerLines:
    @pytest.mark.parametrize("inner,reason", [('{"process": {"command_line": "php -r', "invalid_json"),
                                              ("[1, 2]", "not_object"),
                                              ("type=EXECVE msg=audit(1777800000", "not_audit_record"),
                                              ("<13>1 host Linux-Sysmon - <Event><System></Event>", "invalid_xml")])
    def test_bad_inner_line_is_counted_and_forwarded(self, shipped: Ruleset, inner: str, reason: str) -> None:
        """An envelope carrying a line that does not decode leaves as it came, counted under the line's reason."""
        lines = [_enc({"message": inner, "host": "h"}), _enc({"log": PHP_LINE})]
        out, stats = run_raw(shipped, lines)
        assert out[0] == lines[0]
        assert stats.malformed[reason] == 1
        assert rule_ids(msgspec.json.decode(out[1])) == [PHP_FSOCKOPEN]  # the next line is unharmed


class TestNotAnEnvelope:
    def test_ecs_event_with_message_is_not_an_envelope(self, shipped: Ruleset) -> None:
        """An ECS process event's `message` is not read as a command line, and the block stays on the fast path."""
        ev = {"@timestamp": TS, "message": PHP_LINE, "event": {"category": ["process"], "type": ["start"]},
              "process": {"name": "ls", "command_line": "ls -la", "args": ["ls", "-la"]}}
        block = b"".join(_enc(ev) + b"\n" for _ in range(50))
        stats = Stats()
        router = Router(BlockMatcher(shipped, stats), stats)

        def no_line_by_line(line: bytes) -> None:
            raise AssertionError("routed line by line")

        router._decode = no_line_by_line  # type: ignore[method-assign]
        assert router.process(block, 0.0) == block
        assert stats.envelopes == 0 and stats.formats["ecs"] == 50

    def test_spaced_process_key_is_not_an_envelope(self, shipped: Ruleset) -> None:
        """A process key written with spaces (`"process" : {...}`) is found too: the event stays ECS."""
        line = b'{"message": "' + PHP_LINE.replace('"', '\\"').encode() + b'", "process" : {"name": "ls"}}'
        out, stats = run_raw(shipped, [line] * 3)
        assert out == [line] * 3 and stats.envelopes == 0

    def test_process_as_a_value_does_not_hide_an_envelope(self, shipped: Ruleset) -> None:
        """A `"process"` that is a value, not a key (`"tag": "process"`), leaves the envelope an envelope."""
        line = _enc({"tag": "process", "message": PHP_LINE})
        assert ids_per_line(shipped, [line]) == [[PHP_FSOCKOPEN]]

    def test_non_string_field_is_not_an_envelope(self, shipped: Ruleset) -> None:
        """`message` holding an object or a number is an ordinary JSON field."""
        lines = [_enc({"message": {"text": PHP_LINE}}), _enc({"log": 5})]
        out, stats = run_raw(shipped, lines)
        assert out == lines and stats.envelopes == 0

    def test_sysmon_with_message_is_sysmon(self, shipped: Ruleset) -> None:
        """Winlogbeat's Sysmon events carry a `message` too: they stay Sysmon events."""
        ex = WINDOWS_SCENARIOS[0][1]
        written = WRITERS["sysmon-winlogbeat"](ex)
        lines = [_enc({**msgspec.json.decode(x), "message": "Process Create:"}) for x in written]
        got, stats = run_raw(shipped, lines)
        assert stats.envelopes == 0 and stats.formats["sysmon"] == len(lines)
        assert [rule_ids(msgspec.json.decode(x)) for x in got] == ids_per_line(shipped, written)

    def test_forced_format_reads_no_envelope(self, shipped: Ruleset) -> None:
        """Under --format ecs every line is ECS: an envelope is not opened."""
        out, stats = run_raw(shipped, [_enc({"message": PHP_LINE})], input_format="ecs")
        assert stats.envelopes == 0 and stats.alerts == 0
