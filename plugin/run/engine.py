"""The engine core, free of I/O: bytes and a clock in, bytes out.

One `Engine` holds what every input shares: the compiled rules, the matcher with its sequence state,
the router with its auditd assembly and pid table, and the counters. Each input stream (stdin, an
HTTP body, a TCP connection) gets its own `Stream`: its framing (a line cut across reads) and an
over-long line's window scan are per stream, so two connections never join each other's bytes.

Output leaves in input order across all streams: the router's queue holds an auditd event's lines
(and every line behind them) until the event is complete. `released` counts the input lines whose
output has left the engine (written or, under --only-alerts, dropped); it only grows, so a driver
that must acknowledge a request (an HTTP 200, a forward `ack`) waits until the output carrying
`released >= its last line` has been delivered.

`run` (run/loop.py) and `serve` (serve/) are thin loops around this object; no protocol copies
any of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from shellsieve.compile.ruleset import Ruleset
from shellsieve.events.auditd import load_passwd
from shellsieve.model.exceptions import RuleException
from shellsieve.run.enrich import Gate, message_line
from shellsieve.run.exceptions import Exceptions
from shellsieve.run.framing import Framer
from shellsieve.run.longline import LongLines
from shellsieve.run.match import BlockMatcher
from shellsieve.run.meta import Correlations
from shellsieve.run.route import Router
from shellsieve.run.stats import Stats
from shellsieve.run.suppress import Suppression, unknown_fields
from shellsieve.settings import Settings

__all__ = ["Engine", "Stream"]

_BOM = b"\xef\xbb\xbf"


class Engine:
    def __init__(self, ruleset: Ruleset, settings: Settings, stats: Stats | None = None,
                 gates: Sequence[Gate] = (), exceptions: Sequence[RuleException] = ()) -> None:
        self.settings = settings
        self.ruleset = ruleset
        self.compile_seconds = ruleset.compile_seconds  # what the running rules took to load and compile
        self.stats = stats or Stats()
        self.suppression = _suppression(ruleset, settings, self.stats)
        self.exceptions = _exceptions(ruleset, exceptions, self.stats)
        self.correlations = _correlations(ruleset, settings)
        self._gates = tuple(gates)
        self.matcher = self._matcher(ruleset)
        passwd = load_passwd(Path(settings.passwd)) if settings.passwd else None
        self.router = Router(self.matcher, self.stats, settings.input_format, settings.audit_timeout_s,
                             settings.audit_max_open, settings.pid_table_size, passwd, settings.envelope_fields,
                             settings.host_os)
        self.long_line_candidates = 0  # over-long lines where an anchor occurred, over all streams
        # counters of rule sets swapped out, so that no counter goes back at a reload
        self._retired_evictions = 0
        self._retired_timeouts = 0
        self._retired_correlation_evictions = 0

    def _matcher(self, ruleset: Ruleset) -> BlockMatcher:
        settings = self.settings
        # The order is explicit: exceptions first, then correlations (fed what is not excepted),
        # the gates given, suppression last, so an excepted hit never opens or extends a
        # suppression window.
        gates: tuple[Gate, ...] = (*([self.exceptions] if self.exceptions is not None else []),
                                   *([self.correlations] if self.correlations is not None else []), *self._gates,
                                   *([self.suppression] if self.suppression is not None else []))
        return BlockMatcher(ruleset, self.stats, settings.only_alerts, settings.max_open_sequences,
                            gates=gates, alert_docs=settings.alert_docs == "split")

    def swap(self, ruleset: Ruleset, exceptions: Sequence[RuleException] = (),
             compile_seconds: float | None = None) -> dict[str, int]:
        """Run `ruleset` (and these exceptions) from the next input on; call it between feeds, never
        inside one. A rule whose id and query are unchanged keeps its state: open sequences and
        suppression windows. Lines held for an auditd event's end go through the new rules.
        Returns what changed: rules added, removed, changed, kept, and sequences carried over."""
        old = self.matcher
        before = {cr.rule.id: cr for cr in old.rs.rules}
        same: dict[int, int] = {}  # new rule index -> old rule index
        for cr in ruleset.rules:
            prev = before.get(cr.rule.id)
            if prev is not None and prev.rule.query == cr.rule.query:
                same[cr.index] = prev.index
        self.exceptions = _exceptions(ruleset, exceptions, self.stats)
        old_correlations, self.correlations = self.correlations, _correlations(ruleset, self.settings)
        correlations_kept = 0
        if old_correlations is not None:
            if self.correlations is not None:
                correlations_kept = self.correlations.adopt(old_correlations)
            kept_states = self.correlations.states if self.correlations is not None else []
            self._retired_correlation_evictions += sum(st.evicted for st in old_correlations.states
                                                       if not any(st is k for k in kept_states))
        matcher = self._matcher(ruleset)
        carried = matcher.adopt(old, same)
        self._retired_evictions += sum(st.evicted for i, st in old.sequences.items() if i not in carried)
        self._retired_timeouts += old.rs.regex_confirm.timeouts
        if self.suppression is not None:
            self.suppression.retain({ruleset.rules[i].rule.id for i in same})
        self.matcher, self.ruleset = matcher, ruleset
        self.compile_seconds = ruleset.compile_seconds if compile_seconds is None else compile_seconds
        self.router.use(matcher)
        ids = {cr.rule.id for cr in ruleset.rules}
        return {"rules": len(ruleset.rules), "added": len(ids - before.keys()),
                "removed": len(before.keys() - ids), "changed": len(ids & before.keys()) - len(same),
                "unchanged": len(same), "sequences_kept": sum(len(st.open) for st in carried.values()),
                "correlation_groups_kept": correlations_kept}

    def sequence_counts(self) -> tuple[int, int]:
        """(sequences open now, sequences evicted since the start)."""
        states = list(self.matcher.sequences.values())
        return sum(len(s.open) for s in states), self._retired_evictions + sum(s.evicted for s in states)

    def stream(self) -> Stream:
        """A new input stream (its own framing) feeding this engine."""
        return Stream(self)

    @property
    def released(self) -> int:
        """Input lines whose output has left the engine, in input order."""
        return self.router.released

    def tick(self, now: float) -> bytes:
        """Held auditd events that waited past their timeout leave; returns the output now ready."""
        return self.router.tick(now)

    def deadline(self) -> float | None:
        """When `tick` next has something to do (monotonic seconds), or None."""
        return self.router.deadline()

    def finish(self) -> bytes:
        """No more input anywhere: every held event leaves."""
        return self.router.finish()

    def snapshot(self) -> dict[str, Any]:
        """The counters of the `stats` and `stopped` log events."""
        router, matcher = self.router, self.matcher
        open_sequences, evictions = self.sequence_counts()
        return self.stats.snapshot({
            "open_sequences": open_sequences,
            "sequence_evictions": evictions,
            "regex_timeouts": self._retired_timeouts + matcher.rs.regex_confirm.timeouts,
            "audit_waiting": router.audit.waiting,
            "audit_timed_out": router.audit.timed_out,
            "audit_evicted": router.audit.evicted,
            "pid_table": len(router.pids),
            "pid_table_evictions": router.pids.evicted,
            "rescanned_blocks": matcher.rescanned_blocks,  # raw scans past their callback bound
            "long_line_candidates": self.long_line_candidates,
            "suppress_keys": len(self.suppression) if self.suppression is not None else 0,
            "suppress_evictions": self.suppression.evicted if self.suppression is not None else 0,
            **self.correlation_counts(),
        })

    def correlation_counts(self) -> dict[str, int]:
        """Sigma correlation state (run/meta.py): groups open now, and since the start (of the
        running correlations) groups evicted for room, hits ignored as too late."""
        c = self.correlations
        evicted = self._retired_correlation_evictions + (c.counter("evicted") if c is not None else 0)
        return {"correlation_groups": len(c) if c is not None else 0, "correlation_evictions": evicted,
                "correlation_late": c.counter("late") if c is not None else 0}


def _exceptions(ruleset: Ruleset, exceptions: Sequence[RuleException], stats: Stats) -> Exceptions | None:
    """The exceptions gate: the --exceptions entries and the rule set's Sigma filters (None: none)."""
    entries = [*ruleset.filters, *exceptions]
    return Exceptions(entries, stats) if entries else None


