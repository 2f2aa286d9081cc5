"""Every option of `shellsieve run` and `serve` and its default, as frozen Structs; numeric options bounded."""

from __future__ import annotations

import math
import re
from typing import Annotated

import msgspec
import msgspec.inspect
from msgspec import Meta

from shellsieve.events.envelope import DEFAULT_FIELDS, parse_fields
from shellsieve.events.hostos import HOST_OS

__all__ = ["ALERT_DOCS", "Settings", "ServeSettings", "within", "describe", "parse_duration", "parse_suppress_by",
           "SUPPRESS_BY"]

# Suppression key fields (besides the rule, always part of the key); `a|b`: a, else b when a is missing
SUPPRESS_BY: tuple[str, ...] = ("host.id|host.name", "process.command_line")


ALERT_DOCS = ("off", "split")  # --alert-docs


class Settings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Numbers are finite and within their Meta bounds: checked when built (`__post_init__`), so a
    caller other than the CLI cannot start the filter with `inf` seconds or a negative size either."""

    # one read1() from the pipe; batches grow under load, shrink when idle
    read_bytes: Annotated[int, Meta(ge=1, le=1 << 26)] = 1 << 16
    # longer lines are forwarded unscanned and counted; 1 GiB at most, as a line is held whole
    max_line_bytes: Annotated[int, Meta(ge=1, le=1 << 30)] = 1 << 20
    # periodic `stats` event on stderr; 0 turns it off; at most a day
    stats_interval_s: Annotated[float, Meta(ge=0, le=86_400)] = 10.0
    only_alerts: bool = False
    # per sequence rule; the oldest is evicted and counted
    max_open_sequences: Annotated[int, Meta(ge=1, le=1 << 24)] = 100_000
    strict: bool = False
    input_format: str = "auto"  # or one of events.formats.FORMATS: skip per-line detection
    # an auditd event without its EOE leaves after this long; an hour at most (auditd writes an
    # event's records within milliseconds)
    audit_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 0.5
    # auditd events waiting for their EOE at once; the oldest leaves first
    audit_max_open: Annotated[int, Meta(ge=1, le=1 << 20)] = 4096
    # pids remembered to name an auditd event's parent (Linux's pid_max is 2^22 per host); 0: none
    pid_table_size: Annotated[int, Meta(ge=0, le=1 << 24)] = 65_536
    passwd: str | None = None  # passwd(5) file naming auditd uids
    # top-level JSON fields in which a shipper carries the raw line (events/envelope.py); (): off
    envelope_fields: tuple[str, ...] = DEFAULT_FIELDS
    # host.os.type for events whose input names none (events/hostos.py HOST_OS)
    host_os: str = "auto"
    # alerts of one rule with the same suppress_by values within this many seconds of the first
    # are forwarded as events, not alerts (run/suppress.py); 0: off; a day at most
    suppress_window_s: Annotated[float, Meta(ge=0, le=86_400)] = 0.0
    suppress_by: tuple[str, ...] = SUPPRESS_BY
    # suppression keys remembered at once; the oldest is evicted and counted
    suppress_max_keys: Annotated[int, Meta(ge=1, le=1 << 24)] = 100_000
    # "split": after each enriched event, one alert document per matching rule (docs/alerts.md)
    alert_docs: str = "off"
    # --watch: poll the rule and exceptions files this often; a change that held still for one
    # interval reloads the rules (reload/watch.py)
    watch: bool = False
    watch_interval_s: Annotated[float, Meta(ge=0.1, le=3600)] = 2.0

    def __post_init__(self) -> None:
        _check(self)
        try:
            ok = parse_suppress_by(",".join(self.suppress_by)) == self.suppress_by
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"suppress_by must be distinct field names (the rule is implicit), "
                             f"got {self.suppress_by!r}")
        if self.alert_docs not in ALERT_DOCS:
            raise ValueError(f"alert_docs must be one of {', '.join(ALERT_DOCS)}, got {self.alert_docs!r}")
        if self.host_os not in HOST_OS:
            raise ValueError(f"host_os must be one of {', '.join(HOST_OS)}, got {self.host_os!r}")
        if parse_fields(",".join(self.envelope_fields)) != self.envelope_fields:
            raise ValueError(f"envelope_fields must be distinct field names, got {self.envelope_fields!r}")


class ServeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What `serve` adds to the engine's settings: its buffer, limits and timeouts."""

    # events accepted and not yet delivered downstream; when full, HTTP answers 503 and the
    # stream listeners stop reading (backpressure), never drop
    buffer_events: Annotated[int, Meta(ge=1, le=1 << 24)] = 100_000
    # an HTTP request body larger than this is refused with 413
    max_body_bytes: Annotated[int, Meta(ge=1, le=1 << 30)] = 16 << 20
    # events per request (or write) to the downstream
    batch_events: Annotated[int, Meta(ge=1, le=1 << 20)] = 1000
    # on SIGTERM: how long what is buffered may take to reach the downstream
    drain_timeout_s: Annotated[float, Meta(ge=0, le=3600)] = 30.0
    # a connection that sends nothing this long is closed
    idle_timeout_s: Annotated[float, Meta(gt=0, le=86_400)] = 300.0
    # the longest wait between two attempts to deliver to a downstream that is down
    retry_max_s: Annotated[float, Meta(gt=0, le=3600)] = 10.0
    # how long a downstream may take to answer one request (or a forward ack)
    request_timeout_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0

    def __post_init__(self) -> None:
        _check(self)


