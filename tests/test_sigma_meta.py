"""Sigma correlations and filters run through the real engine: every example of the Sigma
specification's correlation and filter documents (tests/sigma_meta/*.yml), the state bounds, and
state kept across a hot reload. See docs/correlation.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from alert_schema import check_alert

from shellsieve.build import build
from shellsieve.compile.ruleset import Ruleset
from shellsieve.diagnostics import Code
from shellsieve.run.engine import Engine
from shellsieve.settings import Settings

CASES = sorted((Path(__file__).parent / "sigma_meta").glob("*.yml"))
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for p in path:
        doc = doc.setdefault(p, {})
    doc[last] = value


def _stamp(event: dict[str, Any], t: float) -> dict[str, Any]:
    return {"@timestamp": (BASE + timedelta(seconds=t)).isoformat().replace("+00:00", "Z"), **event}


def expand(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A case's events: each item an event (`t`: its time in seconds from BASE) or
    `{repeat: n, t, every, event, vary: {dotted field: "text {i}"}}`."""
    out = []
    for item in items:
        if "repeat" not in item:
            event = dict(item)
            out.append(_stamp(event, event.pop("t", 0)))
            continue
        for i in range(item["repeat"]):
            event = json.loads(json.dumps(item["event"]))
            for f, fmt in item.get("vary", {}).items():
                _put(event, f, fmt.format(i=i))
            out.append(_stamp(event, item.get("t", 0) + i * item.get("every", 0)))
    return out


def ruleset_of(tmp: Path, text: str) -> Ruleset:
    path = tmp / "rules.yml"
    path.write_text(text)
    _, ruleset, diags = build([path])
    errors = [d.render() for d in diags if d.severity == "error"]
    assert not errors
    return ruleset


