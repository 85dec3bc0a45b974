"""Rate-limit and retry hints from response headers (and Gemini's RetryInfo error detail).

Every parser here is total: an absent header stays absent (None / no key), a 0 stays 0, and a
value it cannot read is ignored, never raised.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from exporter.providers.base import RateLimit

# resource -> (limit header, remaining header, reset header or None), lower-case names.
# The first scheme that yields anything for a resource wins, so order is precedence.
HEADER_SCHEMES: tuple[tuple[str, str, str, str | None], ...] = (
    # OpenAI (and xAI when it sends them): reset is a Go duration such as "6m0s".
    ("requests", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
     "x-ratelimit-reset-requests"),
    ("tokens", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
     "x-ratelimit-reset-tokens"),
    # Anthropic: reset is an RFC 3339 timestamp.
    ("requests", "anthropic-ratelimit-requests-limit", "anthropic-ratelimit-requests-remaining",
     "anthropic-ratelimit-requests-reset"),
    ("tokens", "anthropic-ratelimit-tokens-limit", "anthropic-ratelimit-tokens-remaining",
     "anthropic-ratelimit-tokens-reset"),
    ("input_tokens", "anthropic-ratelimit-input-tokens-limit",
     "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-input-tokens-reset"),
    ("output_tokens", "anthropic-ratelimit-output-tokens-limit",
     "anthropic-ratelimit-output-tokens-remaining", "anthropic-ratelimit-output-tokens-reset"),
    # Mistral: per-minute windows, no reset header; older responses used "ratelimitbysize".
    ("tokens", "x-ratelimit-limit-tokens-minute", "x-ratelimit-remaining-tokens-minute", None),
    ("requests", "x-ratelimit-limit-req-minute", "x-ratelimit-remaining-req-minute", None),
    ("tokens", "x-ratelimitbysize-limit-minute", "x-ratelimitbysize-remaining-minute", None),
    # Generic (Moonshot/Kimi help page): one unnamed window, taken to be requests.
    ("requests", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"),
)

_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
             "h": 3600.0}
_EPOCH_FLOOR = 1e9  # a bare number this large is a Unix timestamp, not a number of seconds


def parse_number(value: str | None) -> float | None:
    """A finite, non-negative number, or None."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def parse_go_duration(value: str | None) -> float | None:
    """Seconds from a Go duration ("6m0s", "1m30.5s", "12ms", "0s"), or None."""
    if value is None or not _GO_WHOLE.fullmatch(text := value.strip()):
        return None
    return sum(float(n) * _GO_UNITS[u] for n, u in _GO_PART.findall(text))


def parse_timestamp(value: str | None) -> datetime | None:
    """An aware datetime from RFC 3339 or an HTTP-date, or None."""
    if value is None:
        return None
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds until a window resets, >= 0, from any spelling providers use.

    Accepts plain seconds ("30", "0.5"), a Unix timestamp (>= 1e9), a Go duration ("1m30s")
    or an absolute RFC 3339 / HTTP-date timestamp.
    """
    if value is None:
        return None
    now = time.time() if now is None else now
    number = parse_number(value)
    if number is not None:
        return max(0.0, number - now) if number >= _EPOCH_FLOOR else number
    duration = parse_go_duration(value)
    if duration is not None:
        return duration
    moment = parse_timestamp(value)
    return None if moment is None else max(0.0, moment.timestamp() - now)


def parse_ratelimits(headers: Mapping[str, str], now: float | None = None) -> dict[str, RateLimit]:
    """Rate-limit state by resource from whichever header scheme the response used."""
    lower = {k.lower(): v for k, v in headers.items()}
    found: dict[str, RateLimit] = {}
    for resource, limit_h, remaining_h, reset_h in HEADER_SCHEMES:
        if resource in found:
            continue
        limit = parse_number(lower.get(limit_h))
        remaining = parse_number(lower.get(remaining_h))
        reset = parse_reset(lower.get(reset_h), now) if reset_h else None
        if limit is not None or remaining is not None or reset is not None:
            found[resource] = RateLimit(limit=limit, remaining=remaining, reset_seconds=reset)
    return found


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `retry-after` (seconds or HTTP-date)."""
    lower = {k.lower(): v for k, v in headers.items()}
    millis = parse_number(lower.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = lower.get("retry-after")
    if value is None:
        return None
    seconds = parse_number(value)
    if seconds is not None:
        return seconds
    moment = parse_timestamp(value)
    now = time.time() if now is None else now
    return None if moment is None else max(0.0, moment.timestamp() - now)


def retry_delay_from_body(doc: Any) -> float | None:
    """Gemini's `error.details[]` google.rpc.RetryInfo `retryDelay` ("37s"), or None."""
    error = doc.get("error") if isinstance(doc, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for item in details if isinstance(details, list) else ():
        if isinstance(item, dict) and str(item.get("@type", "")).endswith("rpc.RetryInfo"):
            delay = item.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return parse_number(delay[:-1])
    return None
