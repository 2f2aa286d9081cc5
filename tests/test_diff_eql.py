"""Differential test: shellsieve's verdict against Elastic's own `eql` Python engine, rule by rule.

For every single-event EQL rule of ../shared/rulesets/elastic/linux that both can run, events are
built from the rule's own literals (values that match, values that just miss, missing fields) and
both engines judge them. A disagreement fails with the rule id, the query and the event.

Where the oracle's semantics differ from Elasticsearch's (which shellsieve follows), the events
stay out of that corner rather than hide it:
- eql's PythonEngine compares every string case-insensitively (legacy EQL; `==`, `like` and
  `regex` included), Elasticsearch's `==`, `in`, `like`, `regex` are case-sensitive. Rule literals
  themselves put case-only differences into events (`"*exec*"` against "echo EXEC"), so the rules
  are compiled here with every string predicate made case-insensitive: the same loader, compiler and
  matcher, with only the case flag changed. The case rules are tested in tests/test_rules_eql.py.
- eql does not apply a comparison to each element of an array (`["a", "x"] == "x"` is false
  there, true in Elasticsearch): generated field values are scalars.
- eql does not match a number against its text ("5" == 5 is false): numbers stay numbers.
- eql uses three-valued logic: a comparison on a missing field is null, and `not null` is null, so
  `not process.executable in (...)` fails on an event without process.executable. Elasticsearch
  runs `not` as a must_not query, which a missing field satisfies. Every field a rule compares is
  therefore present in the generated events (only `?field` / null checks see missing fields).
Case rules and arrays are pinned down by tests/test_rules_eql.py instead.
"""

from __future__ import annotations

import ipaddress
import json
import random
import tomllib
from pathlib import Path
from typing import Any

import eql
import msgspec
import pytest
from eql import ast
from eql.events import Event

from conftest import RULESETS, rule_ids, run_events
from shellsieve.compile.ruleset import Ruleset, compile_rules
from shellsieve.model.expr import AllOf, AnyOf, Expr, Not, Predicate
from shellsieve.rules.discover import load_rules

ELASTIC = RULESETS / "elastic" / "linux"
EVENTS_PER_RULE = 24


def _oracle_query(text: str) -> Any:
    with eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions:
        return eql.parse_query(text)


def _field_name(node: Any) -> str | None:
    return ".".join(str(p) for p in [node.base, *node.path]) if isinstance(node, ast.Field) else None


def _literals(node: Any) -> list[Any]:
    return [n.value for n in node if isinstance(n, (ast.String, ast.Number))]


def _near_misses(value: Any) -> list[Any]:
    """Values that differ from `value` by more than case: an extra char, a dropped char, a prefix."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return []
    if isinstance(value, (int, float)):
        return [value + 1, value - 1]
    return [value + "0", value[:-1], "0" + value] if value else ["0"]


def _wildcard_instances(pattern: str) -> list[str]:
    """Strings a `:` / like pattern matches (`*` -> "", "07"; `?` -> "7") and ones it just misses."""
    plain = pattern.replace("?", "7")
    hits = [plain.replace("*", ""), plain.replace("*", "07")]
    return hits + [h + "~" for h in hits if not pattern.endswith("*")] + ["~" + hits[0]] * (not pattern.startswith("*"))


def _cidr_instances(network: str) -> list[str]:
    net = ipaddress.ip_network(network, strict=False)
    inside = net.network_address + (1 if net.num_addresses > 1 else 0)
    outside = net.broadcast_address + 1 if int(net.broadcast_address) < (2 ** net.max_prefixlen - 1) else None
    return [str(inside)] + ([str(outside)] if outside is not None else [])


def _candidates(query: Any) -> dict[str, list[Any]]:
    """Per field, the values worth trying: the rule's literals, instances of its patterns, near misses."""
    values: dict[str, list[Any]] = {}

    def add(field: str | None, vals: list[Any]) -> None:
        if field is not None:
            values.setdefault(field, []).extend(vals)

    for node in query:
        if isinstance(node, ast.Comparison):
            field, lits = _field_name(node.left), _literals([node.right])
            add(field, lits + [m for v in lits for m in _near_misses(v)])
        elif isinstance(node, ast.InSet):
            lits = _literals(node.container)
            add(_field_name(node.expression), lits + [m for v in lits for m in _near_misses(v)])
        elif isinstance(node, ast.FunctionCall) and node.arguments:
            field, lits = _field_name(node.arguments[0]), [v for v in _literals(node.arguments[1:]) if isinstance(v, str)]
            name = node.name.lower().rstrip("~")
            if name in ("wildcard", "match", "matchlite"):
                add(field, [i for v in lits for i in _wildcard_instances(v)])
            elif name == "cidrmatch":
                add(field, [i for v in lits for i in _cidr_instances(v)])
            elif name in ("startswith", "endswith", "stringcontains"):
                add(field, [x for v in lits for x in (v, "07" + v + "07", v[1:])])
            else:
                add(field, lits)
    out = {f: list(dict.fromkeys(v for v in vals if isinstance(v, (str, int, float)))) for f, vals in values.items()}
    return {f: v for f, v in out.items() if v}


