"""A message's payload as engine input: NDJSON lines, whatever the publisher batched.

Vector's `nats` sink publishes one event per message; Fluent Bit's `nats` output publishes each
flush as one JSON array of `[timestamp, record]` pairs (docs.fluentbit.io, outputs/nats): those
records become one line each. Anything else (including bytes that are not UTF-8) goes to the
engine as it came, which forwards what it cannot read as a malformed event."""

from __future__ import annotations

import msgspec

__all__ = ["lines_of"]

_pairs = msgspec.json.Decoder(list[tuple[float, msgspec.Raw]])


def lines_of(payload: bytes) -> bytes:
    """The payload as newline-terminated lines."""
    if payload.startswith(b"[["):
        try:
            records = _pairs.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError):
            records = None
        if records and all(bytes(raw).startswith(b"{") for _, raw in records):
            return b"".join(bytes(raw) + b"\n" for _, raw in records)
    return payload if payload.endswith(b"\n") else payload + b"\n"
