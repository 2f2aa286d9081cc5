"""Wiring for the serve tests: a downstream peer of each kind, the listen addresses of each upstream peer,
and a sender per peer kind, so a test says which peers and how many events and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conftest import Stream
from .peers import (FluentBitForwardOutput, FluentBitHttpOutput, FluentBitTcpOutput, ForwardInput, SendReport,
                    SocketSource, VectorHttpServerSource, VectorHttpSink, VectorSocketSink, free_port)

DOWNSTREAMS = ("http", "tcp", "unix", "forward")
# upstream peer kind -> the listener it talks to
UPSTREAMS = {"vector_http": "http", "fluentbit_http": "http", "vector_tcp": "tcp", "fluentbit_tcp": "tcp",
             "vector_unix": "unix", "fluentbit_forward": "forward"}
# peers that carry raw lines (so malformed ones); Fluent Bit only carries records (maps)
RAW_LINE_PEERS = ("vector_http", "vector_tcp", "vector_unix")


def downstream(kind: str, tmp: Path) -> Any:
    """A stopped downstream peer of `kind`; `.url` is what to give `--forward`."""
    if kind in ("http", "http_json_array"):
        peer = VectorHttpServerSource()
        peer.json_array = kind == "http_json_array"
        return peer
    if kind == "tcp":
        return SocketSource()
    if kind == "unix":
        return SocketSource(path=tmp / "down.sock")
    if kind == "forward":
        return ForwardInput()
    raise ValueError(kind)


def forward_url(peer: Any) -> str:
    if isinstance(peer, ForwardInput):
        return peer.url + "?tag=shellsieve"
    return peer.url + ("?format=json_array" if getattr(peer, "json_array", False) else "")


@dataclass
class Listeners:
    """One address per listener kind, all free now."""
    http: int
    tcp: int
    forward: int
    unix: Path

    @classmethod
    def make(cls, tmp: Path) -> Listeners:
        return cls(free_port(), free_port(), free_port(), tmp / "in.sock")

    def urls(self, kinds: tuple[str, ...] = DOWNSTREAMS, query: str = "") -> list[str]:
        q = f"?{query}" if query else ""
        every = {"http": f"http://127.0.0.1:{self.http}/{q}", "tcp": f"tcp://127.0.0.1:{self.tcp}{q}",
                 "unix": f"unix://{self.unix}{q}", "forward": f"forward://127.0.0.1:{self.forward}{q}"}
        return [every[k] for k in kinds]


def sender(kind: str, ls: Listeners, **kw: Any) -> Any:
    """An upstream peer of `kind` aimed at its listener (test-scaled retry timing)."""
    if kind == "vector_http":
        return VectorHttpSink(f"http://127.0.0.1:{ls.http}/", backoff_initial=kw.pop("backoff", 0.1),
                              backoff_max=kw.pop("backoff_max", 1.0), **kw)
    if kind == "vector_http_gzip":  # compression = "gzip": Content-Encoding gzip
        return VectorHttpSink(f"http://127.0.0.1:{ls.http}/", gzip_body=True, backoff_initial=kw.pop("backoff", 0.1),
                              backoff_max=kw.pop("backoff_max", 1.0), **kw)
    if kind == "vector_http_text":  # encoding.codec = "text": raw lines, Content-Type text/plain
        return VectorHttpSink(f"http://127.0.0.1:{ls.http}/", codec="text", backoff_initial=kw.pop("backoff", 0.1),
                              backoff_max=kw.pop("backoff_max", 1.0), **kw)
    if kind == "fluentbit_http":
        return FluentBitHttpOutput(f"http://127.0.0.1:{ls.http}/", base=kw.pop("backoff", 0.1),
                                   cap=kw.pop("backoff_max", 1.0), **kw)
    if kind == "vector_tcp":
        return VectorSocketSink(port=ls.tcp)
    if kind == "fluentbit_tcp":
        return FluentBitTcpOutput(port=ls.tcp)
    if kind == "vector_unix":
        return VectorSocketSink(path=ls.unix)
    if kind == "fluentbit_forward":
        return FluentBitForwardOutput("127.0.0.1", ls.forward, **kw)
    raise ValueError(kind)


async def send(kind: str, ls: Listeners, s: Stream, into: list[SendReport] | None = None, **kw: Any) -> SendReport:
    """Send stream `s` with a peer of `kind`; Fluent Bit peers send its lines as records. The peer's report
    (growing as it goes) is appended to `into` first, for a caller that may cancel the send."""
    peer = sender(kind, ls, **kw)
    if into is not None:
        into.append(peer.report)
    if isinstance(peer, FluentBitForwardOutput):
        return await peer.send(s.records(), ids=s.seqs)
    if isinstance(peer, VectorHttpSink):
        return await peer.send(s.lines, ids=s.seqs)
    return await peer.send(s.lines)


_live: list[Any] = []


async def started(peer: Any) -> Any:
    """`peer` started, and stopped by `run` however the test ends."""
    await peer.start()
    _live.append(peer)
    return peer


def run(coro: Any) -> Any:
    """asyncio.run(coro), then every peer `started` is stopped, even when the test failed (no socket leaks
    into the next test's ResourceWarnings)."""
    async def main() -> Any:
        try:
            return await coro
        finally:
            while _live:
                with contextlib.suppress(Exception):
                    await _live.pop().stop()
    return asyncio.run(main())


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


async def raw_exchange(port: int, data: bytes, read: bool = True, timeout: float = 5) -> bytes:
    """Write `data` on a fresh connection, then read what comes back (b"<timeout>" if nothing does)."""
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
