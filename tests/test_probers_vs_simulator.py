"""Every prober against the simulator, for all eight providers: each check in mode ok, and
every fault mode mapped to the reason an operator would expect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.providers import PROBERS, make_trace_config
from exporter.providers.base import ProbeResult, ProbeTarget
from exporter.simulator import SIM_STATE, create_app
from exporter.vocab import PROVIDERS, Check, Reason

KEY = "sk-sim-prober-SENTINEL-42"
RETRY_AFTER_SENT = {"openai", "anthropic", "mistral", "gemini"}  # header or Gemini RetryInfo


@pytest.fixture
async def sim(aiohttp_server) -> AsyncIterator[tuple[aiohttp.web.Application, str]]:
    app = create_app(seed=7)
    server = await aiohttp_server(app)
    yield app, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(trace_configs=[make_trace_config()]) as s:
        yield s


def make_target(url: str, provider: str, timeout: float = 5.0, key: str | None = KEY):
    defaults = PROVIDER_DEFAULTS[provider]
    return ProbeTarget(
        provider=provider,
        api=defaults["api"],
        base_url=url + SIMULATOR_ROOTS[provider],
        probe_model=defaults["probe_model"],
        timeout=timeout,
        api_key=key,
    )


async def run_all(session, target: ProbeTarget) -> dict[Check, ProbeResult]:
    """The three checks at once (so hanging modes cost one timeout, not three)."""
    prober = PROBERS[target.api]
    results = await asyncio.gather(*(prober(session, target, c) for c in Check))
    return dict(zip(Check, results, strict=True))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_ok_mode_every_check(sim, session, provider) -> None:
    """Mode ok: the list holds the probe model, calls report usage, streams a real TTFT."""
    _, url = sim
    results = await run_all(session, make_target(url, provider))
    for check, result in results.items():
        assert result.success, (check, result.reason, result.error)
        assert result.status == 200 and result.reason is None and result.error == ""
        assert {"connect", "first_byte", "total"} <= set(result.phases)
    assert PROVIDER_DEFAULTS[provider]["probe_model"] in results[Check.MODELS].models
    for check in (Check.COMPLETION, Check.STREAM):
        usage = results[check].usage
        assert usage is not None and usage.input > 0 and usage.output >= 1, (check, usage)
    phases = results[Check.STREAM].phases
    assert phases["first_byte"] <= phases["first_token"] < phases["total"]


async def test_openai_and_anthropic_ratelimits(sim, session) -> None:
    """The simulator's OpenAI and Anthropic rate-limit headers come through as numbers."""
    _, url = sim
    openai = await PROBERS["openai"](session, make_target(url, "openai"), Check.COMPLETION)
    assert openai.ratelimits["requests"].limit == 5000
    assert openai.ratelimits["tokens"].limit == 4_000_000
    assert 0 <= openai.ratelimits["requests"].remaining < 5000
    assert 0 <= openai.ratelimits["requests"].reset_seconds <= 60
    anthropic = await PROBERS["anthropic"](session, make_target(url, "anthropic"),
                                           Check.COMPLETION)
    limits = anthropic.ratelimits
    assert set(limits) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert limits["requests"].limit == 4000 and limits["output_tokens"].limit == 400_000
    assert all(0 <= v.reset_seconds <= 61 for v in limits.values())


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limit_mode(sim, session, provider) -> None:
    """429s are rate_limit, with retry-after where the provider sends one; 0 stays 0."""
    app, url = sim
    app[SIM_STATE].set_mode(provider, "rate_limit")
    results = await run_all(session, make_target(url, provider))
    for check in (Check.COMPLETION, Check.STREAM):
        result = results[check]
        assert (result.success, result.reason, result.status) == (False, Reason.RATE_LIMIT, 429)
        if provider in RETRY_AFTER_SENT:
            assert result.retry_after is not None and result.retry_after > 0
        if provider in ("openai", "anthropic"):
            assert result.ratelimits["requests"].remaining == 0


FAULTS = [
    ("down", Reason.NETWORK),
    ("overloaded", Reason.OVERLOADED),
    ("auth", Reason.AUTH),
    ("server_error", Reason.SERVER_ERROR),
    ("malformed", Reason.INVALID_RESPONSE),
    ("billing", Reason.BILLING),
    ("echo_key", Reason.AUTH),
]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("mode", "reason"), FAULTS)
async def test_fault_modes(sim, session, provider, mode, reason) -> None:
    """Each fault mode becomes its reason on the billable checks; the key never leaks."""
    app, url = sim
    app[SIM_STATE].set_mode(provider, mode, latency_ms=0)
    results = await run_all(session, make_target(url, provider))
    for check in (Check.COMPLETION, Check.STREAM):
        result = results[check]
        assert not result.success and result.reason is reason, (check, result.error)
        assert KEY not in result.error
    if mode in ("down", "auth", "echo_key"):
        assert results[Check.MODELS].reason is reason


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["hang", "slow"])
async def test_hang_and_slow_time_out(sim, session, provider, mode) -> None:
    """A hanging or slow provider is a timeout, reported within timeout + 1 s."""
    app, url = sim
    app[SIM_STATE].set_mode(provider, mode)
    started = time.perf_counter()
    results = await run_all(session, make_target(url, provider, timeout=0.3))
    assert time.perf_counter() - started < 1.3
    assert all(r.reason is Reason.TIMEOUT for r in results.values()), results


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_missing_key_is_auth(sim, session, provider) -> None:
    """Without a key the simulator answers with the provider's missing-key error: auth."""
    _, url = sim
    result = await PROBERS[PROVIDER_DEFAULTS[provider]["api"]](
        session, make_target(url, provider, key=None), Check.MODELS)
    assert result.reason is Reason.AUTH, result.error
