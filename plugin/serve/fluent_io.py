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
import contextlib
import time
from typing import Any

from shellsieve.serve.endpoints import Endpoint
from shellsieve.serve.fluent import (AckReader, ForwardDecoder, ForwardError, ack, encode_forward, new_chunk_id,
                                     record_line)
from shellsieve.serve.listeners import StreamListener
from shellsieve.serve.outputs import Reporting

__all__ = ["ForwardListener", "ForwardOutput"]



class ForwardListener(StreamListener):
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        p = self.pipeline
        stream = p.engine.stream()
        decoder = ForwardDecoder()
        with self._connection(writer), contextlib.suppress(ConnectionError, OSError):
            while data := await self._read(reader):
                try:
                    messages = decoder.feed(data)
                except ForwardError as exc:
                    self.log.warning("forward_protocol_error", listener=self.ep.name,
                                     peer=str(writer.get_extra_info("peername")), error=str(exc))
                    return
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


class ForwardOutput(Reporting):
    def __init__(self, ep: Endpoint, retry_max: float, timeout: float, log: Any, on_state: Any) -> None:
        super().__init__(ep.name, log, on_state)
        self.ep, self.retry_max, self.timeout = ep, retry_max, timeout
        self.tag = ep.options.get("tag", "shellsieve")
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, data: bytes, stopping: asyncio.Event) -> None:
        chunk = new_chunk_id()
        payload = encode_forward(self.tag, data.splitlines(keepends=True), chunk, time.time())

        async def attempt() -> None:
            async with asyncio.timeout(self.timeout):
                if self._conn is None:
                    self._conn = await asyncio.open_connection(self.ep.host, self.ep.port)
                reader, writer = self._conn
                writer.write(payload)
                await writer.drain()
                await self._ack(reader, chunk)

        await self.retrying(attempt, (OSError, TimeoutError, ForwardError, EOFError), self.retry_max, stopping)

    async def _ack(self, reader: asyncio.StreamReader, chunk: str) -> None:
        acks = AckReader()
        while True:
            data = await reader.read(4096)
            if not data:
                raise EOFError("the forward input closed the connection before its ack")
            if chunk in acks.feed(data):
                return

    async def drop(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None

    async def close(self) -> None:
        await self.drop()
