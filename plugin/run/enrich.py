"""Hits -> ECS alert fields, in rule order; non-JSON lines -> {"message": ...}.

One alert shape (docs/alerts.md, docs/alert.schema.json): ECS `rule.*` and event.severity /
risk_score of the most severe rule, `threat.*` of all as parallel arrays, every rule in full under
`shellsieve.alerts`. An upstream alert's own rule/threat are never overwritten."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from shellsieve.model.rule import Rule
from shellsieve.model.severity import SEVERITY_NUMBER

__all__ = ["Alert", "FRAMEWORK", "Gate", "Hit", "RESERVED", "alert_documents", "alert_for", "alert_line",
           "disown", "enrich", "json_line",
           "message_line", "put", "threat_fields", "top_rule", "upstream_alert"]

_encode = msgspec.json.Encoder().encode
FRAMEWORK = "MITRE ATT&CK"


class Hit:
    __slots__ = ("rule", "sequence", "suppressed", "correlation")

    def __init__(self, rule: Rule, sequence: dict[str, Any] | None = None,
                 correlation: dict[str, Any] | None = None) -> None:
        self.rule = rule
        self.sequence = sequence  # for sequence rules: what the alert quotes of the first event
        self.correlation = correlation  # for correlations (run/meta.py): its group and what fed it
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


def _rule_object(r: Rule) -> dict[str, Any]:
    """ECS `rule.*` of one rule, single-valued (rule.author is ECS's one list); empty values left out."""
    obj: dict[str, Any] = {"id": r.id}
    for key, value in (("uuid", r.uuid), ("name", r.name), ("description", r.description),
                       ("version", r.version), ("author", list(r.author)),
                       ("reference", r.references[0] if r.references else ""), ("license", r.license),
                       ("ruleset", r.ruleset), ("category", r.category)):
        if value:
            obj[key] = value
    return obj


def _ref(ident: str | None, name: str | None, reference: str | None) -> dict[str, Any]:
    """An ATT&CK reference (id, name, reference); a technique's gets its sub-techniques added."""
    out: dict[str, Any] = {"id": ident or ""}
    if name:
        out["name"] = name
    if reference:
        out["reference"] = reference
    return out


def _nested_threat(r: Rule) -> list[dict[str, Any]]:
    """The rule's threats as Elastic's alert documents nest them: one entry per tactic, its
    techniques as a list, each with its sub-techniques as a list."""
    out: list[dict[str, Any]] = []
    by_tactic: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for t in r.threats:
        entry = by_tactic.get((t.tactic_id, t.tactic_name))
        if entry is None:
            entry = {"framework": FRAMEWORK}
            if t.tactic_id or t.tactic_name:
                entry["tactic"] = _ref(t.tactic_id, t.tactic_name, t.tactic_reference)
            by_tactic[(t.tactic_id, t.tactic_name)] = entry
            out.append(entry)
        if not t.technique_id:
            continue
        techniques = entry.setdefault("technique", [])
        tech = next((x for x in techniques if x["id"] == t.technique_id), None)
        if tech is None:
            tech = _ref(t.technique_id, t.technique_name, t.technique_reference)
            techniques.append(tech)
        if t.subtechnique_id:
            subs = tech.setdefault("subtechnique", [])
            sub = _ref(t.subtechnique_id, t.subtechnique_name, t.subtechnique_reference)
            if sub not in subs:
                subs.append(sub)
    return out


def _parallel(items: list[tuple[str | None, str | None, str | None]]) -> dict[str, list[str]] | None:
    """ECS parallel arrays: each id once, with its name and reference at the same index ("" where
    the source and the ATT&CK table know none). Entries without an id cannot be paired: left out."""
    seen: dict[str, tuple[str, str]] = {}
    for ident, name, ref in items:
        if ident and ident not in seen:
            seen[ident] = (name or "", ref or "")
    if not seen:
        return None
    return {"id": list(seen), "name": [n for n, _ in seen.values()], "reference": [r for _, r in seen.values()]}


def threat_fields(rules: tuple[Rule, ...]) -> dict[str, Any] | None:
    """ECS `threat.*` for the union of the rules' threats, as parallel arrays (None: no threats)."""
    threats = [t for r in rules for t in r.threats]
    if not threats:
        return None
    out: dict[str, Any] = {"framework": FRAMEWORK}
    tactic = _parallel([(t.tactic_id, t.tactic_name, t.tactic_reference) for t in threats])
    technique = _parallel([(t.technique_id, t.technique_name, t.technique_reference) for t in threats])
    sub = _parallel([(t.subtechnique_id, t.subtechnique_name, t.subtechnique_reference) for t in threats])
    if tactic:
        out["tactic"] = tactic
    if technique or sub:
        out["technique"] = technique or {"id": [], "name": [], "reference": []}
        if sub:
            out["technique"]["subtechnique"] = sub
    return out


def top_rule(rules: tuple[Rule, ...]) -> Rule:
    """The most severe rule (severity, then risk score); ties go to the first in rule order."""
    return max(rules, key=lambda r: (SEVERITY_NUMBER[r.severity], r.risk_score))  # max keeps the first


def _alert(r: Rule) -> dict[str, Any]:
    """One `shellsieve.alerts[]` entry: the rule in full, as its own alert would show it."""
    entry: dict[str, Any] = {"rule": _rule_object(r), "severity": SEVERITY_NUMBER[r.severity],
                             "risk_score": r.risk_score}
    if len(r.references) > 1:
        entry["references"] = list(r.references)  # ECS rule.reference holds one
    threat = _nested_threat(r)
    if threat:
        entry["threat"] = threat
    return entry


class Alert:
    """What an alert writes for one combination of rules: built once, shared by its events."""

    __slots__ = ("rules", "top", "rule", "threat", "alerts", "docs")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules  # held so that no id in the cache key is reused while cached
        top = top_rule(rules)
        self.top = {"kind": "alert", "severity": SEVERITY_NUMBER[top.severity], "risk_score": top.risk_score}
        self.rule = _rule_object(top)
        self.threat = threat_fields(rules)
        self.alerts = [_alert(r) for r in rules]
        # --alert-docs split: each rule's own event.*, rule and threat
        self.docs = [({"kind": "alert", "severity": SEVERITY_NUMBER[r.severity], "risk_score": r.risk_score},
                      _rule_object(r), threat_fields((r,))) for r in rules]


# Where an upstream alert (an EDR's, Wazuh's, a second pass through a filter) keeps its own
# detection: an event with either is left as it came there, and ours go under shellsieve.alerts.
_UPSTREAM = ("rule", "threat")
_OURS_IN_EVENT = ("kind", "severity", "risk_score")
RESERVED = "shellsieve"  # the top-level key only the filter writes


def upstream_alert(doc: dict[str, Any]) -> bool:
    """Whether the event holds its own `rule` or `threat` (nested, or flat dotted keys, which
    Elasticsearch and most SIEMs read as the same fields)."""
    if "rule" in doc or "threat" in doc:
        return True
    return any("." in k and k.split(".", 1)[0] in _UPSTREAM for k in doc)


def _claim(doc: dict[str, Any]) -> dict[str, Any] | None:
    """Move the input's own `shellsieve` and event.{kind,severity,risk_score} (nested or dotted)
    aside, where ours go; returns them nested, or None."""
    moved: dict[str, Any] = {}
    if "event" in doc:
        event = doc["event"]
        if type(event) is dict:
            taken = {k: event.pop(k) for k in _OURS_IN_EVENT if k in event}
            if taken:
                moved["event"] = taken
        else:  # a non-object where our event.* go: moved whole
            moved["event"] = doc.pop("event")
    for key in [k for k in doc if k == RESERVED or k.startswith(("shellsieve.", "event."))]:
        if not key.startswith("event.") or key.split(".", 2)[1] in _OURS_IN_EVENT:
            moved[key] = doc.pop(key)
    return moved or None


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
_FIELDS: dict[tuple[int, ...], Alert] = {}
_MAX_COMBINATIONS = 4096


def alert_for(hits: list[Hit]) -> Alert:
    """The (cached) alert parts for these hits' rules."""
    rules = tuple(h.rule for h in hits)
    key = tuple(id(r) for r in rules)
    entry = _FIELDS.get(key)
    if entry is None:
        entry = Alert(rules)
        if len(_FIELDS) < _MAX_COMBINATIONS:
            _FIELDS[key] = entry
    return entry


def enrich(doc: dict[str, Any], hits: list[Hit]) -> dict[str, Any]:
    """Add the alert for `hits` (already in rule order) to a decoded event (docs/alerts.md).

    `rule`, `threat` and event.{kind,severity,risk_score} describe the most severe rule and the
    union of the threats; every rule in full goes to `shellsieve.alerts`. An event that is an
    upstream alert (has `rule` or `threat`) keeps all of those: ours go to shellsieve.alerts only.
    Otherwise the input's own event.{kind,severity,risk_score} move to shellsieve.input.event.
    An input's own `shellsieve` always moves to shellsieve.input."""
    entry = alert_for(hits)
    upstream = upstream_alert(doc)
    if upstream:
        own = [k for k in doc if k == RESERVED or k.startswith("shellsieve.")]
        moved: dict[str, Any] | None = {k: doc.pop(k) for k in own} or None
    else:
        moved = _claim(doc)
        event = doc.get("event")
        if event is None:
            doc["event"] = dict(entry.top)
        else:
            event.update(entry.top)
        doc["rule"] = entry.rule
        if entry.threat is not None:
            doc["threat"] = entry.threat
    alerts = entry.alerts
    if any(h.suppressed is not None for h in hits):  # per event: the cached list stays as it is
        alerts = [a if h.suppressed is None else dict(a, suppressed=h.suppressed) for a, h in zip(alerts, hits)]
    ours: dict[str, Any] = {"alerts": alerts}
    if upstream:
        ours["upstream_alert"] = True
    seqs = [dict(h.sequence, **{"rule.id": h.rule.id}) for h in hits if h.sequence is not None]
    if seqs:
        ours["sequence"] = seqs
    corrs = [dict(h.correlation, **{"rule.id": h.rule.id}) for h in hits if h.correlation is not None]
    if corrs:
        ours["correlation"] = corrs
    if moved is not None:
        ours["input"] = moved
    doc[RESERVED] = ours
    return doc


# What an alert document copies of its event: when, where and what ran.
_DOC_CONTEXT = ("@timestamp", "host", "process")


def alert_documents(doc: dict[str, Any], hits: list[Hit]) -> bytes:
    """--alert-docs split: one NDJSON alert document per hit, after the enriched event `doc`; each
    starts with run/doclines.py DOC_START so that line counts can tell it from an event."""
    out = []
    n = len(hits)
    for i, (hit, (event, rule, threat)) in enumerate(zip(hits, alert_for(hits).docs)):
        ours: dict[str, Any] = {"document": "alert", "alert": i, "of": n}
        if hit.suppressed is not None:
            ours["suppressed"] = hit.suppressed
        adoc: dict[str, Any] = {RESERVED: ours}  # first: the encoding starts with DOC_START
        for key in _DOC_CONTEXT:
            if key in doc:
                adoc[key] = doc[key]
        adoc["event"], adoc["rule"] = event, rule
        if threat is not None:
            adoc["threat"] = threat
        out.append(json_line(adoc))
    return b"".join(out)


def json_line(doc: dict[str, Any]) -> bytes:
    """`doc` as one NDJSON line. JSON lets DEL (0x7f) stand raw in a string; a line we write holds no
    raw control byte, so it is escaped (0x7f appears in msgspec's output only inside strings)."""
    return _encode(doc).replace(b"\x7f", b"\\u007f") + b"\n"


def message_line(line: bytes, hits: list[Hit] | None = None, fields: dict[str, Any] | None = None,
                 malformed: str | None = None, split: bool = False) -> bytes:
    """A text line as the NDJSON event `{"message": "<line>"}`; with hits, the ECS `fields` parsed
    from it and the alert fields are added.

    Bytes that are not UTF-8 become U+FFFD, never a `\\xNN` text the input could have spelt itself,
    and the line is marked `"shellsieve": {"malformed": "invalid_utf8"}`, so a U+FFFD the input held
    is told from one we wrote. An alert on a line counted as `malformed` (the event was read by the
    tolerant reader) carries that reason in the same field; without hits such a line stays
    `{"message": ...}` as it always was. `split`: the alert documents follow (`alert_line`)."""
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
    return alert_line(doc, hits, split) if hits else json_line(doc)


def alert_line(doc: dict[str, Any], hits: list[Hit], split: bool) -> bytes:
    """An enriched event as its line; with `split` (--alert-docs split) its alert documents after it."""
    return json_line(doc) + alert_documents(doc, hits) if split else json_line(doc)
