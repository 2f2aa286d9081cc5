"""Where `serve` delivers: HTTP POST of NDJSON (or a JSON array), a TCP or unix stream, Fluent
forward, or stdout. Each output's `send` returns once the batch is accepted, retrying with capped
exponential backoff and full jitter while the downstream is down; it gives up only when told to stop.

What "accepted" means is each protocol's: an HTTP 2xx, a forward `ack`, for a stream or stdout the
kernel taking the bytes (a stream has no acknowledgement: what was in flight when the peer died is
lost, the socket contract's at-most-once).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp

from shellsieve.run.doclines import is_doc
from shellsieve.serve.endpoints import Endpoint

__all__ = ["Output", "Stopped", "Backoff", "Reporting", "make_output"]

# Statuses a downstream may answer when it is briefly unable to take a batch; retried, as Vector's
# http sink retries them (408, 429, 5xx). Any other 4xx is the downstream refusing those events.
_RETRY_STATUS = frozenset({408, 429})


class Stopped(Exception):
    """The drain ended before the downstream accepted the batch."""


class Output(Protocol):
    name: str
    rejected: int  # event lines the downstream refused for good (a 4xx other than 408/429)
    rejected_docs: int  # alert documents (--alert-docs split) it refused: no input line's

    async def send(self, data: bytes, stopping: asyncio.Event) -> None:
        """Deliver `data` (whole NDJSON lines, each ending in a newline) or raise Stopped."""

    async def close(self) -> None:
        """Release connections."""


class Backoff:
    """Capped exponential backoff with full jitter (AWS's "full jitter"): waits are spread over
    [0, min(cap, base * 2^n)], so many senders do not retry in step."""

    def __init__(self, cap: float, base: float = 0.05) -> None:
        self.cap, self.base, self.failures = cap, base, 0

    async def wait(self, stopping: asyncio.Event) -> None:
        self.failures += 1
        delay = random.uniform(0, min(self.cap, self.base * 2 ** min(self.failures, 30)))
        try:
            await asyncio.wait_for(stopping.wait(), delay)
        except TimeoutError:
            return
        raise Stopped

    def reset(self) -> None:
        self.failures = 0


class Reporting:
    """Logs a downstream going down once and coming back once, not every retry."""

    def __init__(self, name: str, log: Any, on_state: Any) -> None:
        self.name, self.log, self._on_state = name, log, on_state
        self.up = True
        self.rejected = 0
        self.rejected_docs = 0

    def failed(self, error: str) -> None:
        if self.up:
            self.up = False
            self.log.warning("downstream_down", output=self.name, error=error)
            self._on_state(False)

    def ok(self) -> None:
        if not self.up:
            self.up = True
            self.log.info("downstream_up", output=self.name)
            self._on_state(True)

    async def retrying(self, attempt: Callable[[], Awaitable[None]], errors: tuple[type[BaseException], ...],
                       retry_max: float, stopping: asyncio.Event) -> None:
        """Run `attempt` until it succeeds: after each of `errors`, the connection is dropped and the
        next attempt waits out the backoff (Stopped once `stopping` is set)."""
        backoff = Backoff(retry_max)
        while True:
            try:
                await attempt()
            except errors as exc:
                self.failed(f"{type(exc).__name__}: {exc}")
                await self.drop()
                await backoff.wait(stopping)
                continue
            self.ok()
            return

    async def drop(self) -> None:
        """Forget the connection after an error (the next attempt makes a new one)."""


class HttpOutput(Reporting):
    """POST batches to Vector's `http_server` source (NDJSON) or Fluent Bit's `http` input
    (`?format=json_array`: Fluent Bit's in_http refuses `application/x-ndjson`)."""

    def __init__(self, ep: Endpoint, retry_max: float, timeout: float, log: Any, on_state: Any) -> None:
        super().__init__(ep.name, log, on_state)
        scheme_host = f"http://{_host(ep.host)}:{ep.port}"
        self.url = scheme_host + ep.path
        self.array = ep.options.get("format") == "json_array"
        self.content_type = "application/json" if self.array else "application/x-ndjson"
        self.retry_max = retry_max
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, data: bytes, stopping: asyncio.Event) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        backoff = Backoff(self.retry_max)
        status = await self._post(data, stopping, backoff)
        if not 200 <= status < 300:
            await self._isolate(data.splitlines(keepends=True), status, stopping, backoff)

    async def _isolate(self, batch: list[bytes], status: int, stopping: asyncio.Event, backoff: Backoff) -> None:
        """A batch refused for good: its halves are sent in order, depth first, down to the single
        events the downstream refuses (Vector's http_server refuses a whole body for one line its
        decoder cannot read); those are logged and counted, the others delivered in order."""
        if len(batch) == 1:
            if is_doc(batch[0]):
                self.rejected_docs += 1
            else:
                self.rejected += 1
            self.log.error("event_rejected", output=self.name, status=status,
                           detail="the downstream refused this event for good; it is counted, not retried",
                           line=batch[0][:256].decode("utf-8", "replace"))
            return
        mid = len(batch) // 2
        for half in (batch[:mid], batch[mid:]):
            status = await self._post(b"".join(half), stopping, backoff)
            if not 200 <= status < 300:
                await self._isolate(half, status, stopping, backoff)

    async def _post(self, data: bytes, stopping: asyncio.Event, backoff: Backoff) -> int:
        # Fluent Bit's in_http reads one JSON array per body and refuses application/x-ndjson
        body = b"[" + data.rstrip(b"\n").replace(b"\n", b",") + b"]" if self.array else data
        assert self._session is not None
        while True:
            try:
                async with self._session.post(self.url, data=body,
                                              headers={"Content-Type": self.content_type}) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.failed(f"{type(exc).__name__}: {exc}")
                await backoff.wait(stopping)
                continue
            if status >= 500 or status in _RETRY_STATUS:
                self.failed(f"HTTP {status}")
                await backoff.wait(stopping)
                continue
            self.ok()
            backoff.reset()
            return status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class StreamOutput(Reporting):
    """Newline-delimited lines to a TCP or unix stream socket (Vector's and Fluent Bit's socket/tcp
    sources); reconnects and resends the batch on any error."""

    def __init__(self, ep: Endpoint, retry_max: float, timeout: float, log: Any, on_state: Any) -> None:
        super().__init__(ep.name, log, on_state)
        self.ep, self.retry_max, self.timeout = ep, retry_max, timeout
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> asyncio.StreamWriter:
        if self.ep.scheme == "unix":
            reader, writer = await asyncio.open_unix_connection(self.ep.path)
        else:
            reader, writer = await asyncio.open_connection(self.ep.host, self.ep.port)
        self._reader = reader
        return writer

    async def send(self, data: bytes, stopping: asyncio.Event) -> None:
        async def attempt() -> None:
            async with asyncio.timeout(self.timeout):
                if self._writer is None or self._writer.is_closing() or self._reader.at_eof():
                    self._writer = await self._connect()
                self._writer.write(data)
                await self._writer.drain()

        await self.retrying(attempt, (OSError, TimeoutError), self.retry_max, stopping)

    async def drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = None


class StdoutOutput(Reporting):
    """NDJSON on standard output: a blocking write in a worker thread, so a slow reader is
    backpressure, not a stalled event loop."""

    def __init__(self, log: Any, on_state: Any) -> None:
        super().__init__("stdout", log, on_state)
        self.fd = sys.stdout.fileno()

    async def send(self, data: bytes, stopping: asyncio.Event) -> None:
        await asyncio.to_thread(_write_all, self.fd, data)

    async def close(self) -> None:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    done = 0
    while done < len(data):
        done += os.write(fd, view[done:])


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def make_output(ep: Endpoint, retry_max: float, timeout: float, log: Any, on_state: Any) -> Any:
    """The Output for a --forward address."""
    if ep.scheme == "http":
        return HttpOutput(ep, retry_max, timeout, log, on_state)
    if ep.scheme in ("tcp", "unix"):
        return StreamOutput(ep, retry_max, timeout, log, on_state)
    if ep.scheme == "forward":
        from shellsieve.serve.fluent_io import ForwardOutput

        return ForwardOutput(ep, retry_max, timeout, log, on_state)
    return StdoutOutput(log, on_state)