def _hit_value(node: Any, rng: random.Random) -> tuple[str | None, Any]:
    """(field, a value that satisfies this leaf), or (None, None) for leaves not handled here."""
    if isinstance(node, ast.Comparison):
        field, lits = _field_name(node.left), _literals([node.right])
        if not lits:
            return None, None
        v = lits[0]
        if node.comparator == "!=":
            return field, (_near_misses(v) or [None])[0]
        if node.comparator in ("<", ">") and isinstance(v, (int, float)):
            return field, v + (1 if node.comparator == ">" else -1)
        return field, v
    if isinstance(node, ast.InSet):
        lits = _literals(node.container)
        return (_field_name(node.expression), rng.choice(lits)) if lits else (None, None)
    if isinstance(node, ast.FunctionCall) and node.arguments:
        field = _field_name(node.arguments[0])
        lits = [v for v in _literals(node.arguments[1:]) if isinstance(v, str)]
        if not lits:
            return None, None
        v, name = rng.choice(lits), node.name.lower().rstrip("~")
        made = {"wildcard": lambda: rng.choice(_wildcard_instances(v)[:2]), "startswith": lambda: v + "07",
                "endswith": lambda: "07" + v, "stringcontains": lambda: "07" + v + "07",
                "cidrmatch": lambda: _cidr_instances(v)[0]}.get(name)
        return (field, made()) if made else (None, None)
    return None, None


def _satisfy(node: Any, want: bool, flat: dict[str, Any], rng: random.Random) -> None:
    """Assign fields so that `node` is likely `want` (later terms may overwrite earlier ones: the
    oracle judges the result either way, so a conflict costs only a positive case)."""
    if isinstance(node, ast.Not):
        _satisfy(node.term, not want, flat, rng)
    elif isinstance(node, (ast.And, ast.Or)):
        every = want == isinstance(node, ast.And)
        terms = node.terms if every else [rng.choice(node.terms)]
        for t in terms:
            _satisfy(t, want, flat, rng)
    elif isinstance(node, ast.IsNull):
        field = _field_name(node.expr)
        if field and want:
            flat.pop(field, None)
    elif isinstance(node, ast.IsNotNull):
        field = _field_name(node.expr)
        if field and want:
            flat.setdefault(field, "x")
    else:
        field, value = _hit_value(node, rng)
        if field is None:
            return
        if want:
            flat[field] = value
        else:
            misses = _near_misses(value)
            flat[field] = rng.choice(misses) if misses else "~"


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in flat.items():
        node = doc
        *parents, leaf = key.split(".")
        for p in parents:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):  # a.b set as a value and a.b.c wanted: keep the first
                break
            node = nxt
        else:
            node[leaf] = value
    return doc


