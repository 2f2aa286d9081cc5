"""The engine between the listeners and the output: a bounded buffer and delivery receipts.

Every listener feeds the one engine; what it returns is appended to the outbound buffer tagged with
`engine.released` (input lines whose output is in the buffer so far). The output task takes whole
lines from the buffer, delivers them, and moves `delivered` on to the tag of the last chunk it
delivered in full. A request that must be acknowledged (an HTTP 200, a forward `ack`) waits until
`delivered` reaches the engine's line count after its own lines: then every line it brought has
left shellsieve and been accepted downstream (at-least-once: a request answered 503 or cut off may
be sent again by the shipper, and its events are then forwarded twice).

The engine runs in the event loop without awaiting, so one feed is atomic. The exception is an
over-long line on a stream connection: its bytes arrive over several reads and must leave with
nothing between them, so the stream holds `lock` from its first piece to its newline.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from shellsieve.run.engine import Engine, Stream

__all__ = ["Pipeline", "Listener", "REFUSALS"]

# Why an HTTP request was refused: 503 stopping, downstream_down, buffer_full, busy (other bodies
# hold the body budget); 413 too_large; 408 body_timeout.
REFUSALS = ("stopping", "downstream_down", "buffer_full", "busy", "too_large", "body_timeout")


class Listener:
    """Counters of one --listen address, for `stats` and `stopped`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connections = 0  # open now
        self.accepted = 0  # connections (or HTTP requests) over the run
        self.events_in = 0  # input lines fed to the engine
        self.events_done = 0  # of those, lines whose output has been delivered (or dropped: --only-alerts)
        self.refused: Counter[str] = Counter()  # requests refused, by reason (REFUSALS)
        self.paused = 0  # reads a stream connection held back while the buffer was full (backpressure)

    def snapshot(self) -> dict[str, Any]:
        return {"connections": self.connections, "accepted": self.accepted, "events_in": self.events_in,
                "events_delivered": self.events_done,
                "requests_refused": {r: self.refused[r] for r in REFUSALS}, "reads_paused": self.paused}


class Pipeline:
    def __init__(self, engine: Engine, capacity: int) -> None:
        self.engine = engine
        self.capacity = capacity
        self.lock = asyncio.Lock()  # held by a stream through an over-long line
        self.accepting = True  # false once stopping: listeners take nothing more
        self.downstream_up = True  # false while the output cannot deliver
        self.delivered = 0  # input lines whose output the downstream accepted
        self.stop_waiting = False  # set when the drain is over: waiters answer with what they have
        self._chunks: deque[tuple[bytes, int]] = deque()  # (output bytes, released after them)
        self._buffered_tag = 0  # the tag of the last chunk appended
        self._segments: deque[list[Any]] = deque()  # [listener, first line, end line] per feed
        self._changed = asyncio.Event()  # the buffer or `delivered` moved
        self.observe: Callable[[float], None] | None = None  # --metrics-addr: seconds per feed

    # -- input side -------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Lines accepted and not yet delivered (held in the engine or in the buffer)."""
        return self.engine.stats.lines_in - self.delivered

    def has_room(self) -> bool:
        return self.pending < self.capacity

    async def wait_room(self) -> None:
        """Until the buffer has room (backpressure for the stream listeners)."""
        while not self.has_room() and self.accepting:
            await self.wait_change()

    def feed(self, stream: Stream, listener: Listener, data: bytes, close: bool = False, torn: bool = False) -> int:
        """Feed `data` (and with `close`, end the stream); returns the engine's line count after it:
        the `delivered` mark at which all of it has reached the downstream."""
        now = time.monotonic()
        before = self.engine.stats.lines_in
        out = stream.feed(data, now) if data else b""
        if close:
            out += stream.close(now, torn)
        if self.observe is not None:
            self.observe(time.monotonic() - now)
        after = self.engine.stats.lines_in
        if after > before:
            listener.events_in += after - before
            self._segments.append([listener, before, after])
        self.push(out)
        return after

    def push(self, out: bytes) -> None:
        """Append engine output (possibly empty: lines released with no output under --only-alerts)."""
        tag = self.engine.released
        if out or tag != self._buffered_tag:
            self._chunks.append((out, tag))
            self._buffered_tag = tag
            self._changed.set()

    # -- output side ------------------------------------------------------------------------
    def take(self, max_lines: int) -> tuple[list[bytes], int]:
        """Whole lines from the head of the buffer, up to `max_lines`, and the tag they complete.

        A batch never ends inside a line (an over-long line's pieces may sit in several chunks).
        Lines taken from part of a chunk complete only the tag before that chunk."""
        parts: list[bytes] = []
        lines = 0
        tag = self.delivered
        chunks = self._chunks
        while chunks and lines < max_lines:
            data, ctag = chunks[0]
            n = data.count(b"\n")
            if lines + n <= max_lines and (data.endswith(b"\n") or not data):
                chunks.popleft()
                parts.append(data)
                lines += n
                tag = ctag
                continue
            # cut at the last newline within the batch's room
            cut = _nth_newline(data, max_lines - lines) if lines + n > max_lines else data.rfind(b"\n") + 1
            if cut > 0:
                parts.append(data[:cut])
                chunks[0] = (data[cut:], ctag)
                lines += data.count(b"\n", 0, cut)
            elif not parts and len(chunks) > 1:
                # an over-long line continues into the next chunk: join them and look again
                nxt, ntag = chunks[1]
                chunks.popleft()
                chunks[0] = (data + nxt, ntag)
                continue
            break
        return parts, tag

    def done(self, tag: int, lines: int, docs: int = 0) -> None:
        """The downstream accepted the batch taken with `tag`, holding `lines` event lines and
        `docs` alert documents (--alert-docs split)."""
        self.engine.stats.lines_delivered += lines
        self.engine.stats.alert_docs_out += docs
        if tag > self.delivered:
            self.delivered = tag
            self._credit(tag)
        self._changed.set()

    def _credit(self, upto: int) -> None:
        segs = self._segments
        while segs:
            seg = segs[0]
            listener, start, end = seg
            if upto >= end:
                listener.events_done += end - start
                segs.popleft()
                continue
            if upto > start:
                listener.events_done += upto - start
                seg[1] = upto
            break

    @property
    def empty(self) -> bool:
        """Nothing waits to be delivered (output that is only a partial line does not count)."""
        return not any(data for data, _ in self._chunks)

    async def wait_delivered(self, target: int) -> bool:
        """Until every line up to `target` is delivered; False if stopping ended it first."""
        while self.delivered < target:
            if self.stop_waiting:
                return False
            await self.wait_change()
        return True

    async def wait_change(self) -> None:
        """Until the buffer or `delivered` moves."""
        self._changed.clear()
        await self._changed.wait()

    def wake(self) -> None:
        self._changed.set()


def _nth_newline(data: bytes, n: int) -> int:
    """The offset just past the n-th newline of `data` (0 for n == 0)."""
    pos = 0
    for _ in range(n):
        pos = data.index(b"\n", pos) + 1
    return pos
