"""Counters bumped per batch and the periodic `stats` event."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

__all__ = ["Stats", "MALFORMED_REASONS"]

MALFORMED_REASONS = ("invalid_json", "invalid_utf8", "not_object", "too_deep", "line_too_long",
                     "not_audit_record", "invalid_xml", "out_of_range", "duplicate_key")


class Stats:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.lines_in = 0
        self.lines_out = 0
        self.bytes_in = 0
        self.alerts = 0
        self.candidates = 0
        self.hits: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.formats: Counter[str] = Counter()  # input lines by detected (or forced) format
        self.audit_events = 0  # auditd events assembled from their records
        self._last_lines = 0
        self._last_time = self.started

    def snapshot(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        now = time.monotonic()
        span = max(now - self._last_time, 1e-9)
        rate = (self.lines_in - self._last_lines) / span
        self._last_lines, self._last_time = self.lines_in, now
        out: dict[str, Any] = {
            "events_in": self.lines_in,
            "events_out": self.lines_out,
            "bytes_in": self.bytes_in,
            "alerts": self.alerts,
            "candidates": self.candidates,
            "hits_per_rule": dict(sorted(self.hits.items())),
            "malformed": {r: self.malformed.get(r, 0) for r in MALFORMED_REASONS},
            "formats": dict(sorted(self.formats.items())),
            "audit_events": self.audit_events,
            "events_per_s": round(rate, 1),
            "uptime_s": round(now - self.started, 3),
        }
        if extra:
            out.update(extra)
        return out
