"""The batch loop: read what the pipe has, process whole lines, one write per batch, flush at once.

It stops at the end of input, on SIGTERM or SIGINT (after the batch in hand, with a short grace for a
line begun to get its newline), or when the reader closes stdout; every stop writes out what was read
(auditd events held for their end record leave at once) and logs `stopped` with the reason.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from shellsieve.compile.ruleset import Ruleset
from shellsieve.run.framing import Framer
from shellsieve.run.longline import LongLines
from shellsieve.events.auditd import load_passwd
from shellsieve.run.enrich import message_line
from shellsieve.run.match import BlockMatcher
from shellsieve.run.output import Output
from shellsieve.run.route import Router
from shellsieve.run.signals import StopSignals
from shellsieve.run.stats import Stats
from shellsieve.settings import Settings

__all__ = ["run_filter", "EXIT_CODES", "STOP_GRACE_S"]


def _stats_extra(router: Router, long_lines: LongLines) -> dict[str, Any]:
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
        "rescanned_blocks": matcher.rescanned_blocks,  # raw scans past their callback bound
        "long_line_candidates": long_lines.with_candidates,  # over-long lines where an anchor occurred
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


# Exit codes by stop reason: the end of input and SIGTERM are a normal stop (systemd and Vector's exec
# source stop a child with SIGTERM); SIGINT is 128 + 2 as a shell reports a Ctrl-C; a reader that went
# away is 128 + SIGPIPE, the status any filter killed by SIGPIPE has: a failure, lines were not delivered.
EXIT_CODES = {"end_of_input": 0, "sigterm": 0, "sigint": 130, "stdout_closed": 141}

# After a stop signal, how long a line already begun may take to be completed by its newline.
STOP_GRACE_S = 1.0

_BOM = b"\xef\xbb\xbf"


def run_filter(ruleset: Ruleset, settings: Settings, stdin: BinaryIO, stdout: BinaryIO, log: Any) -> Stats:
    """Filter `stdin` to `stdout` until end of input, a stop signal or a closed stdout; returns the
    final counters, with `stop_reason` (a key of EXIT_CODES)."""
    stats = Stats()
    framer = Framer(settings.max_line_bytes)
    long_lines = LongLines(ruleset)
    matcher = BlockMatcher(ruleset, stats, settings.only_alerts, settings.max_open_sequences)
    passwd = load_passwd(Path(settings.passwd)) if settings.passwd else None
    router = Router(matcher, stats, settings.input_format, settings.audit_timeout_s, settings.audit_max_open,
                    settings.pid_table_size, passwd, settings.envelope_fields, settings.host_os)
    read, fd = _reader(stdin)
    output = Output(stdout, stats)
    write = output.write
    next_stats = time.monotonic() + settings.stats_interval_s if settings.stats_interval_s > 0 else None
    partial = False  # the bytes read so far end inside a line
    grace_end: float | None = None
    hangups = 0
    reason = "end_of_input"
    eof = False
    with StopSignals() as sig:
        while not output.closed:
            if sig.hangups != hangups:
                hangups = sig.hangups
                log.warning("signal_ignored", signal="SIGHUP", count=hangups,
                            detail="a filter has nothing to reload; stop it with SIGTERM or end its input")
            if sig.reason is not None:
                reason = sig.reason
                if grace_end is None:
                    grace_end = time.monotonic() + STOP_GRACE_S
                if not partial or time.monotonic() >= grace_end:
                    break  # a line begun may still get its newline within the grace: read on till then
            if fd is not None:
                wait = _wait(router.deadline(), grace_end)
                ready = select.select([fd] if sig.wake_fd is None else [fd, sig.wake_fd], [], [], wait)[0]
                if sig.wake_fd in ready:
                    sig.drain()
                if fd not in ready:
                    write(router.tick(time.monotonic()))  # held auditd events time out
                    continue
            chunk = read(settings.read_bytes)
            if not chunk:
                eof = True
                break
            partial = chunk[-1:] != b"\n"
            out = []
            now = time.monotonic()
            for piece, scan in framer.feed(chunk):
                if scan:
                    if b"\xef" in piece and _BOM in piece:  # one memchr: most blocks hold no 0xEF byte
                        piece = _strip_bom(piece, stats)
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
                stats.dropped += new_long if settings.only_alerts else 0
                stats.malformed["line_too_long"] = framer.too_long
            write(b"".join(out))
            if next_stats is not None and time.monotonic() >= next_stats:
                log.info("stats", **stats.snapshot(_stats_extra(router, long_lines)))
                next_stats = time.monotonic() + settings.stats_interval_s
        # Everything read leaves (or, with stdout gone, is counted undelivered); no held event waits.
        last = framer.finish()
        if last == b"\n":  # it ends an over-long line that was being passed through
            stats.unterminated_last_line += partial
            write(router.passthrough(long_lines.feed(last)))
        elif last:
            stats.unterminated_last_line += 1
            write(_last_line(last, not eof and reason != "end_of_input", router, stats, settings.only_alerts))
        write(router.finish())
        # A signal and the end of input can come together (a supervisor signals, then closes the
        # pipe): the signal names the stop. The handlers stay until `stopped` is logged.
        reason = sig.reason or reason
        if output.closed:
            reason = "stdout_closed"
            stats.stdout_closed = True
            log.warning("stdout_closed", detail="the reader went away; stopping", error=output.error)
            _silence_stdout(stdout)
        stats.stop_reason = reason
        log.info("stopped", reason=reason, **stats.snapshot(_stats_extra(router, long_lines)))
    return stats


def _wait(*deadlines: float | None) -> float | None:
    """Seconds until the nearest deadline (None: none, block)."""
    due = [d for d in deadlines if d is not None]
    return max(0.0, min(due) - time.monotonic()) if due else None


def _strip_bom(block: bytes, stats: Stats) -> bytes:
    """A UTF-8 byte order mark opening a line (a file's first bytes, or files concatenated) is an
    encoding mark, not content: removed so the line is detected and decoded as what follows it.
    One inside a line is content and stays."""
    n = block.count(b"\n" + _BOM) + block.startswith(_BOM)
    if not n:
        return block
    stats.bom_stripped += n
    stats.bytes_in += n * len(_BOM)  # the matcher counts the bytes it sees; these were read too
    if block.startswith(_BOM):
        block = block[len(_BOM):]
    return block.replace(b"\n" + _BOM, b"\n")


def _last_line(line: bytes, stopped: bool, router: Router, stats: Stats, only_alerts: bool) -> bytes:
    """The last line, given its newline. At the end of input it is a line like any other. At a stop
    signal it may be torn (its writer was cut off too): a whole JSON object is still a whole event,
    anything else is forwarded as `{"message": ...}` under its own malformed reason, `partial_line`."""
    if line.startswith(_BOM):
        line = _strip_bom(line, stats)
    if not stopped or _is_object(line):
        out = router.process(line, time.monotonic())
        stats.bytes_in -= 1  # the newline was ours, not read
        return out
    stats.lines_in += 1
    stats.bytes_in += len(line) - 1
    stats.malformed["partial_line"] += 1
    if only_alerts:
        stats.dropped += 1
        return b""
    stats.lines_out += 1
    return router.passthrough(message_line(line[:-1]))


_raw = msgspec.json.Decoder(msgspec.Raw)


def _is_object(line: bytes) -> bool:
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        # Raw: a syntax check that converts no value, so 1e400 is whole JSON (a decode raised on it)
        _raw.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False
    return True


def _silence_stdout(stdout: BinaryIO) -> None:
    # Python flushes stdout at exit and would raise again into a closed pipe.
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
