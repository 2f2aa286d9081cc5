"""Every option of `shellsieve run` and its default, as one frozen Struct."""

from __future__ import annotations

import msgspec

__all__ = ["Settings"]


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    read_bytes: int = 1 << 16  # one read1() from the pipe; batches grow under load, shrink when idle
    max_line_bytes: int = 1 << 20  # longer lines are forwarded unscanned and counted
    stats_interval_s: float = 10.0  # periodic `stats` event on stderr; 0 turns it off
    only_alerts: bool = False
    max_open_sequences: int = 100_000  # per sequence rule; the oldest is evicted and counted
    strict: bool = False
    input_format: str = "auto"  # or one of events.formats.FORMATS: skip per-line detection
    audit_timeout_s: float = 0.5  # an auditd event without its EOE leaves after this long
    audit_max_open: int = 4096  # auditd events waiting for their EOE at once; the oldest leaves first
    pid_table_size: int = 65_536  # pids remembered to name an auditd event's parent
    passwd: str | None = None  # passwd(5) file naming auditd uids
