"""Rate-limit and retry header parsing: absent stays absent, 0 stays 0, garbage is ignored."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from exporter.providers.base import RateLimit
from exporter.providers.ratelimit import (
    parse_go_duration,
    parse_ratelimits,
    parse_reset,
    parse_retry_after,
    retry_delay_from_body,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("6m0s", 360.0), ("1m30.5s", 90.5), ("12ms", 0.012), ("1s", 1.0), ("0s", 0.0),
        ("1h2m3s", 3723.0), ("1.5h", 5400.0), ("250us", 0.00025), ("250µs", 0.00025),
        ("100ns", 1e-7), (".5s", 0.5), (" 2s ", 2.0),
        ("", None), ("s", None), ("5", None), ("-1s", None), ("1d", None), ("5 m", None),
        ("1m30", None), ("abc", None), (None, None),
    ],
)
def test_go_durations(text, seconds) -> None:
    got = parse_go_duration(text)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("0.25", 0.25),
        ("6m0s", 360.0),
        ("12ms", 0.012),
        (str(NOW + 42), 42.0),  # a Unix timestamp
        (str(NOW - 42), 0.0),  # in the past: 0, never negative
        ("2027-01-15T08:00:30Z", 30.0),  # RFC 3339, Anthropic's spelling
        ("2027-01-15T08:00:30.500+00:00", 30.5),
        ("2027-01-15T09:00:30+01:00", 30.0),
        ("2027-01-15T07:59:00Z", 0.0),
        ("Fri, 15 Jan 2027 08:01:00 GMT", 60.0),  # HTTP-date
        ("soon", None),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_reset_values(text, seconds) -> None:
    got = parse_reset(text, now=NOW)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_headers_zero_is_kept() -> None:
    headers = {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "0s",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "1999990",
        "x-ratelimit-reset-tokens": "12ms",
    }
    assert parse_ratelimits(headers, now=NOW) == {
        "requests": RateLimit(10000, 0, 0.0),
        "tokens": RateLimit(2000000, 1999990, 0.012),
    }


def test_anthropic_headers_all_four_resources() -> None:
    headers = CIMultiDict()
    for _resource, name in [("requests", "requests"), ("tokens", "tokens"),
                           ("input_tokens", "input-tokens"), ("output_tokens", "output-tokens")]:
        headers[f"Anthropic-RateLimit-{name}-Limit"] = "1000"
        headers[f"Anthropic-RateLimit-{name}-Remaining"] = "0"
        headers[f"Anthropic-RateLimit-{name}-Reset"] = "2027-01-15T08:00:10Z"
    limits = parse_ratelimits(headers, now=NOW)
    assert set(limits) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert all(v == RateLimit(1000, 0, 10.0) for v in limits.values())


def test_mistral_minute_headers() -> None:
    headers = {
        "x-ratelimit-limit-tokens-minute": "500000",
        "x-ratelimit-remaining-tokens-minute": "499000",
        "x-ratelimit-tokens-query-cost": "12",
        "x-ratelimit-limit-req-minute": "60",
        "x-ratelimit-remaining-req-minute": "0",
    }
    assert parse_ratelimits(headers) == {
        "tokens": RateLimit(500000, 499000, None),
        "requests": RateLimit(60, 0, None),
    }


def test_generic_headers_are_requests() -> None:
    headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "199",
               "X-RateLimit-Reset": str(NOW + 5)}
    assert parse_ratelimits(headers, now=NOW) == {"requests": RateLimit(200, 199, 5.0)}


def test_specific_scheme_wins_over_generic() -> None:
    headers = {"x-ratelimit-limit-requests": "10", "x-ratelimit-limit": "999"}
    assert parse_ratelimits(headers) == {"requests": RateLimit(10, None, None)}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-type": "application/json"},
        {"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-3",
         "x-ratelimit-reset-requests": "whenever"},
        {"anthropic-ratelimit-tokens-limit": "", "anthropic-ratelimit-tokens-reset": "nope"},
    ],
)
def test_absent_or_garbage_gives_nothing(headers) -> None:
    assert parse_ratelimits(headers) == {}


def test_partial_garbage_keeps_the_good_fields() -> None:
    headers = {"x-ratelimit-limit-tokens": "1e3", "x-ratelimit-remaining-tokens": "NaN"}
    assert parse_ratelimits(headers) == {"tokens": RateLimit(1000.0, None, None)}


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "20"}, 20.0),
        ({"Retry-After": "0"}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "1"}, 0.25),
        ({"retry-after-ms": "x", "retry-after": "3"}, 3.0),
        ({"retry-after": "Fri, 15 Jan 2027 08:00:45 GMT"}, 45.0),
        ({"retry-after": "Fri, 15 Jan 2027 07:00:00 GMT"}, 0.0),
        ({"retry-after": "later"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers, seconds) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    ("doc", "seconds"),
    [
        ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": "37s"}]}}, 37.0),
        ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                                {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": "1.5s"}]}}, 1.5),
        ({"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                 "retryDelay": 37}]}}, None),
        ({"error": {"details": "x"}}, None),
        ({"error": "x"}, None),
        ([], None),
        (None, None),
    ],
)
def test_gemini_retry_info(doc, seconds) -> None:
    assert retry_delay_from_body(doc) == seconds
