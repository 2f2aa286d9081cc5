"""The Fluent forward protocol on the wire: a listener (Fluent Bit's `forward` output, Fluentd's
out_forward) and an output (Fluent Bit's or Fluentd's `forward` input), around the codec in fluent.py.

Listener: each entry's record becomes one NDJSON line for the engine; a message carrying a `chunk`
option is answered `{"ack": chunk}` in one write once every one of its events has been delivered
downstream (Fluent Bit reads the ack in one read and resends the chunk if it is late or wrong:
at-least-once). A connection that sends something that is not the protocol is closed with a
warning; the others go on.

Output: one Forward-mode message per batch with a fresh chunk id; the batch counts as delivered
when the matching ack arrives, and is sent again on a new connection if it does not in time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shellsieve.serve.endpoints import Endpoint
from shellsieve.serve.fluent import AckReader, ForwardDecoder, ForwardError, ack, encode_forward, new_chunk_id, record_line
from shellsieve.serve.listeners import StreamListener
from shellsieve.serve.outputs import Backoff, Reporting

__all__ = ["ForwardListener", "ForwardOutput"]

_READ = 1 << 16


class ForwardListener(StreamListener):
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        p = self.pipeline
        self.stats.accepted += 1
        self.stats.connections += 1
        self._writers.add(writer)
        stream = p.engine.stream()
        decoder = ForwardDecoder()
        peer = writer.get_extra_info("peername")
        try:
            while p.accepting:
                await p.wait_room()
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        data = await reader.read(_READ)
                except TimeoutError:
                    self.log.warning("connection_idle", listener=self.ep.name, seconds=self.idle_timeout)
                    break
                except (ConnectionError, OSError):
                    break
                if not data or not p.accepting:
                    break
                try:
                    messages = decoder.feed(data)
                except ForwardError as exc:
                    self.log.warning("forward_protocol_error", listener=self.ep.name, peer=str(peer), error=str(exc))
                    break
                for msg in messages:
                    lines = b"".join(record_line(rec) for _, rec in msg.entries)
                    async with p.lock:  # waits only while a stream passes an over-long line through
                        target = self.feed(stream, lines)
                    if msg.chunk is None:
                        continue
                    if not await p.wait_delivered(target):
                        return  # stopping before delivery: no ack, the sender resends the chunk
                    writer.write(ack(msg.chunk))
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.stats.connections -= 1
            self._writers.discard(writer)
            writer.close()


class ForwardOutput(Reporting):
    def __init__(self, ep: Endpoint, retry_max: float, timeout: float, log: Any, on_state: Any) -> None:
        super().__init__(ep.name, log, on_state)
        self.ep, self.retry_max, self.timeout = ep, retry_max, timeout
        self.tag = ep.options.get("tag", "shellsieve")
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, data: bytes, stopping: asyncio.Event) -> None:
        lines = data.splitlines(keepends=True)
        chunk = new_chunk_id()
        payload = encode_forward(self.tag, lines, chunk, time.time())
        backoff = Backoff(self.retry_max)
        while True:
            try:
                if self._conn is None:
                    self._conn = await asyncio.wait_for(
                        asyncio.open_connection(self.ep.host, self.ep.port), self.timeout)
                reader, writer = self._conn
                writer.write(payload)
                await asyncio.wait_for(writer.drain(), self.timeout)
                await asyncio.wait_for(self._ack(reader, chunk), self.timeout)
            except (OSError, TimeoutError, ForwardError, EOFError) as exc:
                self.failed(f"{type(exc).__name__}: {exc}")
                await self._drop()
                await backoff.wait(stopping)
                continue
            self.ok()
            return

    async def _ack(self, reader: asyncio.StreamReader, chunk: str) -> None:
        acks = AckReader()
        while True:
            data = await reader.read(4096)
            if not data:
                raise EOFError("the forward input closed the connection before its ack")
            if chunk in acks.feed(data):
                return

    async def _drop(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def close(self) -> None:
        await self._drop()
