"""Hostile clients against `shellsieve serve`: garbage, half-open connections, a slowloris trickle, a 1 GiB
body, a gzip bomb; each gets an error or a close, memory stays bounded, the other connections go on."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp

from .conftest import Stream, account, await_for, rss_kib, stream
from .harness import Listeners, downstream, forward_url, raw_exchange, run, send, started

_MiB = 1 << 20



class TestHostile:
    def test_hostile_clients_do_not_stop_others(self, tmp_path: Path, start_serve: Any,
                                                record_property: Any) -> None:
        """Garbage bytes, half-open connections, a slowloris trickle and a 1 GiB body get an error or a
        close, memory stays bounded, and well-behaved peers lose nothing meanwhile."""
        results: dict[str, Any] = {}

        async def big_body(chunked: bool) -> None:
            r, w = await asyncio.open_connection("127.0.0.1", ls.http)
            head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                    + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Content-Length: 1073741824\r\n\r\n"))
            w.write(head)
            sent, piece = 0, (b'{"a":1}\n' * 8192)
            status = b""
            try:
                while sent < 32 * _MiB:
                    w.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                    await w.drain()
                    sent += len(piece)
                    try:
                        status = await asyncio.wait_for(r.read(200), 0.001)
                    except TimeoutError:
                        continue
                    break
            except (ConnectionError, OSError):
                pass
            if not status:
                try:
                    status = await asyncio.wait_for(r.read(200), 5)
                except (TimeoutError, ConnectionError, OSError):
                    status = b"<none>"
            results["chunked" if chunked else "1GiB"] = (sent, status[:40])
            w.close()

        async def gzip_bomb() -> None:
            body = gzip.compress(b'{"a":1}\n' * (1 << 24), 9)  # 128 MiB of lines in ~200 KB
            async with aiohttp.ClientSession() as s, s.post(
                    f"http://127.0.0.1:{ls.http}/", data=body,
                    headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"}) as resp:
                results["gzip_bomb"] = resp.status

        async def slowloris() -> None:
            r, w = await asyncio.open_connection("127.0.0.1", ls.http)
            msg = b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 20  # one byte per 0.1 s, 5 s in all
            for b in msg:
                try:
                    w.write(bytes([b]))
                    await w.drain()
                except (ConnectionError, OSError):
                    results["slowloris"] = "closed"
                    w.close()
                    return
                await asyncio.sleep(0.1)
            results["slowloris"] = "held"
            w.close()

        async def go() -> tuple[list[Stream], Any, int, int, bytes]:
            nonlocal ls
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http", "tcp")), forward_url(sink),
                                          "--max-body-bytes", str(_MiB), "--idle-timeout", "3")
            base = rss_kib(srv.pid)
            half_tcp = await asyncio.open_connection("127.0.0.1", ls.tcp)
            opened.append(half_tcp[1])
            half_tcp[1].write(b'{"half":')
            half_http = await asyncio.open_connection("127.0.0.1", ls.http)
            opened.append(half_http[1])
            half_http[1].write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
            garbage = os.urandom(1 << 16)
            good = [stream("g_http", 3000), stream("g_tcp", 3000)]
            extra = await asyncio.gather(
                send("vector_http", ls, good[0], batch_events=100), send("vector_tcp", ls, good[1]),
                raw_exchange(ls.http, b"\x16\x03\x01\x02\x00garbage\r\n\r\n"),
                raw_exchange(ls.tcp, garbage, read=False),
                big_body(False), big_body(True), slowloris(), gzip_bomb())
            results["garbage_http"] = extra[2][:40]
            await await_for(lambda: sum(1 for e in sink.events if str(e.get("labels", {}).get("conn", ""))
                                        .startswith("g_")) >= 6000, 20)
            peak = rss_kib(srv.pid)
            for name, (r, _) in (("half_open_tcp", half_tcp), ("half_open_http", half_http)):
                try:  # silent past --idle-timeout 3: closed by serve (an HTTP one may get a 408 first)
                    results[name] = await asyncio.wait_for(r.read(), 8) or b"closed"
                except TimeoutError:
                    results[name] = b"open"
                except (ConnectionError, OSError):
                    results[name] = b"closed"
            async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{ls.http}/health") as resp:
                health = await resp.read()
            for c in (half_tcp, half_http):
                c[1].close()
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            assert stopped.returncode == 0
            return good, sink.events, base, peak, health

        ls: Any = None
        opened: list[asyncio.StreamWriter] = []

        async def guarded() -> Any:
            try:
                return await go()
            finally:
                for w in opened:
                    w.close()
        good, events, base, peak, health = run(guarded())
        record_property("hostile", repr(results))
        print(f"\n[hostile] {results} rss {base}->{peak} KiB")
        d = account(good, [e for e in events if str(e.get("labels", {}).get("conn", "")).startswith("g_")])
        assert d.ok and not d.duplicates, d.summary()
        assert json.loads(health)["status"] == "ok"
        assert results["garbage_http"][:9] in (b"HTTP/1.0 ", b"HTTP/1.1 ", b"") and results["garbage_http"][9:10] in (
            b"4", b""), results
        for k in ("1GiB", "chunked"):
            sent, status = results[k]
            assert status.startswith(b"HTTP/1.1 413") or status in (b"", b"<none>") and sent < 32 * _MiB, results
        assert peak - base < 64 * 1024, (base, peak)
        assert results["gzip_bomb"] == 413, results
        assert results["half_open_tcp"] == b"closed" and results["half_open_http"] != b"open", results


    def test_sigterm_with_a_stuck_request(self, tmp_path: Path, start_serve: Any) -> None:
        """An HTTP request whose body stops half-way neither outlives --idle-timeout nor holds SIGTERM past
        --drain-timeout."""
        async def go() -> tuple[bytes, Any]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http",)), forward_url(sink),
                                          "--idle-timeout", "2", "--drain-timeout", "3")
            r, w = await asyncio.open_connection("127.0.0.1", ls.http)
            try:
                w.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\":")
                try:
                    got = await asyncio.wait_for(r.read(), 6) or b"closed"
                except TimeoutError:
                    got = b"open"
                except (ConnectionError, OSError):
                    got = b"closed"
                stopped = await asyncio.to_thread(srv.stop, signal.SIGTERM, 12)
            finally:
                w.close()
            return got, stopped
        got, stopped = run(go())
        seen = {"request after 6 s silent": got, "SIGTERM to exit (s)": round(stopped.seconds, 1),
                "exit": stopped.returncode}
        assert got != b"open" and stopped.seconds < 3 + 5 and stopped.returncode in (0, 1), seen
