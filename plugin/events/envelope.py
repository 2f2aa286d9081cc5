"""Shipper envelopes: a raw line carried in one field of a JSON object (Vector's `message`, Fluent Bit's,
Docker's and CRI's `log`), and how an alert on the inner line is written back into the envelope.

An object is an envelope when one of the configured fields (the first, in order) holds a string, it
is not a process event itself (no `process` key) and no other JSON shape claims it (Sysmon, Wazuh).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["DEFAULT_FIELDS", "COMPILED_FIELDS", "PROCESS_KEY", "envelope_field", "key_marker", "key_probes",
           "merge", "parse_fields"]

DEFAULT_FIELDS = ("message", "log")
# The fields whose keys are literals of the line database (compile/lines.py): an ECS block holding
# none of them needs no look of its own. Other configured fields are probed with a byte search.
COMPILED_FIELDS = DEFAULT_FIELDS

# A `process` key anywhere in the line: a process event (ECS events carry `message` too: Elastic
# Defend's "Endpoint process event", Auditbeat's summary). Decided on bytes so that an ECS line with
# a `message` is never decoded for this test; inside a JSON string a quote is escaped, so an
# envelope's raw line cannot spell the key.
PROCESS_KEY = re.compile(rb'"process"[ \t\r\n]*:')


def key_marker(field: str) -> bytes:
    """A Hyperscan expression for the key `field` holding a string (`"message":"`)."""
    return b'"' + re.escape(field).encode() + rb'"[ \t\r\n]*:[ \t\r\n]*"'


# A field name the probe can find as `"name"` in the line's bytes: no quote, backslash or control byte.
_NAME = re.compile(r'[^"\\\x00-\x1f\x7f]+')


def key_probes(fields: tuple[str, ...]) -> tuple[bytes, ...]:
    """The bytes each field's key is written as, `"message"`."""
    return tuple(b'"' + f.encode() + b'"' for f in fields)


def envelope_field(doc: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """The field of `doc` that carries a raw line, or None if `doc` is not an envelope."""
    if "process" in doc:
        return None
    for f in fields:
        if type(doc.get(f)) is str:
            return f
    return None


def parse_fields(text: str) -> tuple[str, ...]:
    """`message,log` -> ("message", "log"); "" -> () (envelopes off). ValueError names what is wrong."""
    if not text.strip():
        return ()
    names = tuple(n.strip() for n in text.split(","))
    for n in names:
        if not n or not _NAME.fullmatch(n):
            raise ValueError(f"a field name must be non-empty, without quotes, backslashes or control "
                             f"characters, got {n!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"a field is named twice in {text!r}")
    return names


def merge(envelope: dict[str, Any], parsed: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The envelope with the parsed event's fields added (a new dict; neither input is changed), and
    the parsed values that had no place there, nested (the caller writes them to `shellsieve.parsed`).

    The envelope wins: each of its fields stays where it is with its value. A parsed field goes in
    where the envelope has nothing, and into the envelope's object where both are objects; a parsed
    value whose place the envelope holds with another value (Vector's `host: "web-01"` where ECS has
    the object `host.os.type`) goes under `shellsieve.parsed` at the same path, so nothing is lost."""
    out = dict(envelope)
    taken: dict[str, Any] = {}
    _merge(out, parsed, taken)
    return out, taken


def _merge(out: dict[str, Any], parsed: dict[str, Any], taken: dict[str, Any]) -> None:
    for key, value in parsed.items():
        if key not in out:
            out[key] = value
            continue
        cur = out[key]
        if type(cur) is dict and type(value) is dict:
            inner = out[key] = dict(cur)  # copied: the envelope's own object is not changed
            sub: dict[str, Any] = {}
            _merge(inner, value, sub)
            if sub:
                taken[key] = sub
        elif cur != value:
            taken[key] = value
