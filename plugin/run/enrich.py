"""Hits -> ECS alert fields, in rule order; non-JSON lines -> {"message": ...}.

Our alert fields always have the same shape: the input's own values where they go are kept under
`shellsieve.input` (see `_claim`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from shellsieve.model.rule import Rule
from shellsieve.rules.severity import SEVERITY_NUMBER

__all__ = ["Gate", "Hit", "RESERVED", "disown", "enrich", "json_line", "message_line", "put"]

_encode = msgspec.json.Encoder().encode


class Hit:
    __slots__ = ("rule", "sequence", "suppressed")

    def __init__(self, rule: Rule, sequence: dict[str, Any] | None = None) -> None:
        self.rule = rule
        self.sequence = sequence  # for sequence rules: what the alert quotes of the first event
        # set by suppression on the first alert after a window: what it held back, e.g.
        # {"count": 3, "since": "2026-12-04T09:00:00Z"}
        self.suppressed: dict[str, Any] | None = None


# A stage after confirmation (exceptions, suppression): given the whole event as a dict and its
# hits in rule order, returns the hits that stay (it counts what it drops). Gates run in order.
Gate = Callable[[dict[str, Any], list[Hit]], list[Hit]]


def put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `a.b.c` as nested objects; where a non-object is in the way, use the dotted key there."""
    parts = dotted.split(".")
    cur = doc
    for i, p in enumerate(parts[:-1]):
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        elif not isinstance(nxt, dict):
            cur[".".join(parts[i:])] = value
            return
        cur = nxt
    cur[parts[-1]] = value


def _one_or_many(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(v for v in values if v))


