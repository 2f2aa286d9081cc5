"""Differential test: shellsieve's verdicts against Elastic's `eql` Python engine, rule by rule.

For every EQL rule of /work/shared/rulesets/elastic/linux that both shellsieve loads and the `eql`
package can run, seeded events are built from the rule's own literals (tests/eql_events.py): values
that match, values that just miss, case variants, arrays, missing fields, numbers; sequence rules
get streams of events sharing their `by` values, inside and outside maxspan. Both engines judge
each event; every disagreement is collected and reported with rule id, query and event(s).

The oracle is `eql.PythonEngine` (boolean logic, field access, `==`/`in`/ordering, null checks,
`length`, sequences with `by`, `maxspan`, `until`), set to Elasticsearch semantics where eql 1.0.1
has legacy ones. Each adaptation names the eql source it works around:

1. Case. eql folds every string comparison while the global `eql.utils.CASE_INSENSITIVE` is True
   (the default: `fold_case` in utils.py, `lowercase` in engine.py `_convert_comparison`,
   `regex_flags` in functions.py), so `==`, `in`, `like` and `regex` are case-insensitive there.
   The oracle runs with CASE_INSENSITIVE = False. The parser, though, drops the `~` of `like~`,
   `in~`, `regex~`, `startsWith~`... and turns `:`/`like`/`like~` into one `wildcard` call
   (parser.py `string_predicate`, `in_set`, `function_call`), so a walker subclass (_EsWalker)
   keeps each operator's case rule in the function name it emits (`es:wildcard~`, `es:in~`, ...).
2. Wildcards. eql's `wildcard` knows only `*` (functions.py `Wildcard.to_regex`); Elasticsearch's
   `:`/`like` also take `?` for one character. `es:wildcard` does both; a backslash is literal
   (the rules' `"*\\x*"` patterns mean a literal backslash).
3. Regex. eql's `match` uses `re.match`, anchored at the start only (functions.py `Match.run`);
   a Lucene regex matches the whole value, so `es:regex` uses `re.fullmatch` (DOTALL: Lucene's `.`
   matches a newline too).
4. Arrays. eql applies a comparison to the whole value (engine.py `check_types`: a list never
   equals a string; `_convert_in_set` raises on an unhashable list). Elasticsearch matches a
   multi-valued field when any element does. The oracle applies each comparison to each element
   (_EsEngine._any_element); `x != v` runs as `not x == v`, Elasticsearch's must_not(term).
5. Missing fields. eql is three-valued: a comparison with a missing field is null and `not null`
   is null (engine.py `_convert_not`, `check_types`), so `not process.name == "x"` fails on an
   event without process.name. Elasticsearch runs the condition as a query: the comparison is
   false and its must_not true. The oracle makes each comparison two-valued (null -> false).
6. Event category. The Python engine routes events by `Event.type`; Elasticsearch's
   `process where` is a term query on `event.category` (case-sensitive, any element). The test
   derives `Event.type` from the event's own `event.category` that way.
7. Numbers vs text. eql never matches 5 against "5" (`check_types`) while Elasticsearch indexes
   both as the keyword "5": the generator keeps numbers to numeric comparisons.
8. Sequence join keys. eql folds `by` values (engine.py `_convert_key` -> `_remove_case`); with
   CASE_INSENSITIVE False they are exact, as Elasticsearch's keyword terms are. Streams never
   lack a `by` value nor hold an array in one (eql would join on None / fail to hash a list).
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import itertools
import json
import random
import re
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from unittest import mock

import eql
import pytest
from eql import ast
from eql.engine import Scope
from eql.events import Event

from conftest import rule_ids, run_events
from eql_events import events_for, get_path, leaves, satisfying, set_path, variant_values
from shellsieve.cli import build
from shellsieve.compile.ruleset import Ruleset

ELASTIC = Path("/work/shared/rulesets/elastic/linux")
SEED = 20250117
MIN_SINGLE = 200  # single-event rules compared: the test must not pass on a handful
MIN_SEQUENCE = 30
T0 = 1_700_000_000.0  # stream start, epoch seconds
STREAM_ROUNDS = 2  # rounds of streams per sequence rule (each round: 6-8 streams)


# -- the oracle: eql's walker and engine, set to Elasticsearch semantics -------------------------

_PREDICATES = {":": "es:wildcard~", "like~": "es:wildcard~", "like": "es:wildcard",
               "regex": "es:regex", "regex~": "es:regex~"}
_STRING_FUNCS = {"startswith", "endswith", "stringcontains", "cidrmatch"}


class _EsWalker(eql.parser.LarkToEQL):  # type: ignore[misc]
    """Keeps the case rule eql's walker drops (adaptation 1): one function name per operator."""

    def string_predicate(self, node: Any) -> Any:
        info = super().string_predicate(node)
        info.node = ast.FunctionCall(_PREDICATES[str(node["STRING_PREDICATE"])], list(info.node.arguments))
        return info

    def in_set(self, node: Any) -> Any:
        info = super().in_set(node)
        if node.get("IN") == "in~":
            info.node = ast.FunctionCall("es:in~", [info.node.expression, *info.node.container])
        return info

    def function_call(self, node: Any, prev_node: Any = None, prev_arg: Any = None) -> Any:
        info = super().function_call(node, prev_node, prev_arg)
        raw = self.method_name(node["method_name"]) if node.data == "method" else self.name(node.children[0])
        if isinstance(info.node, ast.FunctionCall) and info.node.name.lower() in _STRING_FUNCS:
            tilde = "~" if str(raw).endswith("~") else ""
            info.node = ast.FunctionCall(f"es:{info.node.name.lower()}{tilde}", list(info.node.arguments))
        return info


