"""Publishing a batch to JetStream and reading its acknowledgements, in order.

Each publish carries `Nats-Msg-Id` and a reply subject `<inbox>.<round>.<index>`; one wildcard
subscription takes the acknowledgements. nats-py's `publish_async` makes a future, a token and a
parsed `PubAck` per message; a worker needs per message only: stored or not, and a duplicate or not.
`round` tells a late acknowledgement of an attempt given up (a timeout) from the current one's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from shellsieve.consume.publishes import Publish

__all__ = ["Outcome", "Pusher"]

_DUPLICATE = b'"duplicate"'  # the server writes `"duplicate": true`, and only on a duplicate


class _PubAck(msgspec.Struct):
    duplicate: bool = False


class Outcome:
    """One attempt: `stored` publishes acknowledged from the first on (the rest must be sent again),
    `duplicates` of them dropped by the duplicate window, and why the next one was not, if one was not."""

    __slots__ = ("duplicates", "error", "stored")

    def __init__(self, stored: int, duplicates: int, error: str) -> None:
        self.stored, self.duplicates, self.error = stored, duplicates, error


class Pusher:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._inbox = nc.new_inbox()
        self._round = 0
        self._acks: list[bytes | None] = []
        self._left = 0
        self._done = asyncio.Event()

    async def start(self) -> None:
        await self._nc.subscribe(self._inbox + ".>", cb=self._on_ack)

    async def _on_ack(self, msg: Msg) -> None:
        _, round_, index = msg.subject.rsplit(".", 2)
        if int(round_) != self._round:
            return  # an attempt given up
        i = int(index)
        if self._acks[i] is None:
            status = msg.headers.get("Status") if msg.headers else None
            # 503: no stream takes the subject (no responders)
            self._acks[i] = msg.data if status is None else b'{"error":"status ' + status.encode() + b'"}'
            self._left -= 1
            if not self._left:
                self._done.set()

    async def publish(self, pubs: Sequence[Publish], timeout: float) -> Outcome:
        self._round += 1
        self._acks = [None] * len(pubs)
        self._left = len(pubs)
        self._done.clear()
        prefix = f"{self._inbox}.{self._round}."
        error = ""
        try:
            for i, p in enumerate(pubs):
                await self._nc.publish(p.subject, p.payload, reply=prefix + str(i), headers={"Nats-Msg-Id": p.msg_id})
            if pubs:
                await asyncio.wait_for(self._done.wait(), timeout)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        stored = duplicates = 0
        for ack in self._acks:
            if ack is None:
                error = error or "not acknowledged in time"
                break
            if b'"error"' in ack:
                error = ack.decode(errors="replace")
                break
            stored += 1
            duplicates += _DUPLICATE in ack and msgspec.json.decode(ack, type=_PubAck).duplicate
        return Outcome(stored, duplicates, error)
