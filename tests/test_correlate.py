"""Sequence state: keyed, ordered, expiring on event time, bounded."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shellsieve.run.correlate import SequenceState


class TestSequenceState:
    def test_two_steps_complete_within_maxspan(self) -> None:
        """Step 0 then step 1 under the same key within maxspan completes, quoting the first event."""
        s = SequenceState(2, 1.0, 10)
        assert s.advance("k", 0.0, 0, {"id": 1}) is None
        done = s.advance("k", 0.9, 1, {})
        assert done is not None and done.first == {"id": 1} and done.start == 0.0
        assert not s.open

    def test_maxspan_exceeded_does_not_complete(self) -> None:
        """A second step later than maxspan after the first does not complete."""
        s = SequenceState(2, 1.0, 10)
        s.advance("k", 0.0, 0, {})
        assert s.advance("k", 1.5, 1, {}) is None
        assert s.expired == 1

    def test_other_key_does_not_join(self) -> None:
        """A second step under another key leaves the first open."""
        s = SequenceState(2, 1.0, 10)
        s.advance("a", 0.0, 0, {})
        assert s.advance("b", 0.5, 1, {}) is None
        assert "a" in s.open

    def test_cap_evicts_oldest_and_counts(self) -> None:
        """Past the cap the oldest open sequence is evicted and counted."""
        s = SequenceState(2, None, 2)
        for k in "abc":
            s.advance(k, 0.0, 0, {})
        assert list(s.open) == ["b", "c"] and s.evicted == 1

    def test_expire_on_event_time(self) -> None:
        """expire() drops sequences whose start is older than maxspan at the given event time."""
        s = SequenceState(2, 1.0, 10)
        s.advance("a", 0.0, 0, {})
        s.advance("b", 5.0, 0, {})
        s.expire(5.5)
        assert list(s.open) == ["b"]

    def test_three_steps_in_order(self) -> None:
        """Steps must come in order; a step 2 before step 1 is ignored."""
        s = SequenceState(3, 10.0, 10)
        s.advance("k", 0.0, 0, {"n": 0})
        assert s.advance("k", 1.0, 2, {}) is None
        assert s.advance("k", 2.0, 1, {}) is None
        done = s.advance("k", 3.0, 2, {})
        assert done is not None and done.first == {"n": 0}

    def test_cancel_closes_key(self) -> None:
        """An until event closes its key's open sequences."""
        s = SequenceState(2, 10.0, 10)
        s.advance("k", 0.0, 0, {})
        s.cancel("k")
        assert s.advance("k", 1.0, 1, {}) is None


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.sampled_from("abcd"), st.floats(0, 20), st.integers(0, 2)),
        st.tuples(st.just("cancel"), st.sampled_from("abcd")),
        st.tuples(st.just("expire"), st.floats(0, 30)),
    ),
    max_size=60,
)


class TestWaitingCounts:
    @given(_OPS, st.integers(1, 4), st.sampled_from([None, 2.0]))
    def test_waiting_counts_the_partials_at_each_stage(self, ops: list[tuple[Any, ...]], cap: int,
                                                        maxspan: float | None) -> None:
        """The matcher skips step i + 1 while `waiting[i]` is 0: the count must equal the open partials
        at stage i after any mix of advances, completions, evictions, cancels and expiries."""
        s = SequenceState(3, maxspan, cap)
        for op in ops:
            if op[0] == "advance":
                s.advance(op[1], op[2], op[3], {})
            elif op[0] == "cancel":
                s.cancel(op[1])
            else:
                s.expire(op[1])
            assert s.waiting == [sum(st_[i] is not None for st_ in s.open.values()) for i in range(3)]
