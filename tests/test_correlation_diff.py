"""run/meta.py against a plain reference evaluator, written apart from it, over generated streams:
hits out of order (within and past the timespan), colliding group keys, times on the window's edges."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shellsieve.diagnostics import Location
from shellsieve.model.correlation import Correlation
from shellsieve.model.rule import Rule
from shellsieve.run.meta import CorrelationState

RULES = ("A", "B", "C")
SPAN = 10.0
OPS = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
       "lte": lambda a, b: a <= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b}


def _interpolated(values: list[float], p: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * p / 100
    i = int(pos)
    if i + 1 >= len(s):
        return s[-1]
    return s[i] + (s[i + 1] - s[i]) * (pos - i)


def _measure(kind: str, window: list[tuple[float, int, str, float]], percentile: int | None) -> float:
    rules = [r for _, _, r, _ in window]
    values = [v for _, _, _, v in window]
    if kind == "event_count":
        return len(window)
    if kind == "value_count":
        return len(set(values))
    if kind == "temporal":
        return len(set(rules))
    if kind == "temporal_ordered":
        n = 0
        for r in rules:
            if n < len(RULES) and r == RULES[n]:
                n += 1
        return n
    if kind == "value_sum":
        return sum(values)
    if kind == "value_avg":
        return sum(values) / len(values)
    return _interpolated(values, 50 if kind == "value_median" else percentile or 0)


def reference(kind: str, cond: list[tuple[str, float]], percentile: int | None,
              events: list[tuple[float, str, str, int]]) -> list[tuple[int, float]]:
    """(index, measured value) of each event that completes the correlation. Per key, the hits not
    yet consumed; an event more than SPAN older than the newest seen is ignored; the window of an
    event at t is its key's hits in [t - SPAN, t]; a window that holds is consumed."""
    kept: dict[str, list[tuple[float, int, str, float]]] = {}
    newest = float("-inf")
    out = []
    for i, (t, rule, key, value) in enumerate(events):
        if t < newest - SPAN:
            continue
        newest = max(newest, t)
        hits = kept.setdefault(key, [])
        hits.append((t, i, rule, float(value)))
        window = sorted(h for h in hits if t - SPAN <= h[0] <= t)
        measured = _measure(kind, window, percentile)
        if all(OPS[op](measured, limit) for op, limit in cond):
            out.append((i, measured))
            kept[key] = [h for h in hits if h not in window]
    return out


def _state(kind: str, cond: list[tuple[str, float]], percentile: int | None) -> CorrelationState:
    corr = Correlation(type=kind, rules=RULES, group_by=("user",), timespan=SPAN, condition=tuple(cond),
                       field=None if kind in ("event_count", "temporal", "temporal_ordered") else "v",
                       percentile=percentile)
    return CorrelationState(Rule(id="corr", name="corr", ruleset="sigma", query=corr, location=Location("t")), 1 << 20)


KINDS = ("event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
         "value_median", "value_percentile")
conditions = st.lists(st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 6).map(float)), min_size=1, max_size=2)
events = st.lists(st.tuples(st.integers(0, 40), st.sampled_from(RULES), st.sampled_from(["u1", "u2"]),
                            st.integers(0, 4)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KINDS), conditions, st.integers(0, 100), events)
def test_matches_the_reference(kind: str, cond: list[tuple[str, float]], percentile: int,
                               stream: list[tuple[int, str, str, int]]) -> None:
    pct = percentile if kind == "value_percentile" else None
    # times mostly rising, some stepping back: within the timespan and past it
    timed = [(float(t + i // 2), r, k, v) for i, (t, r, k, v) in enumerate(stream)]
    state = _state(kind, cond, pct)
    got = []
    for i, (t, rule, key, value) in enumerate(timed):
        doc: dict[str, Any] = {"user": key, "v": value}
        hit = state.feed(rule, doc, t)
        if hit is not None:
            assert hit.correlation is not None
            got.append((i, hit.correlation["value"]))
    want = reference(kind, cond, pct, [(t, r, k, v) for t, r, k, v in timed])
    assert [i for i, _ in got] == [i for i, _ in want]
    for (_, a), (_, b) in zip(got, want):
        assert abs(a - b) < 1e-9
