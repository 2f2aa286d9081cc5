"""Counters bumped per batch and the periodic `stats` event.

The line counters add up at every snapshot:

    events_in == events_out + events_dropped + events_pending + events_undelivered

events_in: lines read (every line, empty ones, over-long ones and a last line without a newline
included); events_out: lines the stdout pipe accepted whole; events_dropped: lines --only-alerts
left out; events_pending: lines read whose output has not been written yet (an auditd event waiting
for its end record, and the lines queued behind it; in serve also the lines buffered for the
downstream); events_undelivered: lines decided but not written because the reader closed stdout,
and (serve) lines a downstream refused for good. In `run`'s final `stopped` event events_pending
is 0; in serve's it is what a drain that timed out left undelivered. alert_docs_out (documents
written by --alert-docs split after their event) are extra lines, in none of these counts.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

__all__ = ["Stats", "MALFORMED_REASONS"]

MALFORMED_REASONS = ("invalid_json", "invalid_utf8", "not_object", "too_deep", "line_too_long",
                     "not_audit_record", "invalid_xml", "partial_line", "out_of_range", "duplicate_key")


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines_in = 0
        self.lines_out = 0  # lines decided to be written (the loop writes them when their turn comes)
        self.lines_delivered = 0  # lines the stdout pipe accepted whole
        # alert documents (--alert-docs split) the output accepted: extra lines, no input line's
        self.alert_docs_out = 0
        self.dropped = 0  # lines --only-alerts decided not to write
        self.stdout_closed = False  # the reader went away: lines_out - lines_delivered are undelivered
        self.unterminated_last_line = 0  # the input ended without a newline (0 or 1)
        self.bom_stripped = 0  # UTF-8 byte order marks removed from the start of a line
        self.rejected = 0  # lines a downstream refused for good (serve): undelivered
        self.envelopes = 0  # shipper envelopes whose carried line was decoded (events/envelope.py)
        self.disowned = 0  # events without hits whose own `shellsieve` key moved to shellsieve.input
        self.bytes_in = 0
        self.stop_reason = "end_of_input"  # set by the loop when it stops: a key of loop.EXIT_CODES
        self.alerts = 0
        self.candidates = 0
        self.hits: Counter[str] = Counter()  # hits alerted, per rule id
        self.excepted: Counter[str] = Counter()  # hits an exception held back, per rule id
        self.suppressed: Counter[str] = Counter()  # hits suppression held back, per rule id
        self.malformed: Counter[str] = Counter()
        self.formats: Counter[str] = Counter()  # input lines by detected (or forced) format
        self.audit_events = 0  # auditd events assembled from their records
        self.reloads: Counter[str] = Counter()  # rule reloads by result: ok, failed
        self._last_lines = 0
        self._last_time = self.started

    def lines(self) -> dict[str, int]:
        """The line counts (events_in, _out, _dropped, _pending, _undelivered), which add up; unlike
        snapshot() this leaves the events_per_s window alone (the metrics scrape calls it)."""
        lines_in, delivered, dropped = self.lines_in, self.lines_delivered, self.dropped
        undelivered = (self.lines_out - delivered if self.stdout_closed else 0) + self.rejected
        return {"events_in": lines_in, "events_out": delivered, "events_dropped": dropped,
                "events_pending": lines_in - delivered - dropped - undelivered, "events_undelivered": undelivered}

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        now = time.monotonic()
        span = max(now - self._last_time, 1e-9)
        rate = (self.lines_in - self._last_lines) / span
        self._last_lines, self._last_time = self.lines_in, now
        out: dict[str, Any] = {
            **self.lines(),
            "alert_docs_out": self.alert_docs_out,
            "unterminated_last_line": self.unterminated_last_line,
            "bom_stripped": self.bom_stripped,
            "disowned": self.disowned,
            "envelopes": self.envelopes,
            "bytes_in": self.bytes_in,
            "alerts": self.alerts,
            "candidates": self.candidates,
            "hits_per_rule": dict(sorted(self.hits.items())),
            "excepted_per_rule": dict(sorted(self.excepted.items())),
            "suppressed_per_rule": dict(sorted(self.suppressed.items())),
            "malformed": {r: self.malformed.get(r, 0) for r in MALFORMED_REASONS},
            "formats": dict(sorted(self.formats.items())),
            "audit_events": self.audit_events,
            "reloads": {r: self.reloads[r] for r in ("ok", "failed")},
            "events_per_s": round(rate, 1),
            "uptime_s": round(now - self.started, 3),
        }
        if extra:
            out.update(extra)
        return out
