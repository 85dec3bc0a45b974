from __future__ import annotations

import pytest

from exporter.histogram import LATENCY_BUCKETS, TTFT_BUCKETS, Histogram


def test_buckets_follow_the_contract() -> None:
    assert LATENCY_BUCKETS[-1] == 600
    assert len(LATENCY_BUCKETS) <= 15
    assert len(TTFT_BUCKETS) <= 15
    assert sum(1 for b in TTFT_BUCKETS if b < 1) >= 5


def test_bounds_are_inclusive_and_cumulative() -> None:
    h = Histogram((1, 2, 5))
    for value in (0.5, 1, 1.5, 2, 7):
        h.observe(value)
    assert list(h.cumulative()) == [(1, 2), (2, 4), (5, 4), (float("inf"), 5)]
    assert h.count == 5
    assert h.sum == pytest.approx(12.0)


def test_quantile_interpolates_like_prometheus() -> None:
    h = Histogram((1, 2, 4))
    for value in (0.5, 1.5, 1.5, 3):
        h.observe(value)
    # rank 2 of 4 falls in (1, 2] which holds 2 observations after 1 below: 1 + 1 * (1/2)
    assert h.quantile(0.5) == pytest.approx(1.5)
    assert Histogram((1,)).quantile(0.5) is None


def test_cumulative_counts_match_the_pairs() -> None:
    h = Histogram((1, 2, 5))
    for v in (0.5, 1, 1.5, 3, 9, 9):
        h.observe(v)
    assert h.cumulative_counts() == [n for _, n in h.cumulative()] == [2, 3, 4, 6]
