"""What every prober takes and returns: one signature for the three wire families."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from exporter.vocab import Check, Reason


@dataclass(frozen=True)
class ProbeTarget:
    """Everything a prober needs to reach one provider. `api_key` never leaves this object."""

    provider: str
    api: str
    base_url: str
    probe_model: str
    timeout: float
    api_key: str | None = field(default=None, repr=False)


@dataclass
class Usage:
    """Token counts by contract `token_type`. `input` excludes cached and cache-write tokens."""

    input: int = 0
    output: int = 0
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input": self.input,
            "output": self.output,
            "cached_input": self.cached_input,
            "cache_write": self.cache_write,
            "reasoning": self.reasoning,
        }


@dataclass(frozen=True)
class RateLimit:
    """One rate-limit resource as the provider reported it; None where a header was absent."""

    limit: float | None = None
    remaining: float | None = None
    reset_seconds: float | None = None


@dataclass
class ProbeResult:
    """The outcome of one probe. A failure is data: `success=False` plus a bounded `reason`."""

    success: bool
    reason: Reason | None = None
    status: int | None = None
    duration: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # keys from vocab.PHASES
    usage: Usage | None = None
    models: frozenset[str] | None = None  # model ids the provider listed (models check)
    ratelimits: dict[str, RateLimit] = field(default_factory=dict)  # keys from RATELIMIT_RESOURCES
    retry_after: float | None = None  # seconds the provider asked us to wait
    error: str = ""  # short, redacted, for logs and /api/health; never a label


ProbeFn = Callable[[aiohttp.ClientSession, ProbeTarget, Check], Awaitable[ProbeResult]]
