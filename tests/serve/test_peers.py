"""The peers against each other, without serve: each upstream peer speaks what its downstream twin
understands, retries what its shipper retries, and drops what its shipper drops."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .conftest import account, stream
from .peers import (FluentBitForwardOutput, FluentBitHttpOutput, FluentBitTcpOutput, ForwardInput, SocketSource,
                    VectorHttpServerSource, VectorHttpSink, VectorSocketSink, free_port)


class Scripted:
    """An HTTP server answering a scripted list of statuses (then 200), recording each request."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers = list(statuses), headers or {}
        self.port = free_port()
        self.bodies: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, headers=self.headers if status != 200 else {})

    async def __aenter__(self) -> Scripted:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.runner.cleanup()


class TestVectorHttpSink:
    def test_body_and_headers(self) -> None:
        """One POST per batch, NDJSON without a trailing newline, Content-Type application/x-ndjson."""
        async def go() -> list[tuple[dict[str, str], bytes]]:
            async with Scripted([]) as srv:
                await VectorHttpSink(f"http://127.0.0.1:{srv.port}/", batch_events=3).send([b'{"a":1}', b'{"a":2}',
                                                                                            b'{"a":3}', b'{"a":4}'])
                return srv.bodies
        bodies = asyncio.run(go())
        assert [b for _, b in bodies] == [b'{"a":1}\n{"a":2}\n{"a":3}', b'{"a":4}']
        h = bodies[0][0]
        assert h["Content-Type"] == "application/x-ndjson" and h["User-Agent"].startswith("Vector/")

    def test_retries_like_vector(self) -> None:
        """429, 408, 500 and 503 are retried until 200; Retry-After is seen but not obeyed; 501 and 400 drop."""
        async def go() -> tuple[Any, Any, Any]:
            async with Scripted([429, 408, 500, 503], {"Retry-After": "30"}) as srv:
                ok = await VectorHttpSink(f"http://127.0.0.1:{srv.port}/", backoff_initial=0.01).send([b"{}"])
            async with Scripted([501]) as srv:
                r501 = await VectorHttpSink(f"http://127.0.0.1:{srv.port}/", backoff_initial=0.01).send([b"{}"])
            async with Scripted([400]) as srv:
                r400 = await VectorHttpSink(f"http://127.0.0.1:{srv.port}/", backoff_initial=0.01).send([b"{}"])
            return ok, r501, r400
        ok, r501, r400 = asyncio.run(go())
        assert ok.acked == 1 and ok.retries == 4 and ok.retry_after == ["30"] * 4
        assert r501.dropped == 1 and r501.retries == 0 and r400.dropped == 1

    def test_gzip_and_restart(self) -> None:
        """A gzip body reaches the http_server source peer, which stores every event once per 200."""
        async def go() -> Any:
            src = VectorHttpServerSource()
            await src.start()
            s = stream("v", 1000)
            await VectorHttpSink(src.url, batch_events=100, gzip_body=True).send(s.lines)
            await src.stop()
            return account([s], src.events, alerts=False), src.requests
        d, reqs = asyncio.run(go())
        assert d.ok and not d.duplicates, d.summary()
        assert reqs[0]["headers"]["Content-Encoding"] == "gzip"


class TestFluentBitHttpOutput:
    def test_body_and_statuses(self) -> None:
        """json_lines: date first, a newline after every record; 201-205 success, 404 dropped, 503 retried."""
        async def go() -> Any:
            async with Scripted([503, 204]) as srv:
                ok = await FluentBitHttpOutput(f"http://127.0.0.1:{srv.port}/", base=0.01).send([b'{"a":1}'])
                body = srv.bodies[0]
            async with Scripted([404]) as srv:
                dropped = await FluentBitHttpOutput(f"http://127.0.0.1:{srv.port}/", base=0.01).send([b'{"a":1}'])
            return ok, body, dropped
        ok, (headers, body), dropped = asyncio.run(go())
        assert ok.acked == 1 and ok.retries == 1 and dropped.dropped == 1
        assert body.endswith(b"\n") and json.loads(body)["a"] == 1 and body.startswith(b'{"date":')
        assert headers["Content-Type"] == "application/x-ndjson" and headers["User-Agent"] == "Fluent-Bit"


class TestSockets:
    def test_tcp_and_unix(self, tmp_path: Any) -> None:
        """Vector's socket sink and Fluent Bit's tcp output reach a socket source line for line, in order."""
        async def go() -> Any:
            tcp, unix = SocketSource(), SocketSource(path=tmp_path / "s.sock")
            await tcp.start()
            await unix.start()
            a, b, c = stream("a", 500), stream("b", 500), stream("c", 500)
            await VectorSocketSink(port=tcp.port).send(a.lines)
            await FluentBitTcpOutput(port=tcp.port).send(b.lines)
            await VectorSocketSink(path=unix.path).send(c.lines)
            await asyncio.sleep(0.2)
            await tcp.stop()
            await unix.stop()
            return account([a, b], tcp.events, alerts=False), account([c], unix.events, alerts=False), tcp.events[-1]
        d1, d2, last = asyncio.run(go())
        assert d1.ok and d2.ok, (d1.summary(), d2.summary())
        assert "date" in last


class TestForward:
    def test_ack_and_resend(self) -> None:
        """Forward mode and CompressedPackedForward reach the forward input; a chunk unacked (input stalled
        past the ack timeout) is resent whole on a new connection, so duplicates appear, nothing is lost."""
        async def go() -> Any:
            inp = ForwardInput()
            await inp.start()
            a, b = stream("a", 600), stream("b", 600)
            await FluentBitForwardOutput("127.0.0.1", inp.port).send(a.records())
            inp.stall(1.0)
            rb = await FluentBitForwardOutput("127.0.0.1", inp.port, compress=True, ack_timeout=0.3).send(b.records())
            await inp.stop()
            return account([a, b], inp.events, alerts=False), rb
        d, rb = asyncio.run(go())
        assert not d.lost and not d.reordered, d.summary()
        assert rb.retries >= 1 and d.duplicates.get("b", 0) >= 1, (rb.retries, rb.errors, d.summary())
