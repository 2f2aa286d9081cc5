"""Peers that speak exactly what Vector and Fluent Bit put on the wire, for tests of `shellsieve serve`.

Upstream (they send to serve's --listen):
    VectorHttpSink         Vector `http` sink, codec json (or text), framing newline_delimited
    FluentBitHttpOutput    Fluent Bit `http` output, Format json_lines
    VectorSocketSink       Vector `socket` sink, mode tcp / unix_stream, framing newline_delimited
    FluentBitTcpOutput     Fluent Bit `tcp` output, Format json_lines
    FluentBitForwardOutput Fluent Bit `forward` output, Require_ack_response On
Downstream (they receive from serve's --forward):
    VectorHttpServerSource Vector `http_server` source, decoding json, framing newline_delimited
    SocketSource           Vector `socket` source / Fluent Bit `tcp` input on tcp or unix
    ForwardInput           Fluent Bit `forward` input / Fluentd in_forward, answering chunk acks

Each fact below cites the source it was read from (vectordotdev/vector c3445d4, fluent/fluent-bit d55459d).
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import random
import socket
import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
from aiohttp import web

__all__ = ["free_port", "VectorHttpSink", "FluentBitHttpOutput", "VectorSocketSink", "FluentBitTcpOutput",
           "FluentBitForwardOutput", "VectorHttpServerSource", "SocketSource", "ForwardInput", "SendReport"]

NDJSON = "application/x-ndjson"  # vector src/sinks/http/config.rs CONTENT_TYPE_NDJSON; fluent-bit out_http/http.h


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SendReport:
    """What an upstream peer saw: per status code how many responses, retries, Retry-After values, errors."""
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    retry_after: list[str] = field(default_factory=list)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    dropped: int = 0  # events of batches the shipper gave up on (a non-retried status)
    acked: int = 0  # events whose request got a success status / whose chunk was acked
    acked_seqs: list[Any] = field(default_factory=list)  # the items acknowledged, in order


# ---------------------------------------------------------------------------------------------- upstream


class VectorHttpSink:
    """Vector's `http` sink: POST, one batch per request, retried as its default RetryStrategy says.

    * method POST (HttpMethod default, src/sinks/http/config.rs); Content-Type application/x-ndjson for
      codec json + framing newline_delimited, text/plain for codec text (same file, `content_type`);
      User-Agent `Vector/<version>` (src/http.rs default_user_agent); Content-Encoding only if compressed.
    * Body: each event encoded then framed with b"\\n", and the trailing newline removed "for
      backwards-compatibility with Vector 0.20.x" (src/sinks/http/encoder.rs): the last line has none.
    * Batches: max_bytes 10 MB, timeout 1 s, no event cap (RealtimeSizeBasedDefaultBatchSettings,
      src/sinks/util/batch.rs); here `batch_events` sets the cut.
    * Retry (RetryStrategy::Default, src/sinks/util/http.rs): 2xx success; 429, 408 and 5xx except 501
      retried; every other status dropped. Connection errors and timeouts (60 s) retried
      (is_retriable_error / is_retriable_timeout). Attempts unlimited (isize::MAX).
    * Backoff: Fibonacci from retry_initial_backoff_secs 1 s to retry_max_duration_secs 30 s with full
      jitter by default (src/sinks/util/retries.rs FibonacciRetryPolicy, JitterMode::Full). Retry-After is
      NOT read: no code under src/ looks at that header (only x-amz-retry-after for AWS sinks).
    * One request in flight per sink here: Vector's default is adaptive concurrency, which may reorder
      requests; a pipeline that needs per-source order sets `request.concurrency = 1`, as we model.
    """

    def __init__(self, url: str, *, batch_events: int = 500, codec: str = "json", gzip_body: bool = False,
                 backoff_initial: float = 1.0, backoff_max: float = 30.0, timeout: float = 60.0,
                 version: str = "0.50.0") -> None:
        self.url = url
        self.batch_events = batch_events
        self.headers = {"Content-Type": NDJSON if codec == "json" else "text/plain",
                        "User-Agent": f"Vector/{version}"}
        if gzip_body:
            self.headers["Content-Encoding"] = "gzip"
        self.gzip_body = gzip_body
        self.backoff_initial, self.backoff_max, self.timeout = backoff_initial, backoff_max, timeout
        self.report = SendReport()

    def _body(self, lines: list[bytes]) -> bytes:
        body = b"\n".join(lines)  # framed with \n, the last one removed
        return gzip.compress(body) if self.gzip_body else body

    def _delays(self) -> Any:
        prev, cur = 0.0, self.backoff_initial
        while True:
            yield random.uniform(0, cur) or cur  # JitterMode::Full: (rand % cur_ms) + 1 ms
            prev, cur = cur, min(prev + cur, self.backoff_max)

    async def post(self, session: aiohttp.ClientSession, lines: list[bytes]) -> bool:
        """One batch until a 2xx (True) or a status Vector does not retry (False: the batch is dropped)."""
        body = self._body(lines)
        delays = self._delays()
        while True:
            try:
                async with session.post(self.url, data=_payload(body), headers=self.headers,
                                        timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                    await resp.read()
                    self.report.statuses[resp.status] += 1
                    if "Retry-After" in resp.headers:
                        self.report.retry_after.append(resp.headers["Retry-After"])
                    if 200 <= resp.status < 300:
                        return True
                    if not (resp.status in (408, 429) or (resp.status >= 500 and resp.status != 501)):
                        self.report.dropped += len(lines)
                        return False
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                self.report.errors.append(type(e).__name__)
            self.report.retries += 1
            await asyncio.sleep(next(delays))

    async def send(self, lines: list[bytes], ids: list[Any] | None = None) -> SendReport:
        """Every line, in batches of `batch_events`, one request in flight; `ids` are recorded as acked."""
        async with aiohttp.ClientSession() as session:
            for i in range(0, len(lines), self.batch_events):
                batch = lines[i:i + self.batch_events]
                if await self.post(session, batch):
                    self.report.acked += len(batch)
                    self.report.acked_seqs.extend((ids or lines)[i:i + self.batch_events])
        return self.report


class FluentBitHttpOutput(VectorHttpSink):
    """Fluent Bit's `http` output with Format json_lines.

    * Body: each record as JSON with the date key first (json_date_key "date", json_date_format double,
      src/flb_pack.c), a newline after EACH record, the last included ("add breakline (\\n) after each
      record", flb_pack.c FLB_PACK_JSON_FORMAT_LINES).
    * Headers: Content-Type application/x-ndjson (plugins/out_http/http.c, http.h FLB_HTTP_MIME_NDJSON),
      User-Agent Fluent-Bit.
    * Status: 200-205 success; other 4xx except 429 and 408 -> FLB_ERROR (chunk dropped, "will not be
      retried"); everything else, and a failed request, -> FLB_RETRY (plugins/out_http/http.c).
    * Retry scheduling: full jitter between base and min(cap, base * 2^n), scheduler.base 5 s, cap 2000 s
      (src/flb_scheduler.c backoff_full_jitter); Retry_Limit default 1 (src/flb_output.c), `None` = no limit.
    """

    def __init__(self, url: str, *, batch_events: int = 500, gzip_body: bool = False,
                 base: float = 5.0, cap: float = 2000.0, retry_limit: int | None = None) -> None:
        super().__init__(url, batch_events=batch_events, gzip_body=gzip_body)
        self.headers = {"Content-Type": NDJSON, "User-Agent": "Fluent-Bit"}
        if gzip_body:
            self.headers["Content-Encoding"] = "gzip"
        self.base, self.cap, self.retry_limit = base, cap, retry_limit

    def _body(self, lines: list[bytes]) -> bytes:
        body = b"".join(with_date(line) + b"\n" for line in lines)
        return gzip.compress(body) if self.gzip_body else body

    async def post(self, session: aiohttp.ClientSession, lines: list[bytes]) -> bool:
        body, tries = self._body(lines), 0
        while True:
            try:
                async with session.post(self.url, data=_payload(body), headers=self.headers) as resp:
                    await resp.read()
                    self.report.statuses[resp.status] += 1
                    if "Retry-After" in resp.headers:
                        self.report.retry_after.append(resp.headers["Retry-After"])
                    if 200 <= resp.status <= 205:
                        return True
                    if 400 <= resp.status < 500 and resp.status not in (429, 408):
                        self.report.dropped += len(lines)
                        return False
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                self.report.errors.append(type(e).__name__)
            tries += 1
            if self.retry_limit is not None and tries > self.retry_limit:
                self.report.dropped += len(lines)
                return False
            self.report.retries += 1
            await asyncio.sleep(random.uniform(self.base, min(self.cap, self.base * 2 ** tries)))


def _payload(body: bytes) -> Any:
    """The body for aiohttp: a BytesIO over 1 MiB (raw bytes that large make aiohttp warn); either way
    it is sent with a Content-Length, as hyper (Vector) and Fluent Bit send theirs."""
    return io.BytesIO(body) if len(body) > 1 << 20 else body


def with_date(line: bytes, now: float | None = None) -> bytes:
    """A JSON-object line as Fluent Bit's json formats write it: the date key (double) first."""
    date = b'{"date":%.6f' % (time.time() if now is None else now)
    return date + (b"," + line[1:] if line[1:].strip() != b"}" else b"}")


class VectorSocketSink:
    """Vector's `socket` sink, mode tcp or unix_stream, framing newline_delimited: each event then b"\\n"
    (src/sinks/socket.rs; codec json). No application ack: an event counts as sent once written."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str | Path | None = None) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.report = SendReport()

    async def connect(self) -> None:
        if self.path is not None:
            self.reader, self.writer = await asyncio.open_unix_connection(str(self.path))
        else:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def frame(self, line: bytes) -> bytes:
        return line + b"\n"

    async def send(self, lines: list[bytes], chunk: int = 200, close: bool = True) -> SendReport:
        """Every line written in order (drained every `chunk` lines, so backpressure reaches us)."""
        if self.writer is None:
            await self.connect()
        assert self.writer is not None
        try:
            for i in range(0, len(lines), chunk):
                self.writer.write(b"".join(self.frame(x) for x in lines[i:i + chunk]))
                await self.writer.drain()
                self.report.acked += len(lines[i:i + chunk])
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return self.report

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None


class FluentBitTcpOutput(VectorSocketSink):
    """Fluent Bit's `tcp` output, Format json_lines: each record as JSON with "date" (double) first and a
    newline after it (plugins/out_tcp/tcp.c -> flb_pack_msgpack_to_json_format, json_date_format double)."""

    def frame(self, line: bytes) -> bytes:
        return with_date(line) + b"\n"


def event_time(t: float) -> msgpack.ExtType:
    """Fluent's EventTime: ext type 0, seconds and nanoseconds as two big-endian uint32."""
    sec = int(t)
    return msgpack.ExtType(0, struct.pack(">II", sec, int((t - sec) * 1e9)))


class FluentBitForwardOutput:
    """Fluent Bit's `forward` output with Require_ack_response On (plugins/out_forward/forward.c).

    * Forward mode: `[tag, [entry, ...], {"chunk": <b64>, "size": n}]` (flush_forward_mode: array(3) header,
      array(entries), options). retain_metadata_in_forward_mode defaults to true (config map), so the
      entries go in Fluent Bit's own shape `[[EventTime, metadata], record]`; with it false they are
      transcoded to FLB_LOG_EVENT_FORMAT_FORWARD, `[EventTime, record]`. With Compress gzip the entries go
      as one bin of gzip(concatenated entries) and options carry `"compressed": "gzip"`
      (CompressedPackedForward, forward_format.c append_options).
    * The chunk token is the base64 of a 128-bit checksum of the data (forward_format.c), so a resend of
      the same chunk carries the same token.
    * After writing, it reads one msgpack map and needs {"ack": <the same token>} (forward_read_ack);
      anything else, a close, or a read timeout -> FLB_RETRY: the connection is dropped and the whole
      chunk is sent again later (at-least-once).
    """

    def __init__(self, host: str, port: int, *, tag: str = "shellsieve.test", chunk_events: int = 200,
                 compress: bool = False, ack_timeout: float = 10.0, retry_delay: float = 0.2,
                 retain_metadata: bool = True) -> None:
        self.host, self.port, self.tag = host, port, tag
        self.retain_metadata = retain_metadata
        self.chunk_events, self.compress = chunk_events, compress
        self.ack_timeout, self.retry_delay = ack_timeout, retry_delay
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.report = SendReport()

    def message(self, records: list[dict[str, Any]], t: float) -> tuple[bytes, str]:
        stamp: Any = [event_time(t), {}] if self.retain_metadata else event_time(t)
        entries = b"".join(msgpack.packb([stamp, r], use_bin_type=True) for r in records)
        token = base64.b64encode(hashlib.md5(entries).digest()).decode()
        opts: dict[str, Any] = {"chunk": token, "size": len(records)}
        if self.compress:
            opts["compressed"] = "gzip"
            packed = msgpack.packb([self.tag, gzip.compress(entries), opts], use_bin_type=True)
        else:
            packed = (b"\x93" + msgpack.packb(self.tag) + _array_header(len(records)) + entries
                      + msgpack.packb(opts))
        return packed, token

    async def _drop(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None

    async def send_chunk(self, records: list[dict[str, Any]]) -> None:
        """One chunk until acked: write it, read the ack; on any failure drop the connection and resend."""
        data, token = self.message(records, time.time())
        while True:
            try:
                if self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                assert self.reader is not None
                self.writer.write(data)
                await self.writer.drain()
                unpacker = msgpack.Unpacker(raw=False)
                async with asyncio.timeout(self.ack_timeout):
                    while True:
                        got = await self.reader.read(512)
                        if not got:
                            raise ConnectionResetError("closed before the ack")
                        unpacker.feed(got)
                        ack = next(iter(unpacker), None)
                        if ack is not None:
                            break
                if not isinstance(ack, dict) or ack.get("ack") != token:
                    raise ValueError(f"ack mismatch: {ack!r}")
                self.report.acked += len(records)
                return
            except (OSError, ValueError, TimeoutError) as e:
                self.report.errors.append(type(e).__name__)
                self.report.retries += 1
                await self._drop()
                await asyncio.sleep(self.retry_delay)

    async def send(self, records: list[dict[str, Any]], ids: list[Any] | None = None) -> SendReport:
        try:
            for i in range(0, len(records), self.chunk_events):
                await self.send_chunk(records[i:i + self.chunk_events])
                self.report.acked_seqs.extend((ids or records)[i:i + self.chunk_events])
        finally:
            await self._drop()
        return self.report


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


# -------------------------------------------------------------------------------------------- downstream


class _Stall:
    """A gate a downstream peer waits at while stalled."""

    def __init__(self) -> None:
        self.until = 0.0

    def stall(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds

    async def wait(self) -> None:
        while (left := self.until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))


class VectorHttpServerSource:
    """Vector's `http_server` source, decoding json, framing newline_delimited, any path.

    * The body (gunzipped on Content-Encoding gzip) is split on newlines and each frame decoded as JSON; a
      frame that does not decode fails the request with 400 (src/sources/util/http/prelude.rs
      handle_request: Err -> HttpBadRequest).
    * Success: `response_code`, default 200, with an empty body (http_server.rs default_http_response_code;
      prelude.rs handle_batch_status). With acknowledgements the answer waits for the batch's delivery:
      Delivered -> 200, Errored -> 500, Rejected -> 400. Here "delivered" is "stored in `events`".
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port or free_port()
        self.events: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []  # method, path, headers, count, status
        self.gate = _Stall()
        self.status_override: int | None = None  # answer this status, storing nothing
        self.json_array = False  # expect one JSON array per body instead of NDJSON
        self.cut_after_store = 0  # this many requests: store the events, then drop the connection unanswered
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/events"

    async def handle(self, request: web.Request) -> web.Response:
        await self.gate.wait()  # a stalled Vector neither reads the body nor answers
        body = await request.read()  # aiohttp has already undone Content-Encoding gzip/deflate
        info = {"method": request.method, "path": request.path, "headers": dict(request.headers)}
        self.requests.append(info)
        if self.status_override is not None:
            info["status"] = self.status_override
            return web.Response(status=self.status_override)
        try:
            if self.json_array:  # Fluent Bit's http input given a JSON array (serve's ?format=json_array)
                batch = json.loads(body)
                assert isinstance(batch, list), "not a JSON array"
            else:
                batch = [json.loads(frame) for frame in body.split(b"\n") if frame.strip()]
        except (ValueError, AssertionError) as e:
            info["status"] = 400
            return web.json_response({"code": 400, "message": f"Failed decoding: {e}"}, status=400)
        self.events.extend(batch)
        info["count"], info["status"] = len(batch), 200
        if self.cut_after_store > 0:  # delivered, but the sender never hears so: it must send again
            self.cut_after_store -= 1
            info["status"] = "cut"
            assert request.transport is not None
            request.transport.abort()
        return web.Response(status=200)

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("POST", "/{tail:.*}", self.handle)
        # a short shutdown_timeout: stop() cuts requests in flight, as a killed Vector does
        self.runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port, reuse_address=True).start()

    async def stop(self) -> None:
        """Close the listener and every connection, as a killed Vector does (in-flight requests are cut)."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def stall(self, seconds: float) -> None:
        self.gate.stall(seconds)


class SocketSource:
    """Vector's `socket` source (mode tcp or unix, framing newline_delimited) / Fluent Bit's `tcp` input:
    lines recorded per connection in order; can stop reading (stall) and be stopped and restarted."""

    def __init__(self, port: int | None = None, path: str | Path | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.path = host, path
        self.port = 0 if path else (port or free_port())
        self.lines: list[bytes] = []
        self.by_conn: dict[int, list[bytes]] = defaultdict(list)
        self.gate = _Stall()
        self.server: asyncio.base_events.Server | None = None
        self._conns = 0
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"unix://{self.path}" if self.path else f"tcp://{self.host}:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns += 1
        conn = self._conns
        self._writers.add(writer)
        try:
            while True:
                await self.gate.wait()
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as e:
                    if e.partial:
                        self.lines.append(e.partial)
                        self.by_conn[conn].append(e.partial)
                    break
                except asyncio.LimitOverrunError:
                    line = await reader.read(1 << 20)
                self.lines.append(line.rstrip(b"\n"))
                self.by_conn[conn].append(line.rstrip(b"\n"))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.lines if x.strip()]

    async def start(self) -> None:
        if self.path:
            self.server = await asyncio.start_unix_server(self.handle, str(self.path), limit=1 << 24)
        else:
            self.server = await asyncio.start_server(self.handle, self.host, self.port, reuse_address=True,
                                                     limit=1 << 24)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self._writers):
                w.close()
            await self.server.wait_closed()
            self.server = None

    def stall(self, seconds: float) -> None:
        self.gate.stall(seconds)


class ForwardInput:
    """Fluent Bit's `forward` input / Fluentd in_forward: Message, Forward, PackedForward and
    CompressedPackedForward; answers `{"ack": chunk}` once the chunk's events are stored."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host, self.port = host, port or free_port()
        self.events: list[dict[str, Any]] = []
        self.tags: list[str] = []
        self.acks = 0
        self.gate = _Stall()
        self.server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"forward://{self.host}:{self.port}"

    def _entries(self, entries: Any) -> list[dict[str, Any]]:
        if isinstance(entries, bytes):  # PackedForward: concatenated [time, record] entries
            return [e[1] for e in msgpack.Unpacker(io.BytesIO(entries), raw=False, strict_map_key=False)]
        return [e[1] for e in entries]

    def _accept(self, msg: Any) -> str | None:
        tag, rest = msg[0], msg[1:]
        opts: dict[str, Any] = {}
        if isinstance(rest[0], (list, bytes)):  # Forward / PackedForward
            entries = rest[0]
            opts = rest[1] if len(rest) > 1 and isinstance(rest[1], dict) else {}
            if isinstance(entries, bytes) and opts.get("compressed") == "gzip":
                entries = gzip.decompress(entries)
            records = self._entries(entries)
        else:  # Message: [tag, time, record, opts?]
            records = [rest[1]]
            opts = rest[2] if len(rest) > 2 and isinstance(rest[2], dict) else {}
        self.events.extend(records)
        self.tags.extend([tag] * len(records))
        return opts.get("chunk")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=1 << 30)
        self._writers.add(writer)
        try:
            while data := await reader.read(1 << 16):
                unpacker.feed(data)
                for msg in unpacker:
                    await self.gate.wait()
                    chunk = self._accept(msg)
                    if chunk is not None:
                        writer.write(msgpack.packb({"ack": chunk}))
                        await writer.drain()
                        self.acks += 1
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, self.host, self.port, reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self._writers):
                w.close()
            await self.server.wait_closed()
            self.server = None

    def stall(self, seconds: float) -> None:
        self.gate.stall(seconds)
