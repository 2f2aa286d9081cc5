"""The batch loop: read what the pipe has, process whole lines, one write per batch, flush at once."""

from __future__ import annotations

import os
import signal
import time
from typing import Any, BinaryIO

from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.framing import Framer
from shellsieve.run.match import BlockMatcher
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

__all__ = ["run_filter"]


class _Terminate(Exception):
    """SIGTERM arrived while the loop was blocked reading."""


def _stats_extra(matcher: BlockMatcher, framer: Framer) -> dict[str, Any]:
    states = matcher.sequences.values()
    return {
        "open_sequences": sum(len(s.open) for s in states),
        "sequence_evictions": sum(s.evicted for s in states),
        "regex_timeouts": matcher.rs.regex_confirm.timeouts,
    }


def run_filter(ruleset: Ruleset, settings: Settings, stdin: BinaryIO, stdout: BinaryIO, log: Any) -> Stats:
    """Filter `stdin` to `stdout` until end of input or SIGTERM; returns the final counters."""
    stats = Stats()
    framer = Framer(settings.max_line_bytes)
    matcher = BlockMatcher(ruleset, stats, settings.only_alerts, settings.max_open_sequences)
    read = getattr(stdin, "read1", stdin.read)
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
            for piece, scan in framer.feed(chunk):
                if scan:
                    out.append(matcher.process(piece))
                elif not settings.only_alerts:
                    out.append(piece)  # an over-long line, forwarded as it came
            new_long = framer.too_long - stats.malformed["line_too_long"]
            if new_long:  # over-long lines bypass the matcher: count them here
                stats.lines_in += new_long
                stats.lines_out += 0 if settings.only_alerts else new_long
                stats.malformed["line_too_long"] = framer.too_long
            if out:
                write(b"".join(out))
                flush()
            if next_stats is not None and time.monotonic() >= next_stats:
                log.info("stats", **stats.snapshot(_stats_extra(matcher, framer)))
                next_stats = time.monotonic() + settings.stats_interval_s
        last = framer.finish()
        if last:
            # b"\n" alone ends an over-long line that was being passed through.
            write(last if last == b"\n" else matcher.process(last))
            flush()
    except BrokenPipeError:
        log.warning("stdout_closed", detail="the reader went away; stopping")
        _silence_stdout()
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
    log.info("stopped", reason="sigterm" if state["stop"] else "end_of_input",
             **stats.snapshot(_stats_extra(matcher, framer)))
    return stats


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would raise again into a closed pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