def _correlations(ruleset: Ruleset, settings: Settings) -> Correlations | None:
    """The Sigma correlations gate (None: the rule set has none); --max-open-sequences bounds the
    groups of each correlation too."""
    return Correlations(ruleset.correlations, settings.max_open_sequences) if ruleset.correlations else None


def _suppression(ruleset: Ruleset, settings: Settings, stats: Stats) -> Suppression | None:
    """The suppression gate the settings ask for (None: off). ValueError for a --suppress-by field
    the engine cannot read (the CLI refuses it at start first, naming the option)."""
    if not settings.suppress_window_s:
        return None
    unknown = unknown_fields(settings.suppress_by, ruleset.accessors)
    if unknown:
        raise ValueError(f"suppress_by: unknown field {', '.join(map(repr, unknown))}")
    return Suppression(settings.suppress_window_s, settings.suppress_by, settings.suppress_max_keys, stats)


class Stream:
    """One input's bytes, in order. `feed` returns the engine's output now ready (which may include
    lines of other streams held behind an auditd event); `close` ends the stream's last line."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._framer = Framer(engine.settings.max_line_bytes)
        self._long = LongLines(engine.ruleset)
        self._too_long = 0  # over-long lines of this stream already counted
        self.partial = False  # the bytes fed so far end inside a line
        self.lines_in = 0  # lines this stream brought in (for per-listener counts)
        # The lines the last `feed` returned, when every block of it went to the matcher whole (the
        # output then holds one newline per line counted out); None when they must be counted
        self.lines_out: int | None = None

    @property
    def passing(self) -> bool:
        """Inside an over-long line: its next bytes must follow it in the output, nothing between."""
        return self._framer.passing

    def feed(self, chunk: bytes, now: float) -> bytes:
        if not chunk:
            self.lines_out = 0
            return b""
        engine = self.engine
        stats, router, only_alerts = engine.stats, engine.router, engine.settings.only_alerts
        before, before_out = stats.lines_in, stats.lines_out
        self.partial = chunk[-1:] != b"\n"
        out = []
        direct = True
        for piece, scan in self._framer.feed(chunk):
            if scan:
                if b"\xef" in piece and _BOM in piece:  # one memchr: most blocks hold no 0xEF byte
                    piece = _strip_bom(piece, stats)
                out.append(router.process(piece, now))
                direct = direct and router.direct
            else:  # an over-long line, forwarded as it came, scanned in windows
                direct = False
                stats.bytes_in += len(piece)
                out.append(self._pass(piece))
        new_long = self._framer.too_long - self._too_long
        if new_long:  # over-long lines bypass the matcher: count them here
            self._too_long = self._framer.too_long
            stats.lines_in += new_long
            stats.lines_out += 0 if only_alerts else new_long
            stats.dropped += new_long if only_alerts else 0
            stats.malformed["line_too_long"] += new_long
        self.lines_in += stats.lines_in - before
        self.lines_out = stats.lines_out - before_out if direct else None
        return b"".join(out)

    def close(self, now: float, torn: bool = False) -> bytes:
        """The stream ended: its last line, given a newline, goes through like any other. `torn`: the
        stream was cut off (a stop signal, a connection reset), so a last line that is not a whole
        JSON object is forwarded as `{"message": ...}` under the malformed reason `partial_line`."""
        engine = self.engine
        stats = engine.stats
        before = stats.lines_in
        last = self._framer.finish()
        out = b""
        if last == b"\n":  # it ends an over-long line that was being passed through
            stats.unterminated_last_line += self.partial
            out = self._pass(last)
        elif last:
            stats.unterminated_last_line += 1
            out = self._last_line(last, torn, now)
        self.partial = False
        self.lines_in += stats.lines_in - before
        return out

    def _pass(self, piece: bytes) -> bytes:
        if self._long.rs is not self.engine.ruleset and self._long.idle:
            self._long = LongLines(self.engine.ruleset)  # rules swapped: the next long line scans with them
        before = self._long.with_candidates
        piece = self._long.feed(piece)
        self.engine.long_line_candidates += self._long.with_candidates - before
        # The line is released with its last piece (the one ending in its newline).
        ends = piece.endswith(b"\n")
        if self.engine.settings.only_alerts:
            return self.engine.router.passthrough(b"", ends)
        return self.engine.router.passthrough(piece, ends)

    def _last_line(self, line: bytes, torn: bool, now: float) -> bytes:
        engine = self.engine
        stats, router = engine.stats, engine.router
        if line.startswith(_BOM):
            line = _strip_bom(line, stats)
        if not torn or _is_object(line):
            out = router.process(line, now)
            stats.bytes_in -= 1  # the newline was ours, not read
            return out
        stats.lines_in += 1
        stats.bytes_in += len(line) - 1
        stats.malformed["partial_line"] += 1
        if engine.settings.only_alerts:
            stats.dropped += 1
            return router.passthrough(b"", True)
        stats.lines_out += 1
        return router.passthrough(message_line(line[:-1]), True)


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


_raw: msgspec.json.Decoder[msgspec.Raw] = msgspec.json.Decoder(msgspec.Raw)


def _is_object(line: bytes) -> bool:
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        # Raw: a syntax check that converts no value, so 1e400 is whole JSON (a decode raised on it)
        _raw.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return False
    return True
