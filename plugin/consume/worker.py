"""The worker loop: fetch a batch, feed it in order, publish the output, then ack.

Per batch: the fetched messages are fed to one engine stream in stream order, as one block when each
output line can be told to be its input line's (one event per message; a payload of several NDJSON
lines works too); the output is published in order with message ids
(publishes.py); the inputs whose lines were all released are acked in order only once JetStream
acknowledged every publish made so far. A publish that fails (the output stream is full, the server
is gone) is retried from the first one not acknowledged, with backoff, while the inputs are kept
alive with in-progress acks; nothing more is fetched meanwhile. A crash at any point leaves the
unacked inputs to be redelivered, and their republished output is dropped by the duplicate window.

Undecodable payload bytes go through the engine like any line: forwarded as a malformed event,
published, acked: a poison message is never redelivered forever.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from shellsieve.compile.ruleset import Ruleset
from shellsieve.consume.options import ConsumeOptions
from shellsieve.consume.payload import lines_of
from shellsieve.consume.publishes import Labeller, Publish
from shellsieve.consume.pull import Puller, delivery
from shellsieve.consume.push import Pusher
from shellsieve.consume.setup import SetupError, partitions_now, prepare
from shellsieve.model.exceptions import RuleException
from shellsieve.run.engine import Engine
from shellsieve.run.signals import HangupLatch
from shellsieve.settings import Settings

if TYPE_CHECKING:
    from shellsieve.run.loop import Reloads
    from shellsieve.run.metrics import Metrics

__all__ = ["EXIT_CODES", "consume"]

EXIT_CODES = {"sigterm": 0, "sigint": 130, "partitions_changed": 2, "setup_failed": 2}
FETCH_WAIT_S = 1.0  # the longest a fetch waits for input: a stop or an auditd timeout is seen within it
PUBLISH_TIMEOUT_S = 5.0  # how long JetStream may take to acknowledge a batch of publishes
BACKOFF_MAX_S = 5.0
DRAIN_S = 10.0  # after a stop signal, how long a batch that cannot be published may keep trying
_AUDIT = b"audit("  # in every auditd record (`msg=audit(...)`), bare or in an envelope: they can be held
CHECK_EVERY_S = 5.0  # how often the stream's partition count is read again (one small request)


class _Counters:
    """The consume-side counters of `stats` and `stopped` (the engine's own are in Stats)."""

    def __init__(self) -> None:
        self.messages_in = 0
        self.messages_acked = 0
        self.redelivered = 0  # messages fetched that had been delivered before
        self.publishes = 0  # publishes JetStream acknowledged (events, documents and alert copies)
        self.duplicates = 0  # of those, dropped by the duplicate window (a redelivery's republish)
        self.alerts_published = 0  # alert copies to the alerts subject
        self.publish_failures = 0  # attempts that did not go through, each retried

    def snapshot(self) -> dict[str, int]:
        return dict(vars(self))


class _Worker:
    def __init__(self, opts: ConsumeOptions, engine: Engine, js: JetStreamContext, pusher: Pusher, log: Any,
                 ack_all: bool) -> None:
        self.opts, self.engine, self.js, self.pusher, self.log = opts, engine, js, pusher, log
        self.ack_all = ack_all  # AckAll consumer: one ack, of the last input done, covers those before it
        self.stream = engine.stream()
        self.labeller = Labeller(opts.stream, opts.output_subject, opts.alerts_subject)
        self.unacked: deque[tuple[Msg, int]] = deque()  # (input, engine line count after it)
        self.counters = _Counters()
        self.reason: str | None = None
        self.stop_at = 0.0
        # a batch goes to the engine as one block while every input line gives one output line
        # (no alert documents, nothing dropped): each output line is then known to be its input's
        self.blocks = not engine.settings.only_alerts and engine.settings.alert_docs != "split"

    def stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason, self.stop_at = reason, time.monotonic()
            self.log.info("stopping", reason=reason)

    def snapshot(self) -> dict[str, Any]:
        return {**self.engine.snapshot(), **self.counters.snapshot(), "unacked": len(self.unacked)}

    def feed(self, msgs: Sequence[Msg]) -> list[Publish]:
        engine, labeller, counters = self.engine, self.labeller, self.counters
        now = time.monotonic()
        pubs: list[Publish] = []
        payloads = [lines_of(msg.data) for msg in msgs]
        if len(msgs) > 1 and self.blocks and engine.released == engine.stats.lines_in:
            block = b"".join(payloads)
            if _AUDIT not in block:
                return self._feed_block(msgs, payloads, block, now)
        for msg, payload in zip(msgs, payloads, strict=True):
            delivered, seq = delivery(msg.reply)
            counters.messages_in += 1
            counters.redelivered += delivered > 1
            labeller.fed(seq)
            pubs += labeller.label(self.stream.feed(payload, now))
            self.unacked.append((msg, engine.stats.lines_in))
        return pubs + self._tick(now)

    def _feed_block(self, msgs: Sequence[Msg], payloads: list[bytes], block: bytes, now: float) -> list[Publish]:
        """The batch as one feed: one scan of the block, as `run` does, instead of one per message
        (2.9 against 9.8 us/event of engine CPU). Its output is labelled line by line with the
        messages' ids, so a redelivery gets the same ids whichever way it is fed."""
        engine, counters = self.engine, self.counters
        seqs, counts = [], []
        lines = engine.stats.lines_in
        for msg, payload in zip(msgs, payloads, strict=True):
            delivered, seq = delivery(msg.reply)
            counters.messages_in += 1
            counters.redelivered += delivered > 1
            seqs.append(seq)
            counts.append(payload.count(b"\n"))
            lines += counts[-1]
            self.unacked.append((msg, lines))
        out = self.stream.feed(block, now)
        pubs = self.labeller.label_block(out, seqs, counts) if engine.released == lines else None
        if pubs is None:  # not one line out per line in: labelled as one message, and no block again
            self.blocks = False
            self.log.warning("block_not_attributable", first=seqs[0], last=seqs[-1],
                             detail="output labelled with the batch's last message; batches are fed "
                                    "message by message from now on")
            self.labeller.fed(seqs[-1])
            pubs = self.labeller.label(out)
        return pubs + self._tick(now)

    def _tick(self, now: float) -> list[Publish]:
        deadline = self.engine.deadline()
        if deadline is not None and deadline <= now:  # held auditd events whose end never came
            return self.labeller.label(self.engine.tick(now))
        return []

    async def publish(self, pubs: list[Publish]) -> bool:
        """Publish all, in order; retried until JetStream acknowledged each. False: given up (a stop
        signal and the drain time passed): nothing more is acked."""
        done, delay = 0, 0.1
        while done < len(pubs):
            if self.reason is not None and time.monotonic() - self.stop_at > DRAIN_S:
                return False
            outcome = await self.pusher.publish(pubs[done:], PUBLISH_TIMEOUT_S)
            self._count(pubs[done:done + outcome.stored], outcome.duplicates)
            done += outcome.stored
            if done == len(pubs):
                break
            self.counters.publish_failures += 1
            self.log.warning("publish_failed", published=done, waiting=len(pubs) - done, error=outcome.error,
                             retry_in_s=round(delay, 2))
            for msg, _ in self.unacked:  # keep them ours while we wait: no redelivery meanwhile
                try:
                    await msg.in_progress()
                except nats.errors.Error:
                    break
            await asyncio.sleep(delay)
            # in-progress acks go out every wait: well within the consumer's ack wait
            delay = min(delay * 2, BACKOFF_MAX_S, self.opts.ack_wait_s / 3)
        return True

    def _count(self, pubs: list[Publish], duplicates: int) -> None:
        stats, counters = self.engine.stats, self.counters
        for p in pubs:
            if p.copy:
                counters.alerts_published += 1
            elif p.doc:
                stats.alert_docs_out += 1
            else:
                stats.lines_delivered += 1
        counters.publishes += len(pubs)
        counters.duplicates += duplicates

    async def ack(self) -> None:
        """Ack, in order, every input whose lines have all left the engine (and were published)."""
        released = self.engine.released
        last = None
        while self.unacked and self.unacked[0][1] <= released:
            last, _ = self.unacked.popleft()
            self.counters.messages_acked += 1
            if not self.ack_all:
                await last.ack()
        if last is not None and self.ack_all:
            await last.ack()


async def consume(opts: ConsumeOptions, ruleset: Ruleset, settings: Settings, log: Any,
                  exceptions: Sequence[RuleException], metrics: Metrics | None, reloads: Reloads,
                  latch: HangupLatch) -> int:
    """Run the worker until a stop signal; the exit status (EXIT_CODES). `reloads`: asked for new
    rules on SIGHUP (counted by `latch`), applied between batches."""
    engine = Engine(ruleset, settings, exceptions=exceptions)
    loop = asyncio.get_running_loop()
    reason: list[str] = []

    def on_signal(name: str) -> None:
        reason.append(name)
        if worker is not None:
            worker.stop(name)

    worker: _Worker | None = None
    for sig, name in ((signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")):
        loop.add_signal_handler(sig, on_signal, name)
    nc = await _connect(opts, log, reason, metrics)
    if nc is None:
        log.info("stopped", reason=reason[0], **engine.snapshot())
        return EXIT_CODES[reason[0]]
    try:
        js = nc.jetstream()
        ack_all = await _prepared(js, opts, log)
        if ack_all is None:
            return 2
        puller, pusher = Puller(nc, opts.stream, opts.consumer), Pusher(nc)
        await puller.start()
        await pusher.start()
        worker = _Worker(opts, engine, js, pusher, log, ack_all)
        if reason:
            worker.stop(reason[0])
        if metrics is not None:
            metrics.attach(engine)
        log.info("consuming", stream=opts.stream, consumer=opts.consumer, subject=opts.subject,
                 partition=opts.partition, partitions=opts.partitions, output_subject=opts.output_subject,
                 alerts_subject=opts.alerts_subject or None)
        await _loop(worker, puller, engine, settings, log, reloads, latch)
        if metrics is not None:
            metrics.stopping()
        await _drain(worker, engine, nc, log)
        final = worker.reason or "sigterm"
        reason.append(final)  # the close that follows is ours: not logged as a disconnection
        log.info("stopped", reason=final, **worker.snapshot())
        return EXIT_CODES[final]
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if not reason:
            reason.append("setup_failed")  # the close below is ours: not logged as a disconnection
        if not nc.is_closed:
            try:
                await nc.close()
            except nats.errors.Error:
                pass


async def _prepared(js: Any, opts: ConsumeOptions, log: Any) -> bool | None:
    """The streams and the consumer checked (or made, --create): whether the consumer acks all; None
    after logging why the start failed."""
    try:
        return await prepare(js, opts, log)
    except SetupError as exc:
        log.error("startup_failed", reason=str(exc), option=exc.option, **exc.fields)
    except (TimeoutError, nats.errors.Error) as exc:  # e.g. a server without JetStream
        log.error("startup_failed", reason=f"JetStream did not answer: {type(exc).__name__}: {exc}",
                  option="--nats-url", url=opts.url)
    return None


async def _drain(worker: _Worker, engine: Engine, nc: Any, log: Any) -> None:
    """Nothing more comes: what the engine holds leaves, and the inputs behind it are acked."""
    tail = worker.labeller.label(worker.stream.close(time.monotonic()) + engine.finish())
    if await worker.publish(tail):
        await worker.ack()
    try:
        await nc.flush(timeout=2)  # the acks leave before the connection closes
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("acks_not_flushed", error=f"{type(exc).__name__}: {exc}",
                    detail="the inputs not acked come again to the next worker; their output is not "
                           "published twice within the duplicate window")


async def _loop(worker: _Worker, puller: Puller, engine: Engine, settings: Settings,
                log: Any, reloads: Reloads, latch: HangupLatch) -> None:
    opts = worker.opts
    interval = settings.stats_interval_s
    next_stats = time.monotonic() + interval if interval > 0 else None
    next_check = time.monotonic() + CHECK_EVERY_S
    hangups = latch.count
    await _await_redelivery(worker, log)
    while worker.reason is None:
        if latch.count != hangups:  # SIGHUP: new rules are compiled aside, swapped in between batches
            log.info("reload_requested", trigger="sighup", signals=latch.count - hangups,
                     state=reloads.request("sighup"))
            hangups = latch.count
        if reloads.ready:
            reloads.apply(engine)
        try:
            msgs = await puller.fetch(opts.batch, FETCH_WAIT_S)
        except nats.errors.Error as exc:  # the connection is down: the client reconnects meanwhile
            log.warning("fetch_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)
            msgs = []
        pubs = worker.feed(msgs)
        if not await worker.publish(pubs):
            break  # stopping and still unable to publish: the unacked inputs will be redelivered
        await worker.ack()
        now = time.monotonic()
        if next_stats is not None and now >= next_stats:
            log.info("stats", **worker.snapshot())
            next_stats = now + interval
        if opts.partitions is not None and now >= next_check:
            next_check = now + CHECK_EVERY_S
            found = await partitions_now(worker.js, opts.stream)
            if found is not None and found != opts.partitions:
                log.error("partitions_changed", option="--partitions", partitions=opts.partitions, stream=opts.stream,
                          stream_partitions=found,
                          detail="the stream maps its subjects to another partition count: restart every "
                                 "worker with the new --partitions")
                worker.stop("partitions_changed")


async def _await_redelivery(worker: _Worker, log: Any) -> None:
    """Inputs a previous worker fetched and never acked come back only after the consumer's ack wait,
    and JetStream would hand out newer ones first meanwhile: wait for them, so that the partition's
    order holds across a crash (redeliveries are served before new messages)."""
    try:
        info = await worker.js.consumer_info(worker.opts.stream, worker.opts.consumer)
    except (TimeoutError, nats.errors.Error):
        return  # the server went away again: the redeliveries come when it is back
    if not info.num_ack_pending:
        return
    wait = float(info.config.ack_wait or 30.0) + 0.5
    log.info("awaiting_redelivery", unacked=info.num_ack_pending, wait_s=wait,
             detail="inputs a stopped worker did not ack come back after the consumer's ack wait")
    deadline = time.monotonic() + wait
    while worker.reason is None and time.monotonic() < deadline:
        await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


async def _connect(opts: ConsumeOptions, log: Any, reason: list[str], metrics: Metrics | None) -> Client | None:
    """A connection, retried with backoff while the server is not there (None: stopped meanwhile)."""
    delay = 0.2

    async def disconnected() -> None:
        if reason:  # our own close at the stop
            return
        log.warning("nats_disconnected", url=opts.url)
        if metrics is not None:
            metrics.ready = False

    async def reconnected() -> None:
        log.info("nats_reconnected", url=opts.url)
        if metrics is not None:
            metrics.ready = True

    async def error(exc: Exception) -> None:
        log.debug("nats_error", error=f"{type(exc).__name__}: {exc}")

    parts = urlsplit(opts.url)
    while not reason:
        try:
            # the client retries an unreachable server forever inside connect() when reconnects are
            # unlimited, and says nothing: a plain TCP connection first tells us, and we log it
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 4222), 2)
            writer.close()
            return await nats.connect(opts.url, connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=1,
                                      disconnected_cb=disconnected, reconnected_cb=reconnected, error_cb=error,
                                      name=f"shellsieve {opts.consumer}")
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            log.warning("nats_unreachable", url=opts.url, error=f"{type(exc).__name__}: {exc}",
                        retry_in_s=round(delay, 2))
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
    return None
