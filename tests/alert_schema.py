"""Validation of alerts against docs/alert.schema.json, and the ECS parallel-array rule the schema
cannot state (threat.*.id/name/reference of equal length)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "alert.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def parallel_errors(threat: Any) -> list[str]:
    """Where a flat ECS threat object's parallel arrays differ in length."""
    if not isinstance(threat, dict):
        return []
    out = []
    for path, obj in (("tactic", threat.get("tactic")), ("technique", threat.get("technique")),
                      ("technique.subtechnique", (threat.get("technique") or {}).get("subtechnique"))):
        if isinstance(obj, dict):
            lengths = {k: len(obj.get(k, [])) for k in ("id", "name", "reference")}
            if len(set(lengths.values())) > 1:
                out.append(f"threat.{path}: {lengths}")
    return out


def check_alert(doc: dict[str, Any]) -> None:
    """Fail with every schema error of an alert (an enriched event or an alert document)."""
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(doc)]
    ours = doc.get("shellsieve", {})
    if not ours.get("upstream_alert"):
        errors += parallel_errors(doc.get("threat"))
    assert not errors, errors
