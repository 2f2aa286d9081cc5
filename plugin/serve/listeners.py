"""The network inputs of `serve`: HTTP (aiohttp), TCP and unix streams, Fluent forward.

Each connection (or HTTP request) is its own engine stream: a line is never joined with another
connection's bytes, and each connection's lines keep their order. A bad line is data, as on the
pipe: forwarded and counted; no request is refused and no connection closed because of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiohttp import web

from shellsieve.serve.endpoints import Endpoint
from shellsieve.serve.pipeline import Listener, Pipeline

__all__ = ["HttpListener", "StreamListener", "RETRY_AFTER_S"]

RETRY_AFTER_S = 1  # what a 503 asks the client to wait (Vector and Fluent Bit use their own backoff)
_READ = 1 << 20  # one read at most: fewer, larger blocks (per-read overhead; see bench/run_serve.py)


class _Base:
    def __init__(self, ep: Endpoint, pipeline: Pipeline, options: dict[str, Any], idle_timeout: float,
                 log: Any) -> None:
        self.ep = ep
        self.pipeline = pipeline
        self.options = options  # router attributes set before each feed (host_os, envelope_fields)
        self.idle_timeout = idle_timeout
        self.log = log
        self.stats = Listener(ep.name)

    def _apply(self) -> None:
        router = self.pipeline.engine.router
        for k, v in self.options.items():
            setattr(router, k, v)

    def feed(self, stream: Any, data: bytes, close: bool = False, torn: bool = False) -> int:
        self._apply()
        return self.pipeline.feed(stream, self.stats, data, close, torn)


class HttpListener(_Base):
    """POST bodies of NDJSON. 200 once every event of the body is delivered downstream; 503 with
    Retry-After while the buffer is full, the downstream is down, other bodies being read hold the
    body budget, or the server is stopping; 413 over --max-body-bytes (said or read, gzip undone);
    408 for a body that stops arriving. HEAD and GET answer 200 (Vector's sink healthcheck sends
    HEAD to its URI)."""

    def __init__(self, ep: Endpoint, pipeline: Pipeline, options: dict[str, Any], idle_timeout: float,
                 log: Any, max_body: int) -> None:
        super().__init__(ep, pipeline, options, idle_timeout, log)
        self.max_body = max_body
        self._reading = 0  # bytes of request bodies being read now (reserved by Content-Length)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.max_body)
        app.router.add_route("POST", "/{tail:.*}", self._post)
        app.router.add_get("/{tail:.*}", self._health, allow_head=True)  # Vector's healthcheck sends HEAD
        # shutdown_timeout: at a stop the requests waiting for delivery have been answered already;
        # what is left is a client in the middle of sending, cut after a second. lingering_time: after
        # an answer given before the body ended (408, 413), aiohttp reads the rest for this long so the
        # client sees the answer; its default of 10 s would keep a stalled client's connection open.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     keepalive_timeout=self.idle_timeout, shutdown_timeout=1.0, lingering_time=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.ep.host, self.ep.port, reuse_address=True)
        await site.start()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if self.pipeline.accepting else "stopping",
                                  "downstream": "up" if self.pipeline.downstream_up else "down"})

    def _unavailable(self, reason: str, why: str) -> web.Response:
        self.stats.refused[reason] += 1
        return web.Response(status=503, text=why + "\n", headers={"Retry-After": str(RETRY_AFTER_S)})

    async def _post(self, request: web.Request) -> web.Response:
        p = self.pipeline
        self.stats.accepted += 1
        if not p.accepting:
            return self._unavailable("stopping", "stopping")
        if not p.downstream_up:
            return self._unavailable("downstream_down", "downstream unavailable")
        if not p.has_room():
            return self._unavailable("buffer_full", "buffer full")
        # Bodies being read at once hold at most --max-body-bytes between them (plus the first):
        # many clients sending at once while the downstream stalls must not multiply memory.
        need = request.content_length or 0
        if need > self.max_body:  # said up front: refused before a byte of it is read
            self.stats.refused["too_large"] += 1
            return _closing(413, f"request body over {self.max_body} bytes")
        if self._reading and self._reading + need > self.max_body:
            return self._unavailable("busy", "busy reading other bodies")
        held = [need]  # what this request holds of the budget; _body adds what arrives past it
        self._reading += need
        try:
            body = await self._body(request, held)
        finally:
            self._reading -= held[0]
        if isinstance(body, web.Response):
            return body
        if not p.accepting:
            return self._unavailable("stopping", "stopping")
        async with p.lock:  # waits only while a stream passes an over-long line through
            # The bound is checked with the body's own events, at the moment they go in: requests
            # read at once must not all fit in the room one of them saw. A body larger than the
            # whole buffer still goes in alone, when the buffer is empty.
            if p.pending and p.pending + body.count(b"\n") + 1 > p.capacity:
                return self._unavailable("buffer_full", "buffer full")
            target = self.feed(p.engine.stream(), body, close=True)
        if await p.wait_delivered(target):
            return web.Response(status=200)
        return self._unavailable("stopping", "stopping before delivery")

    async def _body(self, request: web.Request, held: list[int]) -> bytes | web.Response:
        """The body, as decoded (gzip undone), read with a limit and a timeout per read: a client
        that stops sending for --idle-timeout is cut off (aiohttp's own timeouts only cover the
        time between requests), one that sends more than --max-body-bytes gets 413."""
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    chunk = await request.content.readany()
            except TimeoutError:
                self.stats.refused["body_timeout"] += 1
                self.log.warning("connection_idle", listener=self.ep.name, seconds=self.idle_timeout,
                                 detail="a request body stopped arriving")
                return _closing(408, "request body timed out")
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                self.stats.refused["too_large"] += 1
                return _closing(413, f"request body over {self.max_body} bytes")
            if size > held[0]:  # no Content-Length (chunked), or more than it said: count as it comes
                self._reading += size - held[0]
                held[0] = size

    async def stop_accepting(self) -> None:
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _closing(status: int, why: str) -> web.Response:
    """An error answered before the body was read to its end: the connection cannot carry another
    request (the rest of the body would be read as one), so it is closed after the answer."""
    resp = web.Response(status=status, text=why + "\n")
    resp.force_close()
    return resp


class StreamListener(_Base):
    """Newline-delimited events on TCP or a unix socket (created 0600). Backpressure: a connection
    is not read while the buffer is full. No acknowledgement exists on this path."""

    def __init__(self, ep: Endpoint, pipeline: Pipeline, options: dict[str, Any], idle_timeout: float,
                 log: Any) -> None:
        super().__init__(ep, pipeline, options, idle_timeout, log)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if self.ep.scheme == "unix":
            path = Path(self.ep.path)
            _remove_stale_socket(path)
            old = os.umask(0o177)  # created 0600: only the shipper's user may connect
            try:
                self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=_READ)
            finally:
                os.umask(old)
        else:
            self._server = await asyncio.start_server(self._serve, self.ep.host, self.ep.port, limit=_READ,
                                                      reuse_address=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        p = self.pipeline
        stream = p.engine.stream()
        held = False  # the pipeline lock, held through an over-long line
        data: bytes | None = b""
        with self._connection(writer):
            try:
                while (data := await self._read(reader)):
                    if not held:
                        await p.lock.acquire()
                        held = True
                    self.feed(stream, data)
                    if not stream.passing:
                        p.lock.release()
                        held = False
            finally:
                if not held:
                    await p.lock.acquire()
                try:  # cut off (stopping, idle, reset): a last line begun is a partial line
                    self.feed(stream, b"", close=True, torn=data is None)
                finally:
                    p.lock.release()

    @contextlib.contextmanager
    def _connection(self, writer: asyncio.StreamWriter) -> Iterator[None]:
        """Counts the connection while it is open, and closes it at the end."""
        self.stats.accepted += 1
        self.stats.connections += 1
        self._writers.add(writer)
        try:
            yield
        finally:
            self.stats.connections -= 1
            self._writers.discard(writer)
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> bytes | None:
        """The connection's next bytes, once the buffer has room: b"" at its end, None when it is
        cut off (serve stopping, silent past --idle-timeout, reset by the peer)."""
        p = self.pipeline
        if not p.has_room():
            self.stats.paused += 1
            await p.wait_room()
        if not p.accepting:
            return None
        try:
            async with asyncio.timeout(self.idle_timeout):  # no task per read, as wait_for makes
                data = await reader.read(_READ)
        except TimeoutError:
            self.log.warning("connection_idle", listener=self.ep.name, seconds=self.idle_timeout)
            return None
        except (ConnectionError, OSError):
            return None
        return data  # bytes read while stopping still go in: they left the sender's kernel

    async def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):  # wake readers blocked on a quiet connection
            w.close()
        if self.ep.scheme == "unix":
            with contextlib.suppress(OSError):
                os.unlink(self.ep.path)

    async def close(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)


def _remove_stale_socket(path: Path) -> None:
    """A socket file left by a run that died is removed; anything else at the path is an error."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} exists and is not a socket")
    path.unlink()
