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
from collections.abc import Sequence
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


def _reader(stdin: BinaryIO) -> tuple[Any, int | None]:
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
    observe = metrics.batch_seconds.observe if metrics is not None else None
    stats = engine.stats
    stream = engine.stream()
    read, fd = _reader(stdin)
    output = Output(stdout, stats, settings.alert_docs == "split")
    write = output.write
    next_stats = time.monotonic() + settings.stats_interval_s if settings.stats_interval_s > 0 else None
    grace_end: float | None = None
    hangups = 0
    reason = "end_of_input"
    eof = False
    waits = [] if reloads is None else [reloads.wake_fd]
    with StopSignals(latch) as sig:
        if sig.wake_fd is not None:
            waits.append(sig.wake_fd)
        if metrics is not None:
            metrics.attach(engine)
        while not output.closed:
            if sig.hangups != hangups:
                if reloads is None:
                    log.warning("signal_ignored", signal="SIGHUP", count=sig.hangups,
                                detail="no rules to reload here; stop the filter with SIGTERM or end its input")
                else:
                    log.info("reload_requested", trigger="sighup", signals=sig.hangups - hangups,
                             state=reloads.request("sighup"))
                hangups = sig.hangups
            if reloads is not None and reloads.ready:
                reloads.apply(engine)  # between batches: the rules swap whole
            if sig.reason is not None:
                reason = sig.reason
                if grace_end is None:
                    grace_end = time.monotonic() + STOP_GRACE_S
                if not stream.partial or time.monotonic() >= grace_end:
                    break  # a line begun may still get its newline within the grace: read on till then
            if fd is not None:
                wait = _wait(engine.deadline(), grace_end)
                ready = select.select([fd, *waits], [], [], wait)[0]
                if sig.wake_fd in ready:
                    sig.drain()
                if fd not in ready:
                    write(engine.tick(time.monotonic()))  # held auditd events time out
                    continue
            chunk = read(settings.read_bytes)
            if not chunk:
                eof = True
                break
            began = time.monotonic()
            write(stream.feed(chunk, began))
            if observe is not None:
                observe(time.monotonic() - began)
            if progress is not None:
                progress.update(stats)
            if next_stats is not None and time.monotonic() >= next_stats:
                log.info("stats", **engine.snapshot())
                next_stats = time.monotonic() + settings.stats_interval_s
        if metrics is not None:
            metrics.stopping()
        # Everything read leaves (or, with stdout gone, is counted undelivered); no held event waits.
        write(stream.close(time.monotonic(), torn=not eof and reason != "end_of_input"))
        write(engine.finish())
        if progress is not None:
            progress.update(stats)
            progress.close()  # before `stopped`, so the log line is not drawn over
        # A signal and the end of input can come together (a supervisor signals, then closes the
        # pipe): the signal names the stop. The handlers stay until `stopped` is logged.
        reason = sig.reason or reason
        if output.closed:
            reason = "stdout_closed"
            stats.stdout_closed = True
            log.warning("stdout_closed", detail="the reader went away; stopping", error=output.error)
            _silence_stdout(stdout)
        stats.stop_reason = reason
        log.info("stopped", reason=reason, **engine.snapshot())
    return stats


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
