"""serve's buffer between the engine and the output: whole-line batches, delivery marks that never
run ahead of what was delivered, per-listener counts that add up, and a bound on what it accepts."""

from __future__ import annotations

import asyncio

import msgspec

from shellsieve.compile.ruleset import Ruleset
from shellsieve.noise import process_event
from shellsieve.run.engine import Engine
from shellsieve.serve.pipeline import Listener, Pipeline
from shellsieve.settings import Settings


def _body(n: int, start: int = 0) -> bytes:
    return b"".join(msgspec.json.encode(process_event(i, "ls", ["ls", str(i)], ("bash", "/usr/bin/bash"),
                                                      ("root", "0"), "/tmp")) + b"\n" for i in range(start, start + n))


def _pipeline(ruleset: Ruleset, capacity: int = 100, **settings: object) -> Pipeline:
    return Pipeline(Engine(ruleset, Settings(stats_interval_s=0, **settings)), capacity)  # type: ignore[arg-type]


class TestBatches:
    def test_batches_hold_whole_lines_up_to_the_size(self, shipped: Ruleset) -> None:
        """A feed of 25 lines leaves in batches of at most 10 lines, in order, each line whole."""
        p = _pipeline(shipped)
        target = p.feed(p.engine.stream(), Listener("l"), _body(25), close=True)
        got = []
        while not p.empty:
            parts, tag = p.take(10)
            data = b"".join(parts)
            assert data.endswith(b"\n") and data.count(b"\n") <= 10
            got.append(data)
            p.done(tag, data.count(b"\n"))
        assert b"".join(got) == _body(25)
        assert p.delivered == target == 25

    def test_a_partial_batch_completes_no_later_mark(self, shipped: Ruleset) -> None:
        """Lines taken from part of a chunk do not acknowledge the rest of that chunk."""
        p = _pipeline(shipped)
        p.feed(p.engine.stream(), Listener("l"), _body(25), close=True)
        parts, tag = p.take(10)
        p.done(tag, 10)
        assert p.delivered == 0  # the chunk of 25 is not all delivered yet
        parts, tag = p.take(100)
        p.done(tag, 15)
        assert p.delivered == 25

    def test_an_over_long_line_is_never_cut_into_batches(self, shipped: Ruleset) -> None:
        """Pieces of an over-long line sit in several chunks; a batch waits for the line's end."""
        p = _pipeline(shipped, max_line_bytes=100)
        s, listener = p.engine.stream(), Listener("l")
        p.feed(s, listener, b"x" * 300)
        assert p.take(10) == ([], 0)
        p.feed(s, listener, b"x\n")
        parts, tag = p.take(10)
        assert b"".join(parts) == b"x" * 301 + b"\n" and tag == 1

    def test_listeners_are_credited_with_their_own_lines(self, shipped: Ruleset) -> None:
        """events_delivered per listener adds up to the lines each brought in, once delivered."""
        p = _pipeline(shipped)
        a, b = Listener("a"), Listener("b")
        p.feed(p.engine.stream(), a, _body(3), close=True)
        p.feed(p.engine.stream(), b, _body(4, 3), close=True)
        parts, tag = p.take(5)
        p.done(tag, 5)  # a chunk of b's is cut: only a's lines are acknowledged
        assert (a.events_done, b.events_done) == (3, 0)
        parts, tag = p.take(5)
        p.done(tag, 2)
        assert (a.events_done, b.events_done) == (3, 4)
        assert (a.events_in, b.events_in) == (3, 4)


class TestBound:
    def test_room_runs_out_at_the_capacity_and_returns_on_delivery(self, shipped: Ruleset) -> None:
        """`has_room` is false once the undelivered lines reach the capacity, true after delivery."""
        p = _pipeline(shipped, capacity=10)
        p.feed(p.engine.stream(), Listener("l"), _body(10), close=True)
        assert not p.has_room()
        parts, tag = p.take(100)
        p.done(tag, 10)
        assert p.has_room() and p.pending == 0

    def test_a_waiter_is_woken_by_delivery(self, shipped: Ruleset) -> None:
        """wait_delivered returns once the output reports the lines delivered, not before."""

        async def scenario() -> list[str]:
            p = _pipeline(shipped)
            target = p.feed(p.engine.stream(), Listener("l"), _body(2), close=True)
            seen: list[str] = []

            async def waiter() -> None:
                await p.wait_delivered(target)
                seen.append("acked")

            task = asyncio.create_task(waiter())
            await asyncio.sleep(0.01)
            seen.append("before")
            parts, tag = p.take(10)
            p.done(tag, 2)
            await task
            return seen

        assert asyncio.run(scenario()) == ["before", "acked"]
