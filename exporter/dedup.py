"""The events API's duplicate filter: ids seen among the last N accepted events, in fixed memory.

Ids are kept as 64-bit hashes in two flat arrays rather than as strings in a set: a window of
200 000 ids costs about 6 MB instead of about 25 MB. Two different ids share a 64-bit hash with
a probability of about window / 2**64 per event (1e-14 at the default window), which is the
price of the fixed footprint; such an event would be counted as a duplicate.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

_EMPTY = 0


def _table_size(window: int) -> int:
    """A power of two at least twice the window: linear probing stays short at half load."""
    size = 8
    while size < 2 * window:
        size *= 2
    return size


class Dedup:
    """Event ids seen among the last `window` accepted events (a ring and an open hash table)."""

    def __init__(self, window: int, *, hasher: Callable[[str], int] = hash) -> None:
        self._hash = hasher
        self._build(window, [])

    def _build(self, window: int, keep: list[int]) -> None:
        self._window = window
        self._mask = _table_size(window) - 1
        self._table = array("q", bytes(8 * (self._mask + 1)))
        self._ring = array("q", bytes(8 * window))
        self._next = 0  # ring slot of the next insert (the oldest entry once full)
        self._len = 0
        for h in keep[-window:] if window else ():
            self._insert(h)

    def __len__(self) -> int:
        return self._len

    def resize(self, window: int) -> None:
        """A new window size; the most recent ids that still fit are kept."""
        if window == self._window:
            return
        self._build(window, self._in_order())

    def _in_order(self) -> list[int]:
        if self._len < self._window:
            return list(self._ring[: self._len])
        return list(self._ring[self._next :]) + list(self._ring[: self._next])

    def seen(self, event_id: str) -> bool:
        """True for an id already in the window; otherwise remember it and return False."""
        h = self._hash(event_id) or 1  # 0 marks an empty slot
        table, mask = self._table, self._mask
        i = h & mask
        while (v := table[i]) != _EMPTY:
            if v == h:
                return True
            i = (i + 1) & mask
        if self._window:
            self._insert(h)
        return False

    def _insert(self, h: int) -> None:
        if self._len == self._window:
            self._remove(self._ring[self._next])
        else:
            self._len += 1
        table, mask = self._table, self._mask
        i = h & mask
        while table[i] != _EMPTY:
            i = (i + 1) & mask
        table[i] = h
        self._ring[self._next] = h
        self._next = (self._next + 1) % self._window

    def _remove(self, h: int) -> None:
        """Delete `h` and shift later entries of its probe run back (no tombstones)."""
        table, mask = self._table, self._mask
        i = h & mask
        while table[i] != h:
            i = (i + 1) & mask
        j = i
        while True:
            j = (j + 1) & mask
            v = table[j]
            if v == _EMPTY:
                break
            home = v & mask
            # `v` may move back to slot i only if its home is not cyclically within (i, j]
            if (i < j and i < home <= j) or (i > j and (home > i or home <= j)):
                continue
            table[i] = v
            i = j
        table[i] = _EMPTY