def alerts(engine: Engine, events: list[dict[str, Any]]) -> dict[int, set[str]]:
    """Index of each event that alerted -> the rule ids of its alert."""
    data = b"".join(json.dumps(e).encode() + b"\n" for e in events)
    out = engine.stream().feed(data, 0.0) + engine.finish()
    got = {}
    for i, line in enumerate(out.splitlines()):
        doc = json.loads(line)
        if "shellsieve" in doc:
            got[i] = {a["rule"]["id"] for a in doc["shellsieve"]["alerts"]}
    return got


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_specification_example(case: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load(case.read_text())
    engine = Engine(ruleset_of(tmp_path, spec["rules"]), Settings(stats_interval_s=0))
    got = alerts(engine, expand(spec["events"]))
    assert got == {e["at"]: set(e["rules"]) for e in spec["expect"]}, spec["description"]
    assert dict(engine.stats.excepted) == spec.get("excepted", {})


CHAIN = (Path(__file__).parent / "sigma_meta" / "chain_example.yml")


def test_correlation_alert_quotes_what_fed_it(tmp_path: Path) -> None:
    spec = yaml.safe_load(CHAIN.read_text())
    engine = Engine(ruleset_of(tmp_path, spec["rules"]), Settings(stats_interval_s=0))
    events = expand(spec["events"])
    out = engine.stream().feed(b"".join(json.dumps(e).encode() + b"\n" for e in events), 0.0)
    doc = json.loads(out.splitlines()[11])
    (corr,) = doc["shellsieve"]["correlation"]
    assert corr["rule.id"] == "b180ead8-d58f-40b2-ae54-c8940995b9b6"
    assert corr["type"] == "temporal_ordered"
    assert corr["group"] == {"winlog.event_data.User": "bob"}
    # the window: the early success (too early to count), the failures' correlation, the success
    assert corr["value"] == 2 and corr["events"] == 3
    assert [q["rule.id"] for q in corr["quoted"]] == ["4d0a2c83-c62c-4ed4-b475-c7e23a9269b8",
                                                      "a8418a5a-5fc4-46b5-b23b-6c73beb19d41",
                                                      "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8"]
    assert corr["start"] == events[9]["@timestamp"]
    assert corr["quoted"][1]["@timestamp"] == events[10]["@timestamp"]
    assert doc["rule"]["id"] == corr["rule.id"]
    check_alert(doc)
    # generate: false (the default): the rules it reads, the inner correlation included, alert only through it
    assert dict(engine.stats.hits) == {"b180ead8-d58f-40b2-ae54-c8940995b9b6": 1}


_MISSING = """\
title: Over a rule not loaded
id: 11111111-2222-4333-8444-555555555555
correlation:
    type: event_count
    rules: [no_such_rule]
    group-by: [User]
    timespan: 1m
    condition: {gte: 2}
"""


def test_a_reference_to_no_loaded_rule_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "corr.yml"
    path.write_text(_MISSING)
    _, ruleset, diags = build([path])
    (d,) = [d for d in diags if d.code is Code.UNKNOWN_REFERENCE]
    assert d.severity == "error" and d.construct == "no_such_rule"
    assert d.location.path == str(path) and d.location.line == 1
    assert "no_such_rule" in d.render() and not ruleset.correlations


_FLOOD = """\
title: Many from one address
id: 21111111-2222-4333-8444-555555555555
correlation:
    type: event_count
    rules: [conn]
    group-by: [source.ip]
    timespan: 1h
    condition: {gte: 1000000}
---
title: Connection
id: 21111111-2222-4333-8444-555555555556
name: conn
logsource: {category: network}
detection: {selection: {event.action: connect}, condition: selection}
"""


def _flood(engine: Engine, n: int) -> None:
    stream = engine.stream()
    for start in range(0, n, 10_000):
        block = b"".join(b'{"@timestamp":"2026-01-01T00:00:00Z","event":{"action":"connect"},"source":{"ip":"k%d"}}\n'
                         % i for i in range(start, min(n, start + 10_000)))
        stream.feed(block, 0.0)


@pytest.mark.parametrize("n", [100_000, pytest.param(1_000_000, marks=pytest.mark.slow)])
def test_distinct_keys_stay_within_the_bound(tmp_path: Path, n: int) -> None:
    engine = Engine(ruleset_of(tmp_path, _FLOOD), Settings(stats_interval_s=0, max_open_sequences=5_000))
    _flood(engine, n)
    counts = engine.correlation_counts()
    assert counts["correlation_groups"] == 5_000
    assert counts["correlation_evictions"] == n - 5_000
    assert engine.snapshot()["correlation_evictions"] == n - 5_000


def test_state_is_kept_across_a_hot_reload_for_unchanged_correlations(tmp_path: Path) -> None:
    spec = yaml.safe_load(CHAIN.read_text())
    engine = Engine(ruleset_of(tmp_path, spec["rules"]), Settings(stats_interval_s=0))
    events = expand(spec["events"])
    first, rest = events[:11], events[11:]
    assert alerts(engine, first) == {}
    # the same rules, one title changed: the correlations' text is unchanged, their state stays
    changed = tmp_path / "again"
    changed.mkdir()
    summary = engine.swap(ruleset_of(changed, spec["rules"].replace("Successful login", "Login OK")))
    assert summary["correlation_groups_kept"] >= 1
    assert alerts(engine, rest) == {0: {"b180ead8-d58f-40b2-ae54-c8940995b9b6"}}
    # the outer correlation's text changed: it starts afresh (the inner one's state is kept, but its
    # hit is spent: the outer one held it)
    engine2 = Engine(ruleset_of(tmp_path, spec["rules"]), Settings(stats_interval_s=0))
    assert alerts(engine2, first) == {}
    other = tmp_path / "other"
    other.mkdir()
    engine2.swap(ruleset_of(other, spec["rules"].replace("timespan: 10m", "timespan: 11m", 1)))
    assert alerts(engine2, rest) == {}


_EXTENDED = """\
title: Extended condition
id: 31111111-2222-4333-8444-555555555555
correlation:
    type: temporal
    rules: [a, b]
    group-by: [User]
    timespan: 1m
    condition: a and not b
"""
_FIELDREF_FILTER = """\
title: Filter by a field reference
logsource: {category: process_creation}
filter:
    rules: any
    selection: {CommandLine|fieldref: ParentCommandLine}
    condition: not selection
"""
# the rules the correlation names: `a` (id ...556) on "x", `b` (id ...557) on "y"
_RULE = "".join(f"""\
---
title: {name}
id: 31111111-2222-4333-8444-55555555555{n}
name: {name}
logsource: {{category: process_creation}}
detection: {{selection: {{CommandLine|contains: {text}}}, condition: selection}}
""" for name, n, text in (("a", 6, "x"), ("b", 7, "y")))


@pytest.mark.parametrize("text", [_EXTENDED, _FIELDREF_FILTER], ids=["extended_condition", "fieldref_filter"])
def test_what_does_not_run_is_skipped_with_the_reason(tmp_path: Path, text: str) -> None:
    path = tmp_path / "meta.yml"
    path.write_text(text + _RULE)
    _, ruleset, diags = build([path])
    (d,) = [d for d in diags if d.severity == "error"]
    assert d.code is Code.UNSUPPORTED_CONSTRUCT and d.location.line == 1
    assert not ruleset.correlations and not ruleset.filters and len(ruleset.rules) == 2


def test_evictions_are_counted_once_across_a_reload(tmp_path: Path) -> None:
    engine = Engine(ruleset_of(tmp_path, _FLOOD), Settings(stats_interval_s=0, max_open_sequences=10))
    _flood(engine, 25)
    again = tmp_path / "again"
    again.mkdir()
    assert engine.swap(ruleset_of(again, _FLOOD))["correlation_groups_kept"] == 10
    _flood(engine, 5)  # keys seen before: the least recently fed are evicted again
    assert engine.correlation_counts()["correlation_evictions"] == 15 + 5
