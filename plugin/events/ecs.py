"""Building ECS events from flat `{"process.name": ...}` maps, as every input decoder does."""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

__all__ = ["nest", "iso_time", "basename", "to_int"]


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1, "a.c": 2}` -> `{"a": {"b": 1, "c": 2}}`; None values are left out."""
    doc: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        parts = dotted.split(".")
        cur = doc
        for p in parts[:-1]:
            nxt = cur.get(p)
            if not isinstance(nxt, dict):
                nxt = cur[p] = {}
            cur = nxt
        cur[parts[-1]] = value
    return doc


def iso_time(epoch: float) -> str | None:
    """Epoch seconds -> `2026-11-22T10:00:00.123Z`, the @timestamp shape Elastic writes; None for a
    time no datetime holds (an audit header's seconds are digits the input chose: year 540678, inf)."""
    try:
        dt = datetime.fromtimestamp(epoch, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def basename(path: str | None, windows: bool = False) -> str | None:
    """Last component of a path (`\\` also separates on Windows)."""
    if not path:
        return None
    if windows:
        path = path.replace("\\", "/")
    return path.rstrip("/").rsplit("/", 1)[-1] or None


def to_int(value: Any) -> int | None:
    """A decimal id or count as an int; anything else (absent, "-", hex GUIDs) -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            return None
    return None

