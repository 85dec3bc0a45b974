"""A plain in-memory histogram that collectors read at scrape time."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate

# LLM calls are long: latency buckets reach 600 s. Time to first token needs resolution below 1 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300, 600,
)  # fmt: skip
TTFT_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60,
)  # fmt: skip
PROBE_BUCKETS: tuple[float, ...] = (
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60,
)  # fmt: skip
SESSION_DURATION_BUCKETS: tuple[float, ...] = (
    10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400,
)  # fmt: skip
SESSION_MESSAGES_BUCKETS: tuple[float, ...] = (1, 2, 4, 6, 8, 10, 15, 20, 30, 50, 75, 100, 200)
QUALITY_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class Histogram:
    """Counts per upper bound (non-cumulative inside, cumulative when read) plus sum and count."""

    __slots__ = ("_counts", "bounds", "count", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        self._counts = [0] * (len(self.bounds) + 1)  # last slot is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> Iterator[tuple[float, int]]:
        """(upper bound, cumulative count) pairs ending with (+Inf, count)."""
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += n
            yield bound, running

    def cumulative_counts(self) -> list[int]:
        """Cumulative counts per bucket, the last one (+Inf) equal to the count."""
        return list(accumulate(self._counts))

    def quantile(self, q: float) -> float | None:
        """Linear interpolation inside the bucket, as Prometheus' histogram_quantile does."""
        if not self.count:
            return None
        rank, lower, seen = q * self.count, 0.0, 0
        for bound, n in zip(self.bounds, self._counts, strict=False):
            if seen + n >= rank and n:
                return lower + (bound - lower) * (rank - seen) / n
            seen += n
            lower = bound
        return self.bounds[-1] if self.bounds else None
