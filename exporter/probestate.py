"""What the probes have found so far: last results, counters and histograms, read at scrape time."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field

from exporter.histogram import PROBE_BUCKETS, Histogram
from exporter.providers.base import ProbeResult, RateLimit, Usage
from exporter.vocab import Check, Reason

HISTORY_LEN = 50  # recent results kept per provider/check, for /api/health's error rate


@dataclass
class CheckState:
    """One provider/check pair."""

    interval: float
    last: ProbeResult | None = None
    last_run: float | None = None  # wall clock, seconds
    last_success: float | None = None
    probes: int = 0
    failures: Counter[Reason] = field(default_factory=Counter)
    duration: Histogram = field(default_factory=lambda: Histogram(PROBE_BUCKETS))
    history: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=HISTORY_LEN))


@dataclass
class ProviderState:
    """One provider: its checks plus what it told us about models, limits and spend."""

    provider: str
    api: str
    host: str
    probe_model: str
    key_configured: bool
    allowed_models: tuple[str, ...]
    checks: dict[Check, CheckState] = field(default_factory=dict)
    models_seen: frozenset[str] | None = None
    ratelimits: dict[str, RateLimit] = field(default_factory=dict)
    tokens: Counter[str] = field(default_factory=Counter)
    cost_usd: float = 0.0
    unpriced_probes: int = 0
    not_before: float = 0.0  # monotonic time before which no billable probe runs (retry-after)

    def up(self) -> bool | None:
        """True when every enabled check's last result succeeded; None before any result."""
        results = [c.last for c in self.checks.values() if c.last is not None]
        if not results:
            return None
        return all(r.success for r in results)

    def last_error(self) -> str:
        failed = [c for c in self.checks.values() if c.last is not None and not c.last.success]
        if not failed:
            return ""
        latest = max(failed, key=lambda c: c.last_run or 0.0)
        assert latest.last is not None
        return (
            f"{latest.last.reason}: {latest.last.error}"
            if latest.last.error
            else str(latest.last.reason)
        )


class ProbeStore:
    """All providers' probe state. Written by the scheduler, read by collectors and /api/health."""

    def __init__(self) -> None:
        self.providers: dict[str, ProviderState] = {}

    def add_provider(self, state: ProviderState) -> None:
        self.providers[state.provider] = state

    def record(
        self,
        provider: str,
        check: Check,
        result: ProbeResult,
        *,
        cost_usd: float | None = None,
        now: float | None = None,
    ) -> None:
        """Fold one probe result in. `cost_usd` None with usage present counts as unpriced."""
        now = time.time() if now is None else now
        pstate = self.providers[provider]
        cstate = pstate.checks[check]
        cstate.last = result
        cstate.last_run = now
        cstate.probes += 1
        cstate.history.append((now, result.success))
        if result.success:
            cstate.last_success = now
            cstate.duration.observe(result.duration)
        else:
            cstate.failures[result.reason or Reason.OTHER] += 1
        if result.models is not None:
            pstate.models_seen = result.models
        if result.ratelimits:
            pstate.ratelimits = {**pstate.ratelimits, **result.ratelimits}
        if result.usage is not None:
            self._spend(pstate, result.usage, cost_usd)

    @staticmethod
    def _spend(pstate: ProviderState, usage: Usage, cost_usd: float | None) -> None:
        for token_type, n in usage.as_dict().items():
            if n:
                pstate.tokens[token_type] += n
        if cost_usd is None:
            pstate.unpriced_probes += 1
        else:
            pstate.cost_usd += cost_usd
