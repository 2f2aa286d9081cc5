"""Alert suppression, as Elastic's: repeats of one rule's alert on the same key within a window leave
as events, not alerts; the key's next alert after the window says how many were held back, since when.

The key is the rule and the values of the `--suppress-by` fields (`host.id|host.name`: the first
present). A missing field is a value of its own: events lacking it group together (Elastic's
default, "suppress and group alerts for events with missing fields"). The window opens at an
alert's event time (`@timestamp`, else arrival time) and lasts `window` seconds: an event of the
key with a time before its end is suppressed, including one older than its start (a late arrival,
a repeat of what was already alerted); the first at or after its end is alerted and opens the next
window. Windows whose end has passed the newest event time seen are swept (oldest opened first);
one still holding suppressed hits is kept, so the key's next alert reports them, until the bound
(`max_keys`, open and ended together) evicts it, oldest first, counted in `evicted`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from shellsieve.model.fields import known_fields
from shellsieve.run.enrich import Hit
from shellsieve.run.eventtime import event_time, iso
from shellsieve.run.stats import Stats

__all__ = ["Suppression", "unknown_fields"]

_encode = msgspec.json.encode
_SCALARS = (str, int, float, bool)


def unknown_fields(by: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """The names in `by` (`a|b` specs) that are not fields the engine reads (model/fields.py
    `known_fields`, plus `extra`, the loaded rules' fields)."""
    known = known_fields(set(extra))
    return [n for spec in by for n in spec.split("|") if n not in known]


def _get(doc: dict[str, Any], field: str) -> Any:
    """A dotted field of a decoded event: a flat dotted key (as some shippers write), else nested."""
    v = doc.get(field)
    if v is not None or "." not in field:
        return v
    cur: Any = doc
    for part in field.split("."):
        if type(cur) is not dict:
            return None
        cur = cur.get(part)
    return cur


def _reader(spec: str) -> Callable[[dict[str, Any]], Any]:
    """One key field: its value made hashable (an array or object as its JSON), or None if missing."""
    names = spec.split("|")

    def read(doc: dict[str, Any]) -> Any:
        for name in names:
            v = _get(doc, name)
            if v is not None:
                return v if isinstance(v, _SCALARS) else _encode(v)
        return None

    return read


class _Window:
    __slots__ = ("start", "count", "since")

    def __init__(self, start: float) -> None:
        self.start = start  # event time of the alert that opened it
        self.count = 0  # hits suppressed in it
        self.since = 0.0  # the earliest event time among them (when count > 0)


class Suppression:
    """A gate (run/enrich.py `Gate`): drops the hits of keys inside their window and counts them per
    rule in `stats.suppressed`; sets `Hit.suppressed` on the first alert of a key after a window
    that held some back."""

    def __init__(self, window_s: float, by: tuple[str, ...], max_keys: int, stats: Stats,
                 clock: Callable[[], float] = time.time) -> None:
        if window_s <= 0:
            raise ValueError(f"suppression window must be > 0 seconds, got {window_s!r}")
        self.window = window_s
        self.by = by
        self.max_keys = max_keys
        self.stats = stats
        self.clock = clock  # arrival time, for events without a usable @timestamp
        self._readers = tuple(_reader(spec) for spec in by)
        self.open: OrderedDict[tuple[Any, ...], _Window] = OrderedDict()  # in the order opened
        self.ended: OrderedDict[tuple[Any, ...], _Window] = OrderedDict()  # ended, hits not yet reported
        self.now = float("-inf")  # the newest event time seen
        self.evicted = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self.open) + len(self.ended)

    def __call__(self, doc: dict[str, Any], hits: list[Hit]) -> list[Hit]:
        ts = event_time(_get(doc, "@timestamp"))
        if ts is None:
            ts = self.clock()
        if ts > self.now:
            self.now = ts
            self._sweep()
        values = tuple(read(doc) for read in self._readers)
        kept: list[Hit] = []
        for hit in hits:
            key = (hit.rule.id, values)
            w = self.open.get(key)
            if w is not None and ts < w.start + self.window:
                w.since = ts if not w.count or ts < w.since else w.since
                w.count += 1
                self.stats.suppressed[hit.rule.id] += 1
                continue
            if w is not None:  # ended, not yet swept
                del self.open[key]
            else:
                w = self.ended.pop(key, None)
            if w is not None and w.count:
                hit.suppressed = {"count": w.count, "since": iso(w.since)}
            self._open(key, ts)
            kept.append(hit)
        return kept

    def retain(self, rule_ids: set[str]) -> None:
        """Keep the windows of these rules only (a reload: the others were removed or changed)."""
        for windows in (self.open, self.ended):
            for key in [k for k in windows if k[0] not in rule_ids]:
                del windows[key]

    def _open(self, key: tuple[Any, ...], ts: float) -> None:
        if len(self) >= self.max_keys:
            # the oldest goes: an ended window (all opened before any open one), else the oldest open
            (self.ended if self.ended else self.open).popitem(last=False)
            self.evicted += 1
        self.open[key] = _Window(ts)

    def _sweep(self) -> None:
        """Windows ended by the newest event time leave; those holding suppressed hits wait, ended."""
        end = self.now - self.window
        while self.open:
            key, w = next(iter(self.open.items()))
            if w.start > end:
                break
            del self.open[key]
            if w.count:
                self.ended[key] = w
            else:
                self.expired += 1
