"""Per-provider rate-limit windows and the headers each provider sends about them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

WINDOW_S = 60.0
RESOURCES: tuple[str, ...] = ("requests", "tokens", "input_tokens", "output_tokens")


@dataclass(frozen=True)
class Limits:
    """Per-minute budgets; 0 means the provider has no such limit."""

    requests: int
    tokens: int
    input_tokens: int = 0
    output_tokens: int = 0


_LIMITS: dict[str, Limits] = {
    "openai": Limits(requests=5000, tokens=4_000_000),
    "anthropic": Limits(
        requests=4000, tokens=2_400_000, input_tokens=2_000_000, output_tokens=400_000
    ),
    "mistral": Limits(requests=360, tokens=2_000_000),
    "kimi_k2": Limits(requests=500, tokens=3_000_000),
}
_QUIET = Limits(requests=1000, tokens=1_000_000)  # tracked, never sent in headers


def limits_for(provider: str) -> Limits:
    """The simulated account's budgets for one provider."""
    return _LIMITS.get(provider, _QUIET)


@dataclass
class RateWindow:
    """A fixed one-minute window that opens on first use and counts what was consumed."""

    limits: Limits
    start: float | None = None
    used: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0))

    def _roll(self, now: float) -> None:
        if self.start is not None and now - self.start >= WINDOW_S:
            self.start = None
            self.used = dict.fromkeys(RESOURCES, 0)

    def consume(self, now: float, input_tokens: int, output_tokens: int) -> None:
        """Count one request and its tokens."""
        self._roll(now)
        if self.start is None:
            self.start = now
        self.used["requests"] += 1
        self.used["tokens"] += input_tokens + output_tokens
        self.used["input_tokens"] += input_tokens
        self.used["output_tokens"] += output_tokens

    def remaining(self, now: float) -> dict[str, int]:
        """What is left in the current window, per resource (never below 0)."""
        self._roll(now)
        return {r: max(0, getattr(self.limits, r) - self.used[r]) for r in RESOURCES}

    def reset_after(self, now: float) -> float:
        """Seconds until the window refills."""
        self._roll(now)
        return WINDOW_S if self.start is None else max(0.0, self.start + WINDOW_S - now)


def go_duration(seconds: float) -> str:
    """A duration the way Go prints it, as OpenAI sends resets: 12ms, 1.5s, 6m0s, 1h0m0s."""
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def rfc3339(epoch: float) -> str:
    """A UTC timestamp with second precision, as Anthropic sends resets."""
    return datetime.fromtimestamp(math.ceil(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refill(limit: int, left: int) -> float:
    """Seconds until a continuously refilling bucket is full again (OpenAI's reset meaning)."""
    return (limit - left) / limit * WINDOW_S if limit else 0.0


def ratelimit_headers(
    provider: str, window: RateWindow, now: float, wall: float, *, exhausted: bool = False
) -> dict[str, str]:
    """The rate-limit headers `provider` sends with an answer (empty for those that send none)."""
    limits = window.limits
    left = dict.fromkeys(RESOURCES, 0) if exhausted else window.remaining(now)
    reset = window.reset_after(now)
    if provider == "openai":
        return {
            "x-ratelimit-limit-requests": str(limits.requests),
            "x-ratelimit-limit-tokens": str(limits.tokens),
            "x-ratelimit-remaining-requests": str(left["requests"]),
            "x-ratelimit-remaining-tokens": str(left["tokens"]),
            "x-ratelimit-reset-requests": go_duration(_refill(limits.requests, left["requests"])),
            "x-ratelimit-reset-tokens": go_duration(_refill(limits.tokens, left["tokens"])),
        }
    if provider == "anthropic":
        out: dict[str, str] = {}
        for resource in RESOURCES:
            name = resource.replace("_", "-")
            remaining = left[resource]
            if resource != "requests":
                remaining = round(remaining, -3)  # Anthropic rounds token counts to thousands
            out[f"anthropic-ratelimit-{name}-limit"] = str(getattr(limits, resource))
            out[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            out[f"anthropic-ratelimit-{name}-reset"] = rfc3339(wall + reset)
        return out
    if provider == "mistral":
        return {
            "x-ratelimit-limit-tokens-minute": str(limits.tokens),
            "x-ratelimit-remaining-tokens-minute": str(left["tokens"]),
            "x-ratelimit-limit-req-minute": str(limits.requests),
            "x-ratelimit-remaining-req-minute": str(left["requests"]),
        }
    if provider == "kimi_k2":
        return {
            "X-RateLimit-Limit": str(limits.requests),
            "X-RateLimit-Remaining": str(left["requests"]),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
    return {}


def retry_headers(provider: str, seconds: float) -> dict[str, str]:
    """Retry hints on a 429, for the providers known to send them."""
    whole = str(max(1, math.ceil(seconds)))
    if provider == "openai":
        return {"retry-after": whole, "retry-after-ms": str(max(1, round(seconds * 1000)))}
    if provider in ("anthropic", "mistral"):
        return {"retry-after": whole}
    return {}
