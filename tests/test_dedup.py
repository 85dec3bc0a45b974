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
    """Distinct hashes whose low bits put every id on one of three home slots (7, 15 or 31 in
    the small tables), so probe runs are long, wrap around and shift back on removal."""
    n = int(event_id)
    return [7, 15, 31][n % 3] + (n << 32) - (n % 2) * 2**62


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


def _placed(homes: dict[str, int]):
    """A hasher that puts each id on a chosen home slot, with distinct high bits."""
    return lambda event_id: homes[event_id] + (ord(event_id) << 32)


def test_removal_keeps_entries_that_sit_on_their_own_home() -> None:
    # window 3 -> 8 slots. a@3, c@4 (home 4), b@5 (home 3); d evicts a: b moves back to 3, but c
    # and d (home 6) must stay, or they can no longer be found from their homes.
    d = Dedup(3, hasher=_placed({"a": 3, "b": 3, "c": 4, "d": 6}))
    assert not any(d.seen(x) for x in "acbd")
    assert list(d._table[3:7]) == [d._hash("b"), d._hash("c"), 0, d._hash("d")]
    assert all(d.seen(x) for x in "cbd") and not d.seen("a")


def test_removal_shifts_across_the_end_of_the_table() -> None:
    # homes at the last slot (7) wrap around to 0 and 1; removing the first must pull them back
    d = Dedup(3, hasher=_placed({"a": 7, "b": 7, "c": 7, "e": 1}))
    assert not any(d.seen(x) for x in "abc")  # slots 7, 0, 1
    assert not d.seen("e")  # evicts a; b -> 7, c -> 0, e (home 1) lands on 1
    assert all(d.seen(x) for x in "bce") and not d.seen("a")


def test_removal_across_the_end_keeps_an_entry_on_its_own_home() -> None:
    # window 2 -> 8 slots. a@7, x@0 (home 0); y evicts a: x must stay on slot 0, not move to 7
    d = Dedup(2, hasher=_placed({"a": 7, "x": 0, "y": 3}))
    assert not any(d.seen(k) for k in "axy")
    assert d._table[0] == d._hash("x") and d._table[7] == 0
    assert d.seen("x") and d.seen("y") and not d.seen("a")
