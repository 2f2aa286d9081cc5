"""Elastic detection-rules TOML -> model: metadata, threat, severity; the query goes to eql.py or kql.py."""

from __future__ import annotations

import datetime
import tomllib
import uuid
from pathlib import Path
from typing import Any

import eql

from shellsieve.diagnostics import Code, Diagnostic, Location
from shellsieve.errors import UnsupportedError
from shellsieve.model.rule import Related, Revision, Rule, Threat
from shellsieve.rules.attack import complete
from shellsieve.rules.eql import parse_eql
from shellsieve.rules.kql import parse_kql
from shellsieve.rules.positions import toml_key_line
from shellsieve.rules.source import RuleFileError, read_rule_file, rule_text
from shellsieve.model.severity import label_risk

__all__ = ["load_elastic"]

# Rule types whose meaning needs history or models that a per-event filter does not have.
UNSUPPORTED_TYPES = {"new_terms", "threshold", "machine_learning", "threat_match", "esql"}


def _threats(rule: dict[str, Any]) -> tuple[Threat, ...]:
    """One Threat per (tactic, technique, sub-technique) of the [[rule.threat]] blocks, references kept."""
    out: list[Threat] = []
    for t in rule.get("threat", []):
        tactic = t.get("tactic", {})
        for tech in t.get("technique", []) or [{}]:
            for sub in tech.get("subtechnique", []) or [{}]:
                threat = complete(Threat(
                    tactic.get("id"), tactic.get("name"), tech.get("id"), tech.get("name"),
                    sub.get("id"), sub.get("name"), tactic.get("reference"), tech.get("reference"),
                    sub.get("reference")))
                if threat not in out:
                    out.append(threat)
    return tuple(out)


def _uuid(rid: str) -> str:
    """ECS rule.uuid: the rule_id where it is a UUID (detection-rules' always are)."""
    try:
        return str(uuid.UUID(rid))
    except ValueError:
        return ""


def _diag(code: Code, sev: str, path: Path, line: int, rid: str | None, construct: str, msg: str,
          group: str = "") -> Diagnostic:
    return Diagnostic(code, sev, Location(str(path), line), rid, construct, msg, group)


def _group(language: str, rtype: str) -> str:
    """Coverage group: the query language, with the rule type when it is not a plain query."""
    return language if rtype in ("query", "eql", language) else f"{language} {rtype}".strip()


def load_elastic(path: Path, data: bytes | None = None) -> tuple[list[Rule], list[Diagnostic]]:
    """One detection-rules TOML file holds one rule (`data`: its bytes, if already read)."""
    try:
        text = rule_text(read_rule_file(path) if data is None else data)
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RuleFileError) as exc:
        return [], [_diag(Code.PARSE, "error", path, 0, None, "", str(exc))]
    rule = doc.get("rule")
    if not isinstance(rule, dict):
        return [], [_diag(Code.SCHEMA, "error", path, 0, None, "[rule]", "no [rule] table")]
    rid = rule.get("rule_id")
    rule_line = toml_key_line(text, "rule_id") or toml_key_line(text, "[rule]")
    missing = [k for k in ("rule_id", "name", "type") if k not in rule]
    if missing:
        return [], [_diag(Code.SCHEMA, "error", path, rule_line, rid, ", ".join(missing),
                          f"[rule] lacks {', '.join(missing)}")]
    rtype, language = rule["type"], rule.get("language", "")
    group = _group(language, rtype)
    if rtype in UNSUPPORTED_TYPES or language == "esql":
        kind = "esql" if language == "esql" else rtype
        return [], [_diag(Code.UNSUPPORTED_TYPE, "unsupported", path, rule_line, rid, f"type = {kind!r}",
                          f"{kind} rules need state across events that shellsieve does not keep", group)]
    query_line = toml_key_line(text, "query")
    if not isinstance(rule.get("query"), str):
        return [], [_diag(Code.SCHEMA, "error", path, rule_line, rid, "query", "[rule] query is not a string", group)]
    try:
        if language == "eql":
            query = parse_eql(rule["query"])
        elif language == "kuery":
            query = parse_kql(rule["query"])
        else:
            return [], [_diag(Code.UNSUPPORTED_TYPE, "unsupported", path, rule_line, rid,
                              f"language = {language!r}", f"query language {language!r} is not supported", group)]
    except UnsupportedError as exc:
        return [], [_diag(Code.UNSUPPORTED_CONSTRUCT, "error", path, query_line + exc.line, rid,
                          exc.construct, exc.message, group)]
    except eql.EqlError as exc:
        line = query_line + getattr(exc, "line", 0) + 1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [], [_diag(Code.PARSE, "error", path, line, rid, getattr(exc, "source", "") or "", first, group)]
    try:
        meta = doc.get("metadata", {})
        meta = meta if isinstance(meta, dict) else {}
        return [_rule(rule, rid, path, rule_line, language, group, query, meta)], []
    except (AttributeError, TypeError, ValueError, OverflowError) as exc:  # risk_score inf, bad date ...
        return [], [_diag(Code.SCHEMA, "error", path, rule_line, rid, "[rule]", f"a field has the wrong type: {exc}",
                          group)]