def parse_oracle(text: str) -> Any:
    """The query as eql parses it in Elasticsearch syntax, with the case rules kept, unoptimized."""
    with ExitStack() as stack:
        for cfg in (eql.parser.elasticsearch_syntax, eql.parser.ignore_missing_functions,
                    eql.parser.allow_runs, eql.parser.skip_optimizations):
            stack.enter_context(cfg)
        stack.enter_context(mock.patch.object(eql.parser, "LarkToEQL", _EsWalker))
        return eql.parse_query(text)


@contextmanager
def case_sensitive_eql() -> Iterator[None]:
    """eql's default folds every string (adaptation 1); Elasticsearch's default is exact."""
    with mock.patch.object(eql.utils, "CASE_INSENSITIVE", False):
        yield


def _flags(sensitive: bool) -> int:
    return re.DOTALL | (0 if sensitive else re.IGNORECASE)


def _wildcard(sensitive: bool) -> Callable[..., bool]:
    """`:` / `like`: `*` any run, `?` one character, whole value (adaptation 2)."""
    def run(value: Any, *patterns: str) -> bool:
        def regex(p: str) -> str:
            return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p)
        return isinstance(value, str) and any(re.fullmatch(regex(p), value, _flags(sensitive)) for p in patterns)
    return run


def _regex(sensitive: bool) -> Callable[..., bool]:
    """Lucene regex: whole value, `.` matches newlines (adaptation 3)."""
    def run(value: Any, *patterns: str) -> bool:
        return isinstance(value, str) and any(re.fullmatch(p, value, _flags(sensitive)) for p in patterns)
    return run