def _events(query: Any, category: str, rng: random.Random) -> list[dict[str, Any]]:
    cands = _candidates(query)
    out: list[dict[str, Any]] = []
    for i in range(EVENTS_PER_RULE):
        flat: dict[str, Any] = {}
        if i % 3 == 2:  # a random mix of literals, misses and gaps
            for field, vals in cands.items():
                flat[field] = rng.choice(vals)
        else:  # aimed at the query being true (i % 3 == 0) or just false
            _satisfy(query, i % 3 == 0, flat, rng)
        for field, vals in cands.items():  # no compared field missing (see the module docstring)
            flat.setdefault(field, "~" + str(vals[0]))
        if category != "any":
            flat["event.category"] = category
        out.append(_nest(flat))
    return out


def _oracle(query: Any, events: list[dict[str, Any]]) -> list[bool]:
    verdicts = []
    for ev in events:
        hits: list[Any] = []
        engine = eql.PythonEngine()
        engine.add_output_hook(hits.append)
        engine.add_query(query)
        engine.stream_events([Event(ev.get("event", {}).get("category", "any"), 0, ev)])
        verdicts.append(bool(hits))
    return verdicts


def _eql_rules() -> list[tuple[Path, str, str]]:
    out = []
    for f in sorted(ELASTIC.glob("*.toml")):
        rule = tomllib.loads(f.read_text())["rule"]
        if rule.get("language") == "eql":
            out.append((f, rule["rule_id"], rule["query"]))
    return out


def _fold_case(expr: Expr) -> Expr:
    if isinstance(expr, Predicate):
        return msgspec.structs.replace(expr, case_sensitive=False)
    if isinstance(expr, Not):
        return Not(_fold_case(expr.term))
    if isinstance(expr, (AllOf, AnyOf)):
        return type(expr)(tuple(_fold_case(t) for t in expr.terms))
    return expr


@pytest.fixture(scope="module")
def compiled() -> Ruleset:
    """The single-event EQL rules, case-folded (see the module docstring), in one database."""
    if not ELASTIC.is_dir():
        pytest.skip(f"{ELASTIC} is absent: the shared public rulesets are not checked out next to the repo")
    rules, _ = load_rules(sorted(ELASTIC.glob("*.toml")))
    folded = [msgspec.structs.replace(r, query=_fold_case(r.query)) for r in rules
              if r.language == "eql" and not r.is_sequence]
    ruleset, _ = compile_rules(folded)
    return ruleset


def test_eql_rules_agree_with_the_eql_engine(compiled: Ruleset) -> None:
    loaded = {cr.rule.id for cr in compiled.rules if not cr.rule.is_sequence}
    rng = random.Random(20261122)
    compared = positives = 0
    disagreements: list[str] = []
    for path, rid, text in _eql_rules():
        if rid not in loaded:
            continue
        try:
            query = _oracle_query(text)
        except eql.EqlError:
            continue
        first = query.first
        if not isinstance(first, ast.EventQuery) or query.pipes:
            continue
        events = _events(first.query, first.event_type, rng)
        try:
            expected = _oracle(query, events)
        except eql.EqlError:  # a function the Python engine lacks (e.g. `cidrmatch` spelled in lower case)
            continue
        got = [rid in rule_ids(doc) for doc in run_events(compiled, events)]
        compared += 1
        positives += any(expected)
        for ev, want, have in zip(events, expected, got, strict=True):
            if want != have:
                disagreements.append(f"{rid} ({path.name}): eql says {want}, shellsieve {have}\n"
                                     f"  query: {' '.join(text.split())[:300]}\n  event: {json.dumps(ev)}")
    assert compared >= 200, f"only {compared} rules compared"
    assert positives >= compared // 3, f"only {positives} of {compared} rules saw a matching event"
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(disagreements[:20])