def _date(meta: dict[str, Any], key: str) -> datetime.date | None:
    """A [metadata] date: detection-rules writes "2026/07/20"; a bare TOML date is taken too."""
    value = meta.get(key)
    if isinstance(value, datetime.datetime):  # a TOML date-time: its day (a date and a datetime do not compare)
        return value.date()
    if value is None or isinstance(value, datetime.date):
        return value
    try:
        return datetime.datetime.strptime(str(value), "%Y/%m/%d").date()
    except ValueError:
        raise ValueError(f"[metadata] {key} = {value!r} is not a YYYY/MM/DD date") from None


def _revision(rule: dict[str, Any], meta: dict[str, Any]) -> Revision:
    """Which version of its rule_id this file is: `version` (exported and packaged rules), the
    [metadata] dates, and [[metadata.related]] (a shellsieve field, as Sigma's `related`: the
    upstream rule a changed copy was derived from)."""
    version = rule.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError(f"[rule] version = {version!r} is not an integer")
    related = meta.get("related", [])
    if not isinstance(related, list) or not all(isinstance(r, dict) and "id" in r for r in related):
        raise ValueError("[[metadata.related]] must be tables with an id (and a type)")
    return Revision(version, _date(meta, "updated_date"), _date(meta, "creation_date"),
                    tuple(Related(str(r["id"]), str(r.get("type", "derived"))) for r in related))


def _rule(rule: dict[str, Any], rid: Any, path: Path, rule_line: int, language: str, group: str,
          query: Any, meta: dict[str, Any]) -> Rule:
    severity, default_risk = label_risk(str(rule.get("severity", "medium")))
    return Rule(
        id=str(rid), name=str(rule["name"]), ruleset="elastic", query=query,
        location=Location(str(path), rule_line), severity=severity,
        risk_score=int(rule.get("risk_score", default_risk)), level=str(rule.get("severity", "")),
        threats=_threats(rule), references=tuple(rule.get("references", ())),
        description=str(rule.get("description", "")).strip(), language=language, group=group,
        tags=tuple(str(t).lower() for t in rule.get("tags", ())), status=str(meta.get("maturity", "")).lower(),
        revision=_revision(rule, meta), uuid=_uuid(str(rid)), version=_version(rule, meta),
        author=tuple(str(a) for a in _list(rule.get("author"))), license=str(rule.get("license", "")),
        category=str(rule.get("type", "")),
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _version(rule: dict[str, Any], meta: dict[str, Any]) -> str:
    """ECS rule.version: [rule] version, else the [metadata] updated_date (as Sigma's `modified`)."""
    if rule.get("version") is not None:
        return str(rule["version"])
    return str(meta.get("updated_date", "")).replace("/", "-")
