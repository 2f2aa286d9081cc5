"""The batch loop: read what the pipe has, process whole lines, one write per batch, flush at once.

It stops at the end of input, on SIGTERM or SIGINT (after the batch in hand, with a short grace for a
line begun to get its newline), or when the reader closes stdout; every stop writes out what was read
(auditd events held for their end record leave at once) and logs `stopped` with the reason. SIGHUP
asks `reloads` for new rules, compiled elsewhere; they are swapped in between two batches.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from shellsieve.compile.ruleset import Ruleset
from shellsieve.model.exceptions import RuleException
from shellsieve.run.engine import Engine
from shellsieve.run.output import Output
from shellsieve.run.signals import HangupLatch, StopSignals
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

if TYPE_CHECKING:  # prometheus-client is imported only with --metrics-addr, tqdm only for a bar
    from shellsieve.run.metrics import Metrics
    from shellsieve.run.progress import Progress

__all__ = ["run_filter", "Reloads", "EXIT_CODES", "STOP_GRACE_S"]


class Reloads(Protocol):
    """Hot reload as the loops see it (reload/reloader.py Reloader): ask, and apply between batches."""

    wake_fd: int  # readable once an outcome waits for `apply`

    @property
    def ready(self) -> bool: ...

    def request(self, trigger: str) -> str: ...

    def apply(self, engine: Engine) -> int: ...


def _reader(stdin: BinaryIO) -> tuple[Callable[[int], bytes], int | None]:
    """read(n) that returns what the pipe has, and the fd to wait on (None: never blocks, e.g. BytesIO).

    A real pipe is read with os.read on its fd: no hidden buffer, so select() tells the truth about
    whether input is waiting while an auditd event is held for its timeout."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return getattr(stdin, "read1", stdin.read), None
    return (lambda n: os.read(fd, n)), fd


# Exit codes by stop reason: the end of input and SIGTERM are a normal stop (systemd and Vector's exec
# source stop a child with SIGTERM); SIGINT is 128 + 2 as a shell reports a Ctrl-C; a reader that went
# away is 128 + SIGPIPE, the status any filter killed by SIGPIPE has: a failure, lines were not delivered.
EXIT_CODES = {"end_of_input": 0, "sigterm": 0, "sigint": 130, "stdout_closed": 141}

# After a stop signal, how long a line already begun may take to be completed by its newline.
STOP_GRACE_S = 1.0


def run_filter(ruleset: Ruleset, settings: Settings, stdin: BinaryIO, stdout: BinaryIO, log: Any,
               exceptions: Sequence[RuleException] = (), metrics: Metrics | None = None,
               progress: Progress | None = None, reloads: Reloads | None = None,
               latch: HangupLatch | None = None) -> Stats:
    """Filter `stdin` to `stdout` until end of input, a stop signal or a closed stdout; returns the
    final counters, with `stop_reason` (a key of EXIT_CODES). `exceptions`: the entries applied;
    `metrics`: scraped from the engine, ready while reading, one latency sample per batch;
    `progress`: a bar updated after each batch and closed at the stop; `reloads`: asked for new
    rules on SIGHUP (None: SIGHUP is logged and ignored); `latch`: SIGHUPs caught before the loop."""
    engine = Engine(ruleset, settings, exceptions=exceptions)
    loop = _Loop(engine, stdin, stdout, log, metrics, progress, reloads)
    with StopSignals(latch) as sig:
        if metrics is not None:
            metrics.attach(engine)
        loop.run(sig)
        if metrics is not None:
            metrics.stopping()
        loop.close(sig)  # the handlers stay until `stopped` is logged
    return engine.stats