def _alert_fields(rules: tuple[Rule, ...]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [
        ("event.kind", "alert"),
        ("event.severity", max(SEVERITY_NUMBER[r.severity] for r in rules)),
        ("event.risk_score", max(r.risk_score for r in rules)),
        ("rule.id", _one_or_many([r.id for r in rules])),
        ("rule.name", _one_or_many([r.name for r in rules])),
        ("rule.ruleset", _one_or_many([r.ruleset for r in rules])),
    ]
    refs = _unique([ref for r in rules for ref in r.references])
    if refs:
        out.append(("rule.reference", _one_or_many(refs)))
    threats = [t for r in rules for t in r.threats]
    if threats:
        out.append(("threat.framework", "MITRE ATT&CK"))
        for key, attr in (("technique.id", "technique_id"), ("technique.name", "technique_name"),
                          ("tactic.id", "tactic_id"), ("tactic.name", "tactic_name")):
            vals = _unique([getattr(t, attr) for t in threats])
            if vals:
                out.append((f"threat.{key}", vals))
    return out


def _alerts(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    """`shellsieve.alerts`: every matching rule, not only the most severe (DESIGN's output)."""
    return [{"id": r.id, "name": r.name, "ruleset": r.ruleset, "severity": SEVERITY_NUMBER[r.severity],
             "risk_score": r.risk_score} for r in rules]


def _tree(fields: list[tuple[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in fields:
        put(tree, dotted, value)
    return tree


def _merge(doc: dict[str, Any], tree: dict[str, Any]) -> None:
    """Every leaf of `tree` into `doc`, a subtree at a time: a subtree the event lacks is copied in
    whole, one level deep (its inner objects are shared, never changed). `_claim` has cleared the
    way, so what is in `doc` where `tree` goes is an object or nothing."""
    for key, value in tree.items():
        if type(value) is not dict:
            doc[key] = value
            continue
        cur = doc.get(key)
        if cur is None:
            doc[key] = dict(value)
        else:
            _merge(cur, value)


# Where our alert writes. An input may hold values there (a Wazuh or EDR alert, a second pass
# through a filter, or a forgery): they are moved under `shellsieve.input` at the same path, so our
# fields always have one shape, nothing of the input is lost, and the input's cannot pass for ours.
_OURS = ("rule", "threat", "shellsieve")
_OURS_IN_EVENT = ("kind", "severity", "risk_score")


def _claim(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Take the input's own values from the paths our alert writes; returns them nested, or None."""
    moved: dict[str, Any] = {}
    if "event" in doc:
        event = doc["event"]
        if type(event) is dict:
            taken = {k: event.pop(k) for k in _OURS_IN_EVENT if k in event}
            if taken:
                moved["event"] = taken
        else:  # a non-object where our event.* go: moved whole
            moved["event"] = doc.pop("event")
    for key in _OURS:
        if key in doc:
            moved[key] = doc.pop(key)
    # Flat dotted keys (`"rule.id"`, `"event.kind"`) are the same fields to Elasticsearch and most
    # SIEMs: they move too. Only a key with a dot can be one, so the usual event costs one scan.
    for key in [k for k in doc if "." in k and k.split(".", 1)[0] in _OURS_PREFIXES]:
        if key.split(".", 1)[0] != "event" or key.split(".", 2)[1] in _OURS_IN_EVENT:
            moved[key] = doc.pop(key)
    return moved or None


_OURS_PREFIXES = frozenset((*_OURS, "event"))
RESERVED = "shellsieve"  # the top-level key only the filter writes


def disown(doc: dict[str, Any]) -> bool:
    """On an event without hits: an input's own `shellsieve` (or flat `shellsieve.*` keys) moves to
    `shellsieve.input`, so `shellsieve.alerts` is only ever ours. False if there was none."""
    keys = [k for k in doc if k == RESERVED or k.startswith("shellsieve.")]
    if not keys:
        return False
    doc[RESERVED] = {"input": {k: doc.pop(k) for k in keys}}
    return True


# The alert fields depend only on which rules hit: built once per combination, not per alert. The
# values are shared between events, which is safe because each document is encoded and dropped.
# Keyed by the rules' ids; each entry holds its rules, so no id is reused while it is cached.
_FIELDS: dict[tuple[int, ...], tuple[tuple[Rule, ...], dict[str, Any], list[dict[str, Any]]]] = {}
_MAX_COMBINATIONS = 4096


def enrich(doc: dict[str, Any], hits: list[Hit]) -> dict[str, Any]:
    """Add ECS alert fields for `hits` (already in stable rule order) to a decoded event; what the
    event held at `rule`, `threat`, `shellsieve` and `event.{kind,severity,risk_score}` moves to
    `shellsieve.input` at the same path."""
    rules = tuple(h.rule for h in hits)
    key = tuple(id(r) for r in rules)
    entry = _FIELDS.get(key)
    if entry is None:
        entry = (rules, _tree(_alert_fields(rules)), _alerts(rules))
        if len(_FIELDS) < _MAX_COMBINATIONS:
            _FIELDS[key] = entry
    moved = _claim(doc)
    _merge(doc, entry[1])
    alerts = entry[2]
    if any(h.suppressed is not None for h in hits):  # per event: the cached list stays as it is
        alerts = [a if h.suppressed is None else dict(a, suppressed=h.suppressed) for a, h in zip(alerts, hits)]
    ours: dict[str, Any] = {"alerts": alerts}
    seqs = [dict(h.sequence, **{"rule.id": h.rule.id}) for h in hits if h.sequence is not None]
    if seqs:
        ours["sequence"] = seqs
    if moved is not None:
        ours["input"] = moved
    doc[RESERVED] = ours
    return doc


def json_line(doc: dict[str, Any]) -> bytes:
    """`doc` as one NDJSON line. JSON lets DEL (0x7f) stand raw in a string; a line we write holds no
    raw control byte, so it is escaped (0x7f appears in msgspec's output only inside strings)."""
    return _encode(doc).replace(b"\x7f", b"\\u007f") + b"\n"


def message_line(line: bytes, hits: list[Hit] | None = None, fields: dict[str, Any] | None = None,
                 malformed: str | None = None) -> bytes:
    """A text line as the NDJSON event `{"message": "<line>"}`; with hits, the ECS `fields` parsed
    from it and the alert fields are added.

    Bytes that are not UTF-8 become U+FFFD, never a `\\xNN` text the input could have spelt itself,
    and the line is marked `"shellsieve": {"malformed": "invalid_utf8"}`, so a U+FFFD the input held
    is told from one we wrote. An alert on a line counted as `malformed` (the event was read by the
    tolerant reader) carries that reason in the same field; without hits such a line stays
    `{"message": ...}` as it always was."""
    raw = line.rstrip(b"\r")
    try:
        text = raw.decode()
        if not hits:
            malformed = None
    except UnicodeDecodeError:
        text = raw.decode("utf-8", "replace")
        malformed = "invalid_utf8"
    doc: dict[str, Any] = {"message": text}
    if hits:
        if fields:
            doc.update((k, v) for k, v in fields.items() if k != "message")
        enrich(doc, hits)
    if malformed is not None:
        put(doc, "shellsieve.malformed", malformed)
    return json_line(doc)
