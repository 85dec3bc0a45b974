"""The fixed-memory duplicate filter behaves exactly like a set + deque window."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.dedup import Dedup


class Reference:
    """The obvious implementation: ids as strings in a set, oldest first in a deque."""

    def __init__(self, window: int) -> None:
        self.window, self.ids, self.order = window, set(), deque()

    def seen(self, event_id: str) -> bool:
        if event_id in self.ids:
            return True
        if self.window:
            if len(self.order) == self.window:
                self.ids.discard(self.order.popleft())
            self.order.append(event_id)
            self.ids.add(event_id)
        return False

    def resize(self, window: int) -> None:
        self.window = window
        while len(self.order) > window:
            self.ids.discard(self.order.popleft())


def colliding(event_id: str) -> int:
    """A hash that puts many ids on the same few home slots, so probe runs wrap and shift."""
    n = int(event_id)
    return (n % 3) * 8 + (n % 5) * 2**40 + 7 - n % 2 * 2**63


ids = st.integers(0, 40).map(str)
steps = st.lists(st.one_of(ids, st.tuples(st.just("resize"), st.integers(0, 12))), max_size=300)


@settings(max_examples=300, deadline=None)
@given(window=st.integers(0, 12), steps=steps, crowded=st.booleans())
def test_matches_the_reference_window(window: int, steps: list, crowded: bool) -> None:
    d = Dedup(window, hasher=colliding if crowded else hash)
    ref = Reference(window)
    for step in steps:
        if isinstance(step, tuple):
            d.resize(step[1])
            ref.resize(step[1])
        else:
            assert d.seen(step) == ref.seen(step), step
        assert len(d) == len(ref.order)


def test_a_zero_hash_is_not_taken_for_an_empty_slot() -> None:
    d = Dedup(4, hasher=lambda _: 0)
    assert not d.seen("a")
    assert d.seen("b")  # same (zero) hash: a collision, counted as a duplicate by design


def test_memory_is_fixed_by_the_window() -> None:
    d = Dedup(200_000)
    before = d._table.buffer_info()[1] * 8 + d._ring.buffer_info()[1] * 8
    for i in range(250_000):
        d.seen(f"event-{i}")
    after = d._table.buffer_info()[1] * 8 + d._ring.buffer_info()[1] * 8
    assert before == after <= 6 * 2**20
    assert len(d) == 200_000 and d.seen("event-249999") and not d.seen("event-0")
