"""`shellsieve serve`: listeners -> one engine -> a bounded buffer -> one output, in one event loop.

Start: every listener binds before `started` is logged (a port in use is an error at start, exit 1).
Run: the output task delivers batches; a timer lets held auditd events leave; `stats` is logged
periodically; SIGHUP asks for new rules, swapped in by the event loop between two feeds.
Stop (SIGTERM, SIGINT): the listeners stop taking input, what was read goes through the engine, the
buffer drains to the downstream for at most --drain-timeout seconds, requests whose
events were delivered are answered 200 (the others 503), and `stopped` reports events in and out
in total and per listener. Exit 0 when everything read was delivered, 1 when the drain timed out.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Sequence
from typing import Any

from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.envelope import parse_fields
from shellsieve.model.exceptions import RuleException
from shellsieve.run.doclines import doc_lines, event_lines
from shellsieve.run.engine import Engine
from shellsieve.run.loop import Reloads
from shellsieve.run.signals import HangupLatch
from shellsieve.serve.endpoints import Endpoint
from shellsieve.serve.listeners import HttpListener, StreamListener
from shellsieve.serve.outputs import Stopped, make_output
from shellsieve.serve.pipeline import Pipeline
from shellsieve.settings import ServeSettings, Settings

__all__ = ["serve", "listener_options"]


def listener_options(ep: Endpoint, settings: Settings) -> dict[str, Any]:
    """The router attributes a listener sets before each feed: its own host OS and envelope fields,
    else the server's."""
    env = ep.options.get("envelope")
    return {"host_os": ep.options.get("host_os", settings.host_os),
            "envelope_fields": parse_fields(env) if env is not None else settings.envelope_fields}


