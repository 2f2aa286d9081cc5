"""Sigma correlations in the stream: a gate (run/enrich.py `Gate`) after the exceptions that feeds
the hits of the rules a correlation references into its state and adds the correlation's hit to the
event that completes it (docs/correlation.md).

Per correlation, a group (its `group-by` values, aliases read per rule) holds the hits of the last
2 x timespan of event time, oldest first: an event up to one timespan older than the newest one seen
still finds every hit of its window [t - timespan, t]; an older one is late and ignored (counted).
A correlation that holds consumes its group's window, so the next alert needs a new window of hits.
Groups are bounded (least recently fed evicted first, counted) and so are the hits of one group.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from shellsieve.model.correlation import Correlation
from shellsieve.model.rule import Rule
from shellsieve.run.enrich import Hit
from shellsieve.run.eventtime import event_time
from shellsieve.run.exceptions import field_values

__all__ = ["MAX_GROUP_HITS", "CorrelationState", "Correlations", "condition", "measure"]

# Hits one group keeps: a flood on one key must not grow without end (the oldest go first, counted).
MAX_GROUP_HITS = 10_000
# Events an alert quotes of those that fed it: the first ones and the last ones.
QUOTED = 5
# What an alert quotes of each event that fed it, as sequence alerts quote their first event.
QUOTE_FIELDS = ("@timestamp", "process.command_line", "process.entity_id", "process.pid")

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__,
    "eq": float.__eq__, "neq": float.__ne__}


class Fed(NamedTuple):
    ts: float
    seq: int  # arrival order: ties of event time keep it
    rule: int  # index of the referenced rule in Correlation.rules
    value: str | None  # the `field` value (value_* types)
    quote: dict[str, Any]


Measure = Callable[[Sequence[Fed], Fed], float | None]


def condition(corr: Correlation) -> Callable[[float | None], bool]:
    """The condition as one closure: every comparison must hold for the measured value."""
    tests = [(_COMPARE[op], limit) for op, limit in corr.condition]

    def holds(measured: float | None) -> bool:
        return measured is not None and all(cmp(float(measured), limit) for cmp, limit in tests)

    return holds


def _numbers(window: Sequence[Fed]) -> list[float]:
    out = []
    for f in window:
        if f.value is None:
            continue
        try:
            n = float(f.value)
        except ValueError:
            continue
        if math.isfinite(n):
            out.append(n)
    return out


def _percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    values = sorted(values)
    k = (len(values) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _in_order(window: Sequence[Fed], n: int) -> int:
    """How many of the rules 0..n-1 the window holds in that order (earliest match of each)."""
    want = 0
    for f in window:
        if f.rule == want:
            want += 1
            if want == n:
                break
    return want


def _metric(reduce: Callable[[list[float]], float]) -> Measure:
    def measured(window: Sequence[Fed], current: Fed) -> float | None:
        nums = _numbers(window)
        return reduce(nums) if nums else None
    return measured


def _share(window: Sequence[Fed], current: Fed) -> float | None:
    """The share (%) of the window's hits carrying the current hit's value: how rare it is."""
    if current.value is None:
        return None
    return 100.0 * sum(1 for f in window if f.value == current.value) / len(window)


def measure(corr: Correlation) -> Measure:
    """What the condition compares, over a window (oldest first) ending at the current hit: one
    closure per correlation, picked once."""
    kind, n = corr.type, len(corr.rules)
    simple: dict[str, Measure] = {
        "event_count": lambda w, c: float(len(w)),
        "value_count": lambda w, c: float(len({f.value for f in w if f.value is not None})),
        "temporal": lambda w, c: float(len({f.rule for f in w})),
        "temporal_ordered": lambda w, c: float(_in_order(w, n)),
        "value_sum": _metric(math.fsum),
        "value_avg": _metric(lambda nums: math.fsum(nums) / len(nums)),
        "value_median": _metric(lambda nums: _percentile(nums, 50)),
    }
    if kind in simple:
        return simple[kind]
    assert kind == "value_percentile"
    p = corr.percentile
    return _share if p is None else _metric(lambda nums: _percentile(nums, p))


class CorrelationState:
    """The groups of one correlation: group key -> its hits, oldest first, by event time."""

    def __init__(self, rule: Rule, cap: int) -> None:
        assert isinstance(rule.query, Correlation)
        self.rule = rule
        self.corr: Correlation = rule.query
        self.cap = cap
        self.groups: OrderedDict[tuple[Any, ...], list[Fed]] = OrderedDict()
        self.now = -math.inf  # the newest event time fed
        self.seq = 0
        self.evicted = 0  # groups dropped for room
        self.expired = 0  # groups whose every hit left the window
        self.late = 0  # hits older than the newest by more than the timespan: ignored
        self.dropped = 0  # hits dropped from a group past MAX_GROUP_HITS
        self.fed = 0
        self._measure, self._holds = measure(self.corr), condition(self.corr)
        self._order = {rid: i for i, rid in reversed(list(enumerate(self.corr.rules)))}
        # per referenced rule: the fields its group key and value are read from (aliases resolved)
        self._fields = {rid: (tuple(self.corr.field_for(rid, g) for g in self.corr.group_by),
                              self.corr.field) for rid in self.corr.rules}

    def __len__(self) -> int:
        return len(self.groups)

    def _key(self, doc: dict[str, Any], fields: tuple[str, ...]) -> tuple[Any, ...] | None:
        key = []
        for f in fields:
            vals = field_values(doc, f)
            if not vals:
                return None  # an event without a group value joins no group, as sequences do
            key.append(vals[0] if len(vals) == 1 else tuple(vals))
        return tuple(key)

    def feed(self, rule_id: str, doc: dict[str, Any], ts: float) -> Hit | None:
        """A hit of a referenced rule on `doc` at event time `ts`; the correlation's hit if it holds."""
        corr = self.corr
        fields, value_field = self._fields[rule_id]
        key = self._key(doc, fields)
        if key is None:
            return None
        span = corr.timespan
        if ts < self.now - span:
            self.late += 1
            return None
        if ts > self.now:
            self.now = ts
            self.expire()
        fed = self._fed(rule_id, doc, ts, value_field)
        if fed is None:
            return None
        hits = self._group(key, fed)
        start = bisect.bisect_left(hits, ts - span, key=lambda f: f.ts)
        stop = bisect.bisect_right(hits, ts, key=lambda f: f.ts)
        window = hits[start:stop]
        measured = self._measure(window, fed)
        if not self._holds(measured):
            return None
        del hits[start:stop]  # the window is consumed: the next alert needs new hits
        if not hits:
            del self.groups[key]
        quoted = window if len(window) <= 2 * QUOTED else [*window[:QUOTED], *window[-QUOTED:]]
        group = {g: (list(v) if isinstance(v, tuple) else v) for g, v in zip(corr.group_by, key)}
        return Hit(self.rule, correlation={
            "type": corr.type, "group": group, "value": measured, "events": len(window),
            "start": window[0].quote.get("@timestamp"), "quoted": [f.quote for f in quoted]})

    def _fed(self, rule_id: str, doc: dict[str, Any], ts: float, value_field: str | None) -> Fed | None:
        """The hit as its group keeps it: the value measured and the fields quoted; None when the
        measure needs a value the event lacks."""
        value = None
        if value_field is not None:
            vals = field_values(doc, value_field)
            if not vals:
                if self.corr.type != "value_count":
                    return None  # value_* over a number the event lacks: nothing to add
            else:
                value = vals[0]
        self.fed += 1
        self.seq += 1
        quote = {"rule.id": rule_id}
        for f in QUOTE_FIELDS:
            vals = field_values(doc, f)
            if vals:
                quote[f] = vals[0]
        return Fed(ts, self.seq, self._order[rule_id], value, quote)

    def _group(self, key: tuple[Any, ...], fed: Fed) -> list[Fed]:
        """`fed` into its group's hits, kept in event-time order (a new group may evict the least
        recently fed one; a full group drops its oldest hit); the group's hits."""
        span, ts = self.corr.timespan, fed.ts
        hits = self.groups.get(key)
        if hits and hits[0].ts < self.now - 2 * span:  # a group fed again after a while
            del hits[:bisect.bisect_left(hits, self.now - 2 * span, key=lambda f: f.ts)]
        if hits is None:
            if len(self.groups) >= self.cap:
                self.groups.popitem(last=False)
                self.evicted += 1
            hits = self.groups[key] = []
        else:
            self.groups.move_to_end(key)
        if not hits or hits[-1].ts <= ts:
            hits.append(fed)
        else:  # out of order within the timespan: in its place by event time, after its ties
            hits.insert(bisect.bisect_right(hits, ts, key=lambda f: f.ts), fed)
        if len(hits) > MAX_GROUP_HITS:
            del hits[0]
            self.dropped += 1
        return hits

    def expire(self) -> None:
        """Drop the least recently fed groups while their newest hit is older than 2 x timespan
        before the newest event time (see the module doc): amortized O(1) a hit. A group fed later
        drops its own old hits."""
        horizon = self.now - 2 * self.corr.timespan
        groups = self.groups
        while groups:
            hits = next(iter(groups.values()))
            if hits[-1].ts >= horizon:
                break
            groups.popitem(last=False)
            self.expired += 1


