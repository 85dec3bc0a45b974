"""Runs every provider/check on its own interval, with jitter and a hard deadline per probe.

Each provider/check pair is one asyncio task, so a provider that hangs holds up nothing but
itself. A probe never takes longer than the provider's timeout plus a small grace period: the
prober's own aiohttp timeout normally fires first, and `asyncio.timeout` is the backstop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping

import aiohttp

from exporter.probestate import ProbeStore
from exporter.providers.base import ProbeFn, ProbeResult, ProbeTarget
from exporter.vocab import Check, Reason

log = logging.getLogger(__name__)

GRACE = 0.5  # seconds past the provider timeout before the backstop cancels a probe
JITTER = 0.1  # each wait is the interval +/- 10 %
MAX_RETRY_AFTER = 3600.0  # never let a provider's retry-after silence a check for more than 1 h

CostFn = Callable[[str, str, object], float | None]


class ProbeScheduler:
    """Owns the probe tasks; `start()` launches them, `stop()` cancels and awaits them."""

    def __init__(
        self,
        store: ProbeStore,
        session: aiohttp.ClientSession,
        targets: Mapping[str, ProbeTarget],
        checks: Mapping[str, Mapping[Check, float]],
        probers: Mapping[str, ProbeFn],
        *,
        cost: CostFn | None = None,
        startup_spread: float = 5.0,
        rng: random.Random | None = None,
        failed_interval: Mapping[str, float] | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._targets = targets
        self._checks = checks
        self._probers = probers
        self._cost = cost
        self._spread = startup_spread
        self._rng = rng or random.Random()
        self._failed_interval = dict(failed_interval or {})
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for provider, target in self._targets.items():
            for check, interval in self._checks[provider].items():
                task = asyncio.create_task(
                    self._loop(target, check, interval), name=f"probe-{provider}-{check}"
                )
                self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def probe_once(self, target: ProbeTarget, check: Check) -> ProbeResult:
        """Run one probe under the hard deadline and record it."""
        prober = self._probers[target.api]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout + GRACE):
                result = await prober(self._session, target, check)
        except TimeoutError:
            result = ProbeResult(
                success=False,
                reason=Reason.TIMEOUT,
                duration=time.perf_counter() - started,
                error=f"no answer within {target.timeout:g}s",
            )
        except Exception as exc:  # a prober bug must not kill the schedule
            log.error("prober %s/%s raised %s", target.provider, check, type(exc).__name__)
            result = ProbeResult(
                success=False,
                reason=Reason.OTHER,
                duration=time.perf_counter() - started,
                error=f"internal error: {type(exc).__name__}",
            )
        cost = None
        if result.usage is not None and self._cost is not None:
            cost = self._cost(target.provider, target.probe_model, result.usage)
        self._store.record(target.provider, check, result, cost_usd=cost)
        if result.retry_after:
            wait = min(result.retry_after, MAX_RETRY_AFTER)
            pstate = self._store.providers[target.provider]
            pstate.not_before = max(pstate.not_before, time.monotonic() + wait)
        if not result.success:
            log.debug(
                "probe %s/%s failed: %s %s", target.provider, check, result.reason, result.error
            )
        return result

    def _jittered(self, interval: float) -> float:
        return interval * (1 + self._rng.uniform(-JITTER, JITTER))

    async def _loop(self, target: ProbeTarget, check: Check, interval: float) -> None:
        await asyncio.sleep(self._rng.uniform(0, min(self._spread, interval)))
        pstate = self._store.providers[target.provider]
        while True:
            # Honour a provider's retry-after for billable checks; the free list still runs.
            # Re-check after waiting: another check may have brought a later retry-after.
            while check is not Check.MODELS:
                delay = pstate.not_before - time.monotonic()
                if delay <= 0:
                    break
                await asyncio.sleep(delay)
            started = time.monotonic()
            result = await self.probe_once(target, check)
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self._jittered(self._next(target, result, interval))
                                    - elapsed))  # fmt: skip

    def _next(self, target: ProbeTarget, result: ProbeResult, interval: float) -> float:
        """The interval, or the provider's shorter free-check interval after a failure: a
        billable check that failed is confirmed (or cleared) within a minute instead of 20, and a
        refused call costs no tokens. A rate limit keeps the interval (and its retry-after)."""
        if result.success or result.reason is Reason.RATE_LIMIT:
            return interval
        return min(interval, self._failed_interval.get(target.provider, interval))