def _in_ci(value: Any, *options: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in {o.lower() for o in options if isinstance(o, str)}
    return value in options


def _text(check: Callable[[str, str], bool], sensitive: bool) -> Callable[..., bool]:
    def run(value: Any, *needles: Any) -> bool:
        fold = (lambda s: s) if sensitive else str.lower
        return isinstance(value, str) and any(isinstance(n, str) and check(fold(value), fold(n)) for n in needles)
    return run


@functools.cache
def _network(text: str) -> Any:
    return ipaddress.ip_network(text, strict=False)


def _cidr(value: Any, *networks: str) -> bool:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(ip in _network(n) for n in networks)


ES_FUNCTIONS: dict[str, Callable[..., bool]] = {
    "es:wildcard": _wildcard(True), "es:wildcard~": _wildcard(False),
    "es:regex": _regex(True), "es:regex~": _regex(False), "es:in~": _in_ci,
    "es:cidrmatch": _cidr, "es:cidrmatch~": _cidr,
    **{f"es:{name}{t}": _text(check, t == "") for t in ("", "~") for name, check in (
        ("startswith", str.startswith), ("endswith", str.endswith), ("stringcontains", str.__contains__))},
}


def _replace(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of the event data with one nested value replaced (only the dicts on the path copied)."""
    out = dict(data)
    node = out
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = value
    return out


class _EsEngine(eql.PythonEngine):  # type: ignore[misc]
    """eql's engine with Elasticsearch's any-element arrays and two-valued comparisons (4, 5)."""

    def __init__(self) -> None:
        super().__init__({"time_unit": 1, "flatten": True, "functions": ES_FUNCTIONS})  # Event.time in seconds

    def _any_element(self, node: Any, check: Callable[[Any], Any]) -> Callable[[Any], bool]:
        paths = list(dict.fromkeys((f.base, *f.path) for f in node if isinstance(f, ast.Field)))

        def run(scope: Any) -> bool:
            event = scope.event
            values = [get_path(event.data, p) for p in paths]
            lists = [i for i, v in enumerate(values) if isinstance(v, list)]
            if not lists:
                return bool(check(scope))
            for combo in itertools.product(*(values[i] for i in lists)):
                data = event.data
                for i, element in zip(lists, combo):
                    data = _replace(data, paths[i], element)
                if check(Scope([Event(event.type, event.time, data)], scope.variables)):
                    return True
            return False
        return run

    def _convert_comparison(self, node: Any) -> Any:
        if node.comparator == "!=":
            return self.convert(ast.Not(ast.Comparison(node.left, "==", node.right)))
        return self._any_element(node, super()._convert_comparison(node))

    def _convert_in_set(self, node: Any) -> Any:
        return self._any_element(node, super()._convert_in_set(node))

    def _convert_function_call(self, node: Any) -> Any:
        check = super()._convert_function_call(node)
        return self._any_element(node, check) if node.name.startswith("es:") else check


def event_type(query_type: str, doc: dict[str, Any]) -> str:
    """`process where` holds when event.category has "process" (adaptation 6)."""
    ev = doc.get("event")
    category = ev.get("category") if isinstance(ev, dict) else None
    return query_type if query_type in (category if isinstance(category, list) else [category]) else "_other_"


def _subqueries(first: Any) -> list[Any]:
    if isinstance(first, ast.EventQuery):
        return [ast.SubqueryBy(first)]
    return [*first.queries, *([first.close] if first.close is not None else [])]


class Oracle:
    """One rule's query in the adapted eql engine; fresh engine state per stream of events."""

    def __init__(self, query: Any) -> None:
        self.query = query
        self.types = sorted({q.query.event_type for q in _subqueries(query.first)})

    def verdicts(self, docs: list[dict[str, Any]], times: list[float] | None = None) -> list[bool]:
        """For each event, whether the query matches (or the sequence completes) on it."""
        with case_sensitive_eql():
            engine = _EsEngine()
            hits: list[Any] = []
            engine.add_output_hook(hits.append)
            engine.add_query(self.query)
            out = []
            for i, doc in enumerate(docs):
                before = len(hits)
                kind = next((t for t in self.types if event_type(t, doc) == t), "_other_")
                engine.stream_event(Event(kind, times[i] if times else 0, doc))
                out.append(any(h.data is doc for h in hits[before:]))
        return out


# -- rules -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EqlRule:
    path: Path
    rule_id: str
    text: str
    query: Any  # the oracle's parse


@dataclass
class Corpus:
    ruleset: Ruleset
    single: list[EqlRule]
    sequences: list[EqlRule]
    skipped: dict[str, int]


def _elastic_eql_rules() -> list[tuple[Path, str, str]]:
    out = []
    for f in sorted(ELASTIC.glob("*.toml")):
        rule = tomllib.loads(f.read_text()).get("rule", {})
        if rule.get("language") == "eql":
            out.append((f, rule["rule_id"], rule["query"]))
    return out


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    """Every Elastic linux EQL rule both engines run, and shellsieve's ruleset for the folder."""
    if not ELASTIC.is_dir():
        pytest.skip(f"{ELASTIC} is absent: the shared public rulesets are not checked out")
    rules, ruleset, _ = build([ELASTIC])
    loaded = {r.id for r in rules}
    corpus = Corpus(ruleset, [], [], {"not loaded by shellsieve": 0, "eql cannot parse": 0,
                                      "eql cannot run": 0, "pipes or sample": 0})
    for path, rid, text in _elastic_eql_rules():
        if rid not in loaded:
            corpus.skipped["not loaded by shellsieve"] += 1
            continue
        try:
            query = parse_oracle(text)
        except eql.EqlError:
            corpus.skipped["eql cannot parse"] += 1
            continue
        if query.pipes or not isinstance(query.first, (ast.EventQuery, ast.Sequence)):
            corpus.skipped["pipes or sample"] += 1
            continue
        try:
            Oracle(query).verdicts([])  # the engine compiles the query here
        except eql.EqlError:
            corpus.skipped["eql cannot run"] += 1
            continue
        target = corpus.single if isinstance(query.first, ast.EventQuery) else corpus.sequences
        target.append(EqlRule(path, rid, text, query))
    return corpus


def _report(rule: EqlRule, shown: Any, want: bool, have: bool) -> str:
    return (f"{rule.rule_id} ({rule.path.name}): eql (ES semantics) says {want}, shellsieve says {have}\n"
            f"  query: {' '.join(rule.text.split())}\n  event: {json.dumps(shown, sort_keys=True)}")


def _check(disagreements: list[str], stats: str, guards: list[str]) -> None:
    """Fail on any disagreement and on a vacuous comparison, reporting all of them at once."""
    print(stats)
    problems = guards + ([f"{len(disagreements)} disagreements:"] + disagreements if disagreements else [])
    assert not problems, stats + "\n" + "\n\n".join(problems)


# -- single-event rules ------------------------------------------------------------------------

def test_single_event_rules_agree_with_eql(corpus: Corpus) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    disagreements: list[str] = []
    n_events = positives = 0
    for rule in corpus.single:
        first = rule.query.first
        docs = events_for(first.query, first.event_type, rng)
        expected = Oracle(rule.query).verdicts(docs)
        got = [rule.rule_id in rule_ids(doc) for doc in run_events(corpus.ruleset, docs)]
        n_events += len(docs)
        positives += any(expected)
        disagreements += [_report(rule, doc, want, have)
                          for doc, want, have in zip(docs, expected, got, strict=True) if want != have]
    stats = (f"{len(corpus.single)} single-event rules, {n_events} events, {positives} rules with a matching "
             f"event; skipped {corpus.skipped}; {time.monotonic() - started:.1f}s")
    guards = [f"only {len(corpus.single)} single-event rules compared"] * (len(corpus.single) < MIN_SINGLE)
    guards += [f"only {positives} rules saw a matching event"] * (positives < len(corpus.single) * 3 // 4)
    _check(disagreements, stats, guards)


# -- sequence rules ----------------------------------------------------------------------------

def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _span(rule: EqlRule) -> float | None:
    span = rule.query.first.max_span
    return span.as_milliseconds() / 1000.0 if span is not None else None


def _steps(rule: EqlRule, rng: random.Random, keys: list[str]) -> list[dict[str, Any]]:
    """One event per step, each aimed at its step's condition and carrying the `by` values `keys`."""
    out = []
    for sub in rule.query.first.queries:
        doc = satisfying(sub.query.query, sub.query.event_type, rng)
        for field, key in zip(sub.join_values, keys):
            set_path(doc, (field.base, *field.path), key)
        out.append(doc)
    return out


def _keys(rule: EqlRule, rng: random.Random) -> list[str]:
    """`by` values: one the first step's condition already wants, else a fresh one (no arrays: 8)."""
    first = rule.query.first.queries[0]
    doc = satisfying(first.query.query, first.query.event_type, rng)
    keys = []
    for n, field in enumerate(first.join_values):
        value = get_path(doc, (field.base, *field.path))
        keys.append(value if isinstance(value, str) else f"key-{n}-{rng.randrange(1000)}")
    return keys


def _mutate_step(rule: EqlRule, doc: dict[str, Any], step: int, rng: random.Random) -> None:
    """Give one field of one step a near miss, a case variant, an array or nothing (not a `by` field)."""
    sub = rule.query.first.queries[step]
    joins = {(f.base, *f.path) for f in sub.join_values}
    leafs = [lf for lf in leaves(sub.query.query) if lf.path not in joins]
    if leafs:
        leaf = rng.choice(leafs)
        set_path(doc, leaf.path, rng.choice(variant_values(leaf, rng)))


def _streams(rule: EqlRule, rng: random.Random) -> Iterator[tuple[str, list[dict[str, Any]], list[float]]]:
    """Named streams: in span, out of span, wrong key, key in other case, reversed, mutated, until."""
    span = _span(rule)
    gap = (span / (2 * len(rule.query.first.queries))) if span else 5.0
    for attempt in range(STREAM_ROUNDS):
        keys = _keys(rule, rng)
        steps = _steps(rule, rng, keys)
        times = [T0 + 1000 * attempt + i * gap for i in range(len(steps))]
        yield "in span", steps, times
        if span:
            yield "out of span", steps, times[:-1] + [times[0] + span + 1]
        last = copy.deepcopy(steps[-1])
        field = rule.query.first.queries[-1].join_values[-1]
        key = keys[-1]
        set_path(last, (field.base, *field.path), key[:-1] + ("Q" if key[-1:] != "Q" else "R"))
        yield "other key", steps[:-1] + [last], times
        cased = copy.deepcopy(steps[-1])
        set_path(cased, (field.base, *field.path), key.swapcase())
        if key.swapcase() != key:
            yield "key in other case", steps[:-1] + [cased], times
        yield "reversed", list(reversed(steps)), times
        for _ in range(2):
            mutated = copy.deepcopy(steps)
            step = rng.randrange(len(steps))
            _mutate_step(rule, mutated[step], step, rng)
            yield "mutated", mutated, times
        close = rule.query.first.close
        if close is not None:
            stop = satisfying(close.query.query, close.query.event_type, rng)
            for f, v in zip(close.join_values, keys):
                set_path(stop, (f.base, *f.path), v)
            mid = [*times[:1], times[0] + gap / 2, *times[1:]]
            yield "until", steps[:1] + [stop] + steps[1:], mid


def test_sequence_rules_agree_with_eql(corpus: Corpus) -> None:
    started = time.monotonic()
    rng = random.Random(SEED + 1)
    disagreements: list[str] = []
    n_streams = n_events = positives = 0
    for rule in corpus.sequences:
        matched = False
        for name, docs, times in _streams(rule, rng):
            for doc, t in zip(docs, times):
                doc["@timestamp"] = _iso(t)
            expected = Oracle(rule.query).verdicts(docs, times)
            got = [rule.rule_id in rule_ids(doc) for doc in run_events(corpus.ruleset, docs)]
            n_streams += 1
            n_events += len(docs)
            matched |= any(expected)
            if expected != got:
                disagreements.append(_report(rule, {"stream": name, "events": docs, "eql": expected,
                                                    "shellsieve": got}, any(expected), any(got)))
        positives += matched
    stats = (f"{len(corpus.sequences)} sequence rules, {n_streams} streams, {n_events} events, {positives} rules "
             f"completed at least once; {time.monotonic() - started:.1f}s")
    guards = [f"only {len(corpus.sequences)} sequence rules compared"] * (len(corpus.sequences) < MIN_SEQUENCE)
    guards += [f"only {positives} sequence rules completed"] * (positives < len(corpus.sequences) // 2)
    _check(disagreements, stats, guards)