class _Loop:
    """One run of the batch loop: the state kept between batches, and a method per job (signals,
    waiting for input, one batch, the stop)."""

    def __init__(self, engine: Engine, stdin: BinaryIO, stdout: BinaryIO, log: Any, metrics: Metrics | None,
                 progress: Progress | None, reloads: Reloads | None) -> None:
        settings = engine.settings
        self.engine, self.settings, self.log = engine, settings, log
        self.stdout, self.progress, self.reloads = stdout, progress, reloads
        self.observe = metrics.batch_seconds.observe if metrics is not None else None
        self.stream = engine.stream()
        self.read, self.fd = _reader(stdin)
        self.output = Output(stdout, engine.stats, settings.alert_docs == "split")
        interval = settings.stats_interval_s
        self.next_stats = time.monotonic() + interval if interval > 0 else None
        self.grace_end: float | None = None
        self.hangups = 0  # SIGHUPs handled so far
        self.reason = "end_of_input"
        self.eof = False

    def run(self, sig: StopSignals) -> None:
        """Batches until the end of input, a stop signal (and its grace) or a closed stdout."""
        waits = [] if self.reloads is None else [self.reloads.wake_fd]
        if sig.wake_fd is not None:
            waits.append(sig.wake_fd)
        while not self.output.closed:
            self._hangups(sig)
            if self.reloads is not None and self.reloads.ready:
                self.reloads.apply(self.engine)  # between batches: the rules swap whole
            if self._stop_due(sig):
                break
            if self.fd is not None and not self._input_ready(sig, waits):
                continue
            chunk = self.read(self.settings.read_bytes)
            if not chunk:
                self.eof = True
                break
            self._batch(chunk)

    def _hangups(self, sig: StopSignals) -> None:
        """New SIGHUPs ask for a reload (or are logged as ignored, with nothing to reload)."""
        if sig.hangups == self.hangups:
            return
        if self.reloads is None:
            self.log.warning("signal_ignored", signal="SIGHUP", count=sig.hangups,
                             detail="no rules to reload here; stop the filter with SIGTERM or end its input")
        else:
            self.log.info("reload_requested", trigger="sighup", signals=sig.hangups - self.hangups,
                          state=self.reloads.request("sighup"))
        self.hangups = sig.hangups

    def _stop_due(self, sig: StopSignals) -> bool:
        """After a stop signal: stop now, unless a line begun may still get its newline (the grace)."""
        if sig.reason is None:
            return False
        self.reason = sig.reason
        if self.grace_end is None:
            self.grace_end = time.monotonic() + STOP_GRACE_S
        return not self.stream.partial or time.monotonic() >= self.grace_end

    def _input_ready(self, sig: StopSignals, waits: list[int]) -> bool:
        """Wait for input, a signal or a reload outcome, at most until the next deadline; without
        input, held auditd events whose time is up leave."""
        assert self.fd is not None
        wait = _wait(self.engine.deadline(), self.grace_end)
        ready = select.select([self.fd, *waits], [], [], wait)[0]
        if sig.wake_fd in ready:
            sig.drain()
        if self.fd not in ready:
            self.output.write(self.engine.tick(time.monotonic()))
            return False
        return True

    def _batch(self, chunk: bytes) -> None:
        """One batch through the engine and out in one write; then the latency sample, the bar and,
        when due, the periodic `stats` event."""
        began = time.monotonic()
        out = self.stream.feed(chunk, began)
        self.output.write(out, self.stream.lines_out)
        if self.observe is not None:
            self.observe(time.monotonic() - began)
        if self.progress is not None:
            self.progress.update(self.engine.stats)
        if self.next_stats is not None and time.monotonic() >= self.next_stats:
            self.log.info("stats", **self.engine.snapshot())
            self.next_stats = time.monotonic() + self.settings.stats_interval_s

    def close(self, sig: StopSignals) -> None:
        """The stop: everything read leaves (or, with stdout gone, is counted undelivered), no held
        event waits; `stopped` is logged with the reason."""
        engine, stats, write = self.engine, self.engine.stats, self.output.write
        write(self.stream.close(time.monotonic(), torn=not self.eof and self.reason != "end_of_input"))
        write(engine.finish())
        if self.progress is not None:
            self.progress.update(stats)
            self.progress.close()  # before `stopped`, so the log line is not drawn over
        # A signal and the end of input can come together (a supervisor signals, then closes the
        # pipe): the signal names the stop.
        reason = sig.reason or self.reason
        if self.output.closed:
            reason = "stdout_closed"
            stats.stdout_closed = True
            self.log.warning("stdout_closed", detail="the reader went away; stopping", error=self.output.error)
            _silence_stdout(self.stdout)
        stats.stop_reason = reason
        self.log.info("stopped", reason=reason, **engine.snapshot())


def _wait(*deadlines: float | None) -> float | None:
    """Seconds until the nearest deadline (None: none, block)."""
    due = [d for d in deadlines if d is not None]
    return max(0.0, min(due) - time.monotonic()) if due else None


def _silence_stdout(stdout: BinaryIO) -> None:
    # Python flushes stdout at exit and would raise again into a closed pipe.
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
