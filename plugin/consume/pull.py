"""Fetching from a durable pull consumer: a pull request per batch, the messages gathered by a
subscription callback.

nats-py's `fetch` waits for each message with its own task (`next_msg` with a timeout): an event-loop
round per message, most of a worker's CPU at a few thousand events per second (bench/run_nats.py).
Here the callback only appends, and one event ends the wait: the batch is full, or the server's
status message says the request expired (408) or nothing was there (404)."""

from __future__ import annotations

import asyncio
import json

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["Puller", "delivery"]

_HEARTBEAT = "100"  # an idle heartbeat or flow control: not the end of a request


def delivery(reply: str) -> tuple[int, int]:
    """(times delivered, stream sequence) from a JetStream message's reply subject, without building
    nats-py's metadata object per message: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.
    <pending>`, or the newer form with a domain and an account hash in front (11 tokens or more)."""
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[4]), int(tokens[5])
    if len(tokens) >= 11:
        return int(tokens[6]), int(tokens[7])
    raise ValueError(f"not a JetStream ack subject: {reply!r}")


class Puller:
    def __init__(self, nc: Client, stream: str, consumer: str) -> None:
        self._nc = nc
        self._next = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._msgs: list[Msg] = []
        self._want = 0
        self._done = asyncio.Event()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None:
            if status != _HEARTBEAT:
                self._done.set()  # 404 no messages, 408 expired, 409 (consumer deleted, limits)
            return
        self._msgs.append(msg)
        if len(self._msgs) >= self._want:
            self._done.set()

    async def fetch(self, batch: int, wait_s: float) -> list[Msg]:
        """Up to `batch` messages, in stream order: what is there now (no_wait) or, when nothing is,
        the first one to come within `wait_s` (the next fetch takes those behind it at once)."""
        msgs = await self._request({"batch": batch, "no_wait": True}, batch, 5.0)
        if not msgs:
            msgs = await self._request({"batch": 1, "expires": int(wait_s * 1e9)}, 1, wait_s + 1.0)
        return msgs

    async def _request(self, request: dict[str, object], want: int, timeout: float) -> list[Msg]:
        self._want = want
        self._done.clear()
        await self._nc.publish(self._next, json.dumps(request).encode(), reply=self._inbox)
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:  # the server is away: whatever came
            pass
        # a message of a request that ended client-side can still come: it joins the next batch
        msgs, self._msgs = self._msgs, []
        return msgs
