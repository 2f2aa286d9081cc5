"""An event's time from its `@timestamp`: what sequences and suppression measure their windows on."""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

__all__ = ["event_time", "iso"]


def event_time(value: Any) -> float | None:
    """Epoch seconds of an `@timestamp` value (ISO 8601, or epoch ms or s), or None if it is none."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return value / 1000.0 if value > 1e11 else float(value)  # epoch ms or s
        except OverflowError:  # an int of hundreds of digits (valid JSON): no time
            return None
    return None


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 in UTC, to the millisecond, as ECS writes `@timestamp`."""
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):  # a year past 9999: the number itself says more
        return str(ts)
