"""Scheduling: own interval per check, a hard deadline, no provider delays another."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from exporter.probestate import CheckState, ProbeStore, ProviderState
from exporter.providers.base import ProbeResult, ProbeTarget
from exporter.scheduler import GRACE, ProbeScheduler
from exporter.vocab import Check, Reason


def store_for(*providers: str, checks: tuple[Check, ...] = (Check.MODELS,)) -> ProbeStore:
    store = ProbeStore()
    for pid in providers:
        state = ProviderState(pid, "fake", "h", "m", True, ("m",))
        state.checks = {c: CheckState(interval=0.2) for c in checks}
        store.add_provider(state)
    return store


def target(pid: str, timeout: float = 0.3) -> ProbeTarget:
    return ProbeTarget(pid, "fake", "http://127.0.0.1:1", "m", timeout, api_key="k")


async def test_a_hanging_provider_is_timeout_while_others_keep_their_schedule() -> None:
    runs: dict[str, list[float]] = {"fast": [], "stuck": []}

    async def fake(session: aiohttp.ClientSession, t: ProbeTarget, check: Check) -> ProbeResult:
        runs[t.provider].append(time.monotonic())
        if t.provider == "stuck":
            await asyncio.Event().wait()  # ignores its own timeout: the backstop must fire
        return ProbeResult(success=True, duration=0.001)

    store = store_for("fast", "stuck")
    targets = {"fast": target("fast"), "stuck": target("stuck")}
    checks = {p: {Check.MODELS: 0.1} for p in targets}
    async with aiohttp.ClientSession() as session:
        sched = ProbeScheduler(
            store,
            session,
            targets,
            checks,
            {"fake": fake},
            startup_spread=0.0,
            rng=random.Random(1),
        )
        started = time.monotonic()
        sched.start()
        await asyncio.sleep(1.0)
        await sched.stop()
    stuck = store.providers["stuck"].checks[Check.MODELS]
    assert stuck.last is not None
    assert stuck.last.reason is Reason.TIMEOUT
    assert stuck.last.duration <= 0.3 + GRACE + 0.2
    assert stuck.last_run is not None
    # the fast provider ran about every 0.1 s for the whole second, never waiting on "stuck"
    assert len(runs["fast"]) >= 7
    gaps = [b - a for a, b in zip(runs["fast"], runs["fast"][1:], strict=False)]
    assert max(gaps) < 0.25
    assert runs["fast"][0] - started < 0.05


async def test_retry_after_defers_billable_checks_only() -> None:
    calls: list[Check] = []

    async def limited(session: aiohttp.ClientSession, t: ProbeTarget, c: Check) -> ProbeResult:
        calls.append(c)
        if c is Check.MODELS:
            return ProbeResult(success=True)
        return ProbeResult(success=False, reason=Reason.RATE_LIMIT, retry_after=5.0)

    store = store_for("p", checks=(Check.MODELS, Check.COMPLETION))
    async with aiohttp.ClientSession() as session:
        sched = ProbeScheduler(
            store,
            session,
            {"p": target("p")},
            {"p": {Check.MODELS: 0.1, Check.COMPLETION: 0.1}},
            {"fake": limited},
            startup_spread=0.0,
        )
        sched.start()
        await asyncio.sleep(0.55)
        await sched.stop()
    assert calls.count(Check.COMPLETION) == 1  # waits out the 5 s retry-after
    assert calls.count(Check.MODELS) >= 4  # the free list keeps running


async def test_a_crashing_prober_is_recorded_not_fatal() -> None:
    async def broken(session: aiohttp.ClientSession, t: ProbeTarget, c: Check) -> ProbeResult:
        raise RuntimeError("bug")

    store = store_for("p")
    async with aiohttp.ClientSession() as session:
        sched = ProbeScheduler(
            store, session, {"p": target("p")}, {"p": {Check.MODELS: 1}}, {"fake": broken}
        )
        result = await sched.probe_once(target("p"), Check.MODELS)
    assert result.reason is Reason.OTHER
    assert store.providers["p"].checks[Check.MODELS].failures[Reason.OTHER] == 1


async def test_stop_cancels_promptly() -> None:
    async def slow(session: aiohttp.ClientSession, t: ProbeTarget, c: Check) -> ProbeResult:
        await asyncio.sleep(10)
        return ProbeResult(success=True)

    store = store_for("p")
    async with aiohttp.ClientSession() as session:
        sched = ProbeScheduler(
            store,
            session,
            {"p": target("p", timeout=20)},
            {"p": {Check.MODELS: 30}},
            {"fake": slow},
            startup_spread=0.0,
        )
        sched.start()
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        await sched.stop()
    assert time.monotonic() - t0 < 0.5


async def test_a_failed_billable_check_is_re_probed_at_the_free_interval() -> None:
    """completion fails (server_error) -> next try after the free interval, not the billable one;
    stream succeeds and a rate-limited provider keep the billable interval."""
    calls: dict[tuple[str, Check], int] = {}

    async def fake(session: aiohttp.ClientSession, t: ProbeTarget, c: Check) -> ProbeResult:
        calls[(t.provider, c)] = calls.get((t.provider, c), 0) + 1
        if t.provider == "limited":
            return ProbeResult(success=False, reason=Reason.RATE_LIMIT)
        if c is Check.COMPLETION:
            return ProbeResult(success=False, reason=Reason.SERVER_ERROR)
        return ProbeResult(success=True)

    store = store_for("p", "limited", checks=(Check.COMPLETION, Check.STREAM))
    targets = {"p": target("p"), "limited": target("limited")}
    checks = {p: {Check.COMPLETION: 30.0, Check.STREAM: 30.0} for p in targets}
    async with aiohttp.ClientSession() as session:
        sched = ProbeScheduler(store, session, targets, checks, {"fake": fake},
                               startup_spread=0.0, rng=random.Random(2),
                               failed_interval={"p": 0.05, "limited": 0.05})  # fmt: skip
        sched.start()
        await asyncio.sleep(0.6)
        await sched.stop()
    assert calls[("p", Check.COMPLETION)] >= 6  # every ~0.05 s while it fails
    assert calls[("p", Check.STREAM)] == 1  # succeeded: the 30 s interval holds
    assert calls[("limited", Check.COMPLETION)] == 1  # rate limits keep the interval
