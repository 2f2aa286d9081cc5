"""Differential test: shellsieve's verdict against a plain reference evaluator (tests/sigma_reference.py,
pySigma's parsed rules + Python `re`), for every Sigma rule of ../shared/rulesets/sigma it loads.

Events are built from each rule's own values: aimed at the condition being true and at it being
just false (values that match, case variants, near misses, missing fields), plus random mixes.
The reference reads the event by Sigma field names; shellsieve gets the same event nested under
the ECS names of plugin/model/fields.py (`a0` is element 0 of `process.args`). A disagreement fails
with the rule id, the file and the event.
"""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaString,
    SpecialChars,
)

import sigma_reference
from conftest import RULESETS, rule_ids, run_events
from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset
from shellsieve.model.fields import SIGMA_FIELDS
from shellsieve.rules.sigma import CATEGORIES, OS_TYPES

SIGMA = RULESETS / "sigma"
EVENTS_PER_RULE = 12


def _instance(value: SigmaString, rng: random.Random) -> str:
    out = []
    for p in value.iter_parts():
        if p is SpecialChars.WILDCARD_MULTI:
            out.append(rng.choice(["", "07"]))
        elif p is SpecialChars.WILDCARD_SINGLE:
            out.append("7")
        else:
            out.append(str(p))
    text = "".join(out)
    if not isinstance(value, SigmaCasedString) and rng.random() < 0.3:
        text = text.upper() if rng.random() < 0.5 else text.swapcase()
    return text


def _hit(field: str | None, value: Any, flat: dict[str, Any], rng: random.Random) -> None:
    """Set fields so that `field <value>` holds."""
    if isinstance(value, SigmaExpansion):
        _hit(field, rng.choice(value.values), flat, rng)
    elif field is None:  # a keyword
        if isinstance(value, SigmaString):
            flat[rng.choice(sigma_reference.KEYWORD_FIELDS)] = "07 " + _instance(value, rng) + " 07"
    elif isinstance(value, SigmaString):
        flat[field] = _instance(value, rng)
    elif isinstance(value, SigmaCIDRExpression):
        net = ipaddress.ip_network(str(value.network), strict=False)
        flat[field] = str(net.network_address + (1 if net.num_addresses > 1 else 0))
    elif isinstance(value, SigmaCompareExpression):
        n = value.number.number
        flat[field] = n + 1 if value.op in (CompareOperators.GT, CompareOperators.GTE) else n - 1
    elif isinstance(value, SigmaNumber):
        flat[field] = value.number
    elif isinstance(value, SigmaExists):
        if value.exists:
            flat[field] = "x"
        else:
            flat.pop(field, None)
    elif isinstance(value, SigmaNull):
        flat.pop(field, None)
    elif isinstance(value, SigmaFieldReference) and value.field in flat:
        flat[field] = flat[value.field]


def _miss(field: str | None, value: Any, flat: dict[str, Any], rng: random.Random) -> None:
    """Set fields so that `field <value>` just fails (or leave the field out). A field another
    part of the condition has set is left alone: that keeps `selection and not filter` reachable."""
    if field is not None and field in flat:
        return
    _hit(field, value, flat, rng)
    key = field or next((k for k in sigma_reference.KEYWORD_FIELDS if k in flat), None)
    if key is None or key not in flat or not isinstance(flat[key], str):
        return
    v = flat[key]
    flat[key] = rng.choice([v[:-1], "~" + v, v + "~", v[1:]]) if v else "~"
    if rng.random() < 0.2:
        del flat[key]


def _satisfy(node: Any, want: bool, flat: dict[str, Any], rng: random.Random) -> None:
    if isinstance(node, ConditionNOT):
        _satisfy(node.args[0], not want, flat, rng)
    elif isinstance(node, (ConditionAND, ConditionOR)):
        every = want == isinstance(node, ConditionAND)
        for a in node.args if every else [rng.choice(node.args)]:
            _satisfy(a, want, flat, rng)
    elif isinstance(node, (ConditionFieldEqualsValueExpression, ConditionValueExpression)):
        field = node.field if isinstance(node, ConditionFieldEqualsValueExpression) else None
        (_hit if want else _miss)(field, node.value, flat, rng)


def _ecs(flat: dict[str, Any]) -> dict[str, Any]:
    """The event under ECS names, as shellsieve reads it."""
    doc: dict[str, Any] = {}
    args: dict[int, Any] = {}
    for name, value in flat.items():
        ecs = SIGMA_FIELDS.get(name, name)
        if ecs.startswith("process.args."):
            args[int(ecs.rsplit(".", 1)[1])] = value
            continue
        node = doc
        *parents, leaf = ecs.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = value
    if args:
        doc.setdefault("process", {})["args"] = [args.get(i, "") for i in range(max(args) + 1)]
    return doc


def _rules() -> list[tuple[Path, SigmaRule]]:
    out = []
    for f in sorted(SIGMA.rglob("*.yml")):
        try:
            out.extend((f, r) for r in SigmaCollection.from_yaml(f.read_text()).rules if isinstance(r, SigmaRule))
        except Exception:  # noqa: BLE001 - files pySigma cannot parse are the loader's business
            continue
    return out


@pytest.fixture(scope="module")
def compiled() -> Ruleset:
    if not SIGMA.is_dir():
        pytest.skip(f"{SIGMA} is absent: the shared public rulesets are not checked out next to the repo")
    _, ruleset, _ = build([SIGMA])
    return ruleset


def test_sigma_rules_agree_with_the_reference(compiled: Ruleset) -> None:
    loaded = {cr.rule.id for cr in compiled.rules}
    rng = random.Random(20261122)
    compared = positives = 0
    disagreements: list[str] = []
    for path, rule in _rules():
        rid = str(rule.id)
        if rid not in loaded:
            continue
        conditions = [c.parse() for c in rule.detection.parsed_condition]
        flats: list[dict[str, Any]] = []
        for i in range(EVENTS_PER_RULE):
            flat: dict[str, Any] = {}
            for c in conditions:
                _satisfy(c, i % 2 == 0, flat, rng)
            flats.append(flat)
        expected = [sigma_reference.matches(rule, f) for f in flats]
        events = [_ecs(f) for f in flats]
        product = str(rule.logsource.product or "")
        category = CATEGORIES.get(str(rule.logsource.category or ""))
        for ev in events:  # the reference ignores the logsource: the events come from it
            if product in OS_TYPES:
                ev.setdefault("host", {}).setdefault("os", {})["type"] = product
            if category is not None:
                ev.setdefault("event", {})["category"] = [category]
        got = [rid in rule_ids(d) for d in run_events(compiled, events)]
        compared += 1
        positives += any(expected)
        for flat, ev, want, have in zip(flats, events, expected, got, strict=True):
            if want != have:
                disagreements.append(f"{rid} ({path.name}): reference says {want}, shellsieve {have}\n"
                                     f"  sigma event: {json.dumps(flat)}\n  ecs event: {json.dumps(ev)}")
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(disagreements[:15])
    assert compared >= 1300, f"only {compared} rules compared"
    # regex values get no generated match, so not every rule is reached; 870 of 1,393 were when written
    assert positives >= compared * 0.6, f"only {positives} of {compared} rules saw a matching event"