class Correlations:
    """The gate over every correlation of a rule set (model/correlation.py, in chain order)."""

    def __init__(self, correlations: Sequence[Rule], cap: int) -> None:
        self.states = [CorrelationState(r, cap) for r in correlations]
        self.feeds: dict[str, list[CorrelationState]] = {}
        generate: dict[str, bool] = {}
        for st in self.states:
            for rid in dict.fromkeys(st.corr.rules):
                self.feeds.setdefault(rid, []).append(st)
                generate[rid] = generate.get(rid, False) or st.corr.generate
        # rules (and correlations) that alert only through a correlation: `generate: false` on all
        # the correlations reading them
        self.silent = frozenset(rid for rid, gen in generate.items() if not gen)
        self._expired_at = -math.inf

    def __len__(self) -> int:
        return sum(len(st) for st in self.states)

    def counter(self, name: str) -> int:
        return sum(getattr(st, name) for st in self.states)

    def adopt(self, old: Correlations) -> int:
        """Keep `old`'s state for correlations whose id and resolved text are unchanged; returns
        how many groups were kept."""
        before = {st.rule.id: st for st in old.states}
        kept = 0
        for i, st in enumerate(self.states):
            prev = before.get(st.rule.id)
            if prev is not None and prev.corr == st.corr:
                prev.rule = st.rule  # its metadata (level, title) may have changed
                self.states[i] = prev
                kept += len(prev)
        self.feeds = {rid: [self._same(st) for st in sts] for rid, sts in self.feeds.items()}
        return kept

    def _same(self, st: CorrelationState) -> CorrelationState:
        return next(s for s in self.states if s.rule.id == st.rule.id)

    def __call__(self, doc: dict[str, Any], hits: list[Hit]) -> list[Hit]:
        feeds = self.feeds
        for h in hits:
            if h.rule.id in feeds:
                break
        else:
            return hits  # no hit a correlation reads: as without correlations
        ts = event_time(doc.get("@timestamp"))
        if ts is None:
            ts = time.time()
        out: list[Hit] = []
        queue = list(hits)
        for h in queue:  # grows: a correlation's hit feeds the correlations over it (a chain)
            rid = h.rule.id
            for st in feeds.get(rid, ()):
                done = st.feed(rid, doc, ts)
                if done is not None:
                    queue.append(done)
            if rid not in self.silent:
                out.append(h)
        return out