def _check(obj: msgspec.Struct) -> None:
    for name in _BOUNDS_BY[type(obj)]:
        v = getattr(obj, name)
        if not within(name, v):
            raise ValueError(f"{name} must be {describe(name)}, got {v!r}")


class Bound(msgspec.Struct, frozen=True):
    lo: float
    lo_open: bool  # the lower bound itself is excluded
    hi: float
    integer: bool


def _bounds(cls: type[msgspec.Struct]) -> dict[str, Bound]:
    """Field name -> its bounds, read from the Meta above (one place says them)."""
    out: dict[str, Bound] = {}
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    for f in info.fields:
        t = f.type
        if isinstance(t, (msgspec.inspect.IntType, msgspec.inspect.FloatType)) and t.le is not None:
            lo_open = t.gt is not None
            lo = t.gt if t.gt is not None else t.ge
            out[f.name] = Bound(-math.inf if lo is None else lo, lo_open, t.le, isinstance(t, msgspec.inspect.IntType))
    return out


_BOUNDS_BY: dict[type[msgspec.Struct], dict[str, Bound]] = {cls: _bounds(cls) for cls in (Settings, ServeSettings)}
# field names are unique across both Structs: one table for `within` and `describe`
_BOUNDS = {**_BOUNDS_BY[Settings], **_BOUNDS_BY[ServeSettings]}


def within(name: str, v: object) -> bool:
    """Is `v` a valid value of the numeric setting `name` (finite, of its type, in its bounds)?"""
    b = _BOUNDS[name]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (b.integer and not isinstance(v, int)):
        return False
    return math.isfinite(v) and (v > b.lo if b.lo_open else v >= b.lo) and v <= b.hi


def describe(name: str) -> str:
    """The allowed range of a numeric setting, as an error message says it."""
    b = _BOUNDS[name]
    kind = "an integer" if b.integer else "a finite number"

    def num(x: float) -> str:
        return str(int(x)) if b.integer else f"{x:g}"

    return f"{kind} {'>' if b.lo_open else '>='} {num(b.lo)} and <= {num(b.hi)}"


_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|m|h|d)?\s*", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str) -> float:
    """`300`, `300s`, `5m`, `1h`, `1.5h`, `250ms` -> seconds; a bare number is seconds. ValueError otherwise."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(f"not a duration (300, 300s, 5m, 1h): {text!r}")
    return float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()]


_FIELD = re.compile(r"@?[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def parse_suppress_by(text: str) -> tuple[str, ...]:
    """`host.id|host.name,process.command_line` -> its fields; "" -> () (the rule alone is the key).
    `rule.id` may be named, and is left out: the rule is always part of the key. ValueError names
    the bad part. Whether a name is a field the engine reads is checked against the rules at start."""
    if not text.strip():
        return ()
    out: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        names = [n.strip() for n in item.split("|")]
        for n in names:
            if not _FIELD.fullmatch(n) or ".." in n or n.endswith("."):
                raise ValueError(f"not a field name: {n!r} in {text!r}")
        if names == ["rule.id"]:
            continue
        spec = "|".join(names)
        if spec in out:
            raise ValueError(f"a field is named twice in {text!r}")
        out.append(spec)
    return tuple(out)