class _Server:
    def __init__(self, ruleset: Ruleset, settings: Settings, serve: ServeSettings, listen: list[Endpoint],
                 forward: Endpoint, log: Any, exceptions: Sequence[RuleException] = (),
                 metrics_sock: socket.socket | None = None, reloads: Reloads | None = None,
                 latch: HangupLatch | None = None) -> None:
        self.settings, self.serve, self.log = settings, serve, log
        self.reloads, self.latch = reloads, latch
        self.engine = Engine(ruleset, settings, exceptions=exceptions)
        self.pipeline = Pipeline(self.engine, serve.buffer_events)
        self.stopping = asyncio.Event()
        self.output = make_output(forward, serve.retry_max_s, serve.request_timeout_s, log, self._downstream)
        self.forward = forward
        self.listeners: list[Any] = []
        for ep in listen:
            opts = listener_options(ep, settings)
            if ep.scheme == "http":
                self.listeners.append(HttpListener(ep, self.pipeline, opts, serve.idle_timeout_s, log,
                                                   serve.max_body_bytes))
            elif ep.scheme == "forward":
                from shellsieve.serve.fluent_io import ForwardListener

                self.listeners.append(ForwardListener(ep, self.pipeline, opts, serve.idle_timeout_s, log))
            else:
                self.listeners.append(StreamListener(ep, self.pipeline, opts, serve.idle_timeout_s, log))
        self.reason = "sigterm"
        self.output_error: str | None = None
        self.metrics = None
        if metrics_sock is not None:  # prometheus-client is imported only with --metrics-addr
            from shellsieve.serve.metrics_http import MetricsSite

            self.metrics = MetricsSite(metrics_sock, self)

    def _downstream(self, up: bool) -> None:
        self.pipeline.downstream_up = up

    async def _deliver(self) -> None:
        """The output task: whole lines from the buffer to the downstream, in order."""
        p = self.pipeline
        while True:
            parts, tag = p.take(self.serve.batch_events)
            if not parts and tag == p.delivered:
                # nothing, or only the start of an over-long line: wait for more output
                await p.wait_change()
                continue
            data = b"".join(parts)
            refused, docs_refused = self.output.rejected, self.output.rejected_docs
            if data:
                try:
                    await self.output.send(data, self.stopping_hard)
                except Stopped:
                    return
                except OSError as exc:  # stdout closed: nothing more can be delivered
                    self.output_error = f"{type(exc).__name__}: {exc}"
                    self.log.error("output_failed", output=self.forward.name, error=self.output_error)
                    self.stopping.set()
                    return
            refused = self.output.rejected - refused
            self.engine.stats.rejected += refused
            docs = doc_lines(data) - (self.output.rejected_docs - docs_refused)
            p.done(tag, event_lines(data) - refused, docs)

    async def _tick(self) -> None:
        """Held auditd events leave when they time out; `stats` every --stats-interval."""
        interval = self.settings.stats_interval_s
        next_stats = time.monotonic() + interval if interval > 0 else None
        while True:
            now = time.monotonic()
            out = self.engine.tick(now)
            if out:
                self.pipeline.push(out)
            if next_stats is not None and now >= next_stats:
                self.log.info("stats", **self._snapshot())
                next_stats = now + interval
            due = self.engine.deadline()
            wait = 0.5 if due is None else min(0.5, max(0.01, due - now))
            await asyncio.sleep(wait)

    def _snapshot(self) -> dict[str, Any]:
        snap = self.engine.snapshot()
        snap["events_rejected"] = self.output.rejected
        snap["buffered"] = self.pipeline.pending
        snap["downstream_up"] = self.pipeline.downstream_up
        snap["listeners"] = {ls.ep.name: ls.stats.snapshot() for ls in self.listeners}
        return snap

    async def run(self) -> int:
        self._install_handlers(asyncio.get_running_loop())
        self.stopping_hard = asyncio.Event()  # the drain gave up: outputs stop retrying
        if not await self._listen():
            return 1
        if self.metrics is not None:
            await self.metrics.start()
        self.log.info("listening", listen=[ls.ep.name for ls in self.listeners], forward=self.forward.name,
                      buffer_events=self.serve.buffer_events)
        deliver = asyncio.create_task(self._deliver())
        tick = asyncio.create_task(self._tick())
        await self.stopping.wait()
        return await self._stop(deliver, tick)

    def _install_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop signals, SIGHUP and the reload outcomes, handled on the event loop."""
        for sig, name in ((signal.SIGTERM, "sigterm"), (signal.SIGINT, "sigint")):
            loop.add_signal_handler(sig, self._on_stop, name)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        if self.reloads is not None:
            # the event loop runs one feed at a time: a swap from this callback falls between two
            reloads = self.reloads
            loop.add_reader(reloads.wake_fd, reloads.apply, self.engine)
        if self.latch is not None and self.latch.count:  # SIGHUP while the first rules compiled
            self._on_hangup(self.latch.count)

    async def _listen(self) -> bool:
        """Every listener bound and accepting; False (and all closed) if one cannot listen."""
        for ls in self.listeners:
            try:
                await ls.start()
            except OSError as exc:
                self.log.error("startup_failed", reason="cannot listen", listen=ls.ep.name, error=str(exc))
                for other in self.listeners:
                    await other.close()
                return False
        return True

    async def _stop(self, deliver: asyncio.Task[None], tick: asyncio.Task[None]) -> int:
        """The stop: no new input, what was read goes through, the buffer drains; `stopped` is logged.
        The exit code: 0 when everything was delivered."""
        if self.metrics is not None:
            self.metrics.state.stopping()
        # Stop taking input; what was read goes through; held events leave; the buffer drains.
        self.pipeline.accepting = False
        self.pipeline.wake()
        for ls in self.listeners:
            await ls.stop_accepting()
        await asyncio.sleep(0)  # let connection tasks feed their last bytes
        tick.cancel()
        self.pipeline.push(self.engine.finish())
        drained = await self._drain(deliver)
        self.pipeline.stop_waiting = True
        self.pipeline.wake()
        for ls in self.listeners:
            await ls.close()
        await self.output.close()
        if self.metrics is not None:
            await self.metrics.close()
        if self.output_error is not None:
            self.reason = "output_failed"
        self.engine.stats.stop_reason = self.reason
        snap = self._snapshot()
        self.log.info("stopped", reason=self.reason, drained=drained, **snap)
        return 0 if drained and self.output_error is None else 1

    async def _drain(self, deliver: asyncio.Task[None]) -> bool:
        deadline = time.monotonic() + self.serve.drain_timeout_s
        while time.monotonic() < deadline and not deliver.done():
            # connections closing feed their last lines: wait until the engine has nothing in flight
            if self.pipeline.pending == 0 and not any(getattr(ls.stats, "connections", 0) for ls in self.listeners):
                break
            await asyncio.sleep(0.01)
        drained = self.pipeline.pending == 0
        self.stopping_hard.set()
        deliver.cancel()
        try:
            await deliver
        except (asyncio.CancelledError, Stopped):
            pass
        if not drained:
            self.log.error("drain_timeout", undelivered=self.pipeline.pending, seconds=self.serve.drain_timeout_s)
        return drained

    def _on_hangup(self, signals: int = 1) -> None:
        if self.reloads is None:
            self.log.warning("signal_ignored", signal="SIGHUP", detail="no rules to reload here; stop serve "
                             "with SIGTERM")
            return
        self.log.info("reload_requested", trigger="sighup", signals=signals, state=self.reloads.request("sighup"))

    def _on_stop(self, name: str) -> None:
        if not self.stopping.is_set():
            self.reason = name
            self.log.info("stopping", signal=name.upper())
            self.stopping.set()


def serve(ruleset: Ruleset, settings: Settings, serve_settings: ServeSettings, listen: list[Endpoint],
          forward: Endpoint, log: Any, exceptions: Sequence[RuleException] = (),
          metrics_sock: socket.socket | None = None, reloads: Reloads | None = None,
          latch: HangupLatch | None = None) -> int:
    """Run until SIGTERM or SIGINT; the exit status. `exceptions`: the entries applied; `metrics_sock`:
    a bound socket on which to serve /metrics, /healthz and /readyz; `reloads`: asked for new rules on
    SIGHUP; `latch`: SIGHUPs caught before serve's own handler was in (one reload follows)."""
    server = _Server(ruleset, settings, serve_settings, listen, forward, log, exceptions, metrics_sock,
                     reloads, latch)
    return asyncio.run(server.run())
