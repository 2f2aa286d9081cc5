"""Sequence state: partial matches keyed by the `by` values, expiring on event time, bounded in size."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

__all__ = ["Partial", "SequenceState"]


class Partial(NamedTuple):
    start: float  # event time of the first step
    last: float
    first: dict[str, Any]  # what the alert quotes of the first event


class SequenceState:
    """Open sequences of one rule. Per key, at most one partial per stage (the newest), as EQL keeps.

    `waiting[i]` counts the keys holding a partial at stage i. While it is 0, no event can advance
    step i + 1, so the matcher need not check that step at all: most steps of most rules wait on a
    first step that rarely holds.
    """

    def __init__(self, n_steps: int, maxspan: float | None, cap: int) -> None:
        self.n_steps = n_steps
        self.maxspan = maxspan
        self.cap = cap
        self.open: OrderedDict[Any, list[Partial | None]] = OrderedDict()
        self.waiting = [0] * n_steps
        self.evicted = 0
        self.expired = 0

    def _fresh(self, p: Partial, ts: float) -> bool:
        return self.maxspan is None or ts - p.start <= self.maxspan

    def advance(self, key: Any, ts: float, step: int, first: dict[str, Any]) -> Partial | None:
        """Feed one event that matched `step` under `key`; return the sequence it completes, if any.

        Call with an event's matched steps in descending order, so that one event cannot both
        start a sequence and complete it.
        """
        stages = self.open.get(key)
        if step == 0:
            if stages is None:
                stages = [None] * self.n_steps
                self._insert(key, stages)
            else:
                self.open.move_to_end(key)
            if stages[0] is None:
                self.waiting[0] += 1
            stages[0] = Partial(ts, ts, first)
            return None
        if stages is None:
            return None
        prev = stages[step - 1]
        if prev is None or ts < prev.last:
            return None
        stages[step - 1] = None
        self.waiting[step - 1] -= 1
        done: Partial | None = None
        if not self._fresh(prev, ts):
            self.expired += 1
        elif step == self.n_steps - 1:
            done = Partial(prev.start, ts, prev.first)
        else:
            if stages[step] is None:
                self.waiting[step] += 1
            stages[step] = Partial(prev.start, ts, prev.first)
        if all(s is None for s in stages):
            del self.open[key]
        else:
            self.open.move_to_end(key)
        return done

    def cancel(self, key: Any) -> None:
        """An `until` event closes every open sequence of its key."""
        stages = self.open.pop(key, None)
        if stages is not None:
            self._forget(stages)

    def _insert(self, key: Any, stages: list[Partial | None]) -> None:
        if len(self.open) >= self.cap:
            self._forget(self.open.popitem(last=False)[1])
            self.evicted += 1
        self.open[key] = stages

    def expire(self, now: float) -> None:
        """Drop keys whose every partial is older than maxspan at event time `now`."""
        if self.maxspan is None:
            return
        while self.open:
            key, stages = next(iter(self.open.items()))
            if any(p is not None and now - p.start <= self.maxspan for p in stages):
                break
            self._forget(self.open.popitem(last=False)[1])
            self.expired += 1

    def _forget(self, stages: list[Partial | None]) -> None:
        """A key's partials leave the state: they no longer wait."""
        for i, p in enumerate(stages):
            if p is not None:
                self.waiting[i] -= 1
