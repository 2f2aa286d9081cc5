"""The batch loop: read what the pipe has, process whole lines, one write per batch, flush at once."""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path
from typing import Any, BinaryIO

from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.framing import Framer
from shellsieve.run.longline import LongLines
from shellsieve.events.auditd import load_passwd
from shellsieve.run.match import BlockMatcher
from shellsieve.run.route import Router
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

__all__ = ["run_filter"]


class _Terminate(Exception):
    """SIGTERM arrived while the loop was blocked reading."""


def _stats_extra(router: Router) -> dict[str, Any]:
    matcher = router.matcher
    states = matcher.sequences.values()
    return {
        "open_sequences": sum(len(s.open) for s in states),
        "sequence_evictions": sum(s.evicted for s in states),
        "regex_timeouts": matcher.rs.regex_confirm.timeouts,
        "audit_waiting": router.audit.waiting,
        "audit_timed_out": router.audit.timed_out,
        "audit_evicted": router.audit.evicted,
        "pid_table": len(router.pids),
        "pid_table_evictions": router.pids.evicted,
    }


def _reader(stdin: BinaryIO) -> tuple[Any, int | None]:
    """read(n) that returns what the pipe has, and the fd to wait on (None: never blocks, e.g. BytesIO).

    A real pipe is read with os.read on its fd: no hidden buffer, so select() tells the truth about
    whether input is waiting while an auditd event is held for its timeout."""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return getattr(stdin, "read1", stdin.read), None
    return (lambda n: os.read(fd, n)), fd


def run_filter(ruleset: Ruleset, settings: Settings, stdin: BinaryIO, stdout: BinaryIO, log: Any) -> Stats:
    """Filter `stdin` to `stdout` until end of input or SIGTERM; returns the final counters."""
    stats = Stats()
    framer = Framer(settings.max_line_bytes)
    long_lines = LongLines(ruleset)
    matcher = BlockMatcher(ruleset, stats, settings.only_alerts, settings.max_open_sequences)
    passwd = load_passwd(Path(settings.passwd)) if settings.passwd else None
    router = Router(matcher, stats, settings.input_format, settings.audit_timeout_s, settings.audit_max_open,
                    settings.pid_table_size, passwd)
    read, fd = _reader(stdin)
    write = stdout.write
    flush = stdout.flush
    state = {"reading": False, "stop": False}

    def on_term(signum: int, frame: Any) -> None:
        state["stop"] = True
        if state["reading"]:
            raise _Terminate  # interrupts the blocked read; no batch is half-processed here

    old = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
    next_stats = time.monotonic() + settings.stats_interval_s if settings.stats_interval_s > 0 else None
    try:
        while not state["stop"]:
            deadline = router.deadline()
            if deadline is not None and fd is not None:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                    late = router.tick(time.monotonic())  # held auditd events time out
                    if late:
                        write(late)
                        flush()
                    continue
            state["reading"] = True
            try:
                chunk = read(settings.read_bytes)
            except _Terminate:
                break
            finally:
                state["reading"] = False
            if not chunk:
                break
            out = []
            now = time.monotonic()
            for piece, scan in framer.feed(chunk):
                if scan:
                    out.append(router.process(piece, now))
                else:  # an over-long line, forwarded as it came, scanned in windows
                    stats.bytes_in += len(piece)
                    piece = long_lines.feed(piece)
                    if not settings.only_alerts:
                        out.append(router.passthrough(piece))
            new_long = framer.too_long - stats.malformed["line_too_long"]
            if new_long:  # over-long lines bypass the matcher: count them here
                stats.lines_in += new_long
                stats.lines_out += 0 if settings.only_alerts else new_long
                stats.malformed["line_too_long"] = framer.too_long
            data = b"".join(out)
            if data:
                write(data)
                flush()
            if next_stats is not None and time.monotonic() >= next_stats:
                log.info("stats", **stats.snapshot(_stats_extra(router)))
                next_stats = time.monotonic() + settings.stats_interval_s
        last = framer.finish()
        if last:
            # b"\n" alone ends an over-long line that was being passed through.
            write(router.passthrough(long_lines.feed(last)) if last == b"\n"
                  else router.process(last, time.monotonic()))
        write(router.finish())
        flush()
    except BrokenPipeError:
        log.warning("stdout_closed", detail="the reader went away; stopping")
        _silence_stdout()
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    log.info("stopped", reason="sigterm" if state["stop"] else "end_of_input",
             **stats.snapshot(_stats_extra(router)))
    return stats


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would raise again into a closed pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
