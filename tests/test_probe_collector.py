"""The probe collector renders exactly what the store holds, read with get_sample_value."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from exporter.collector import ProbeCollector
from exporter.probestate import CheckState, ProbeStore, ProviderState
from exporter.providers.base import ProbeResult, RateLimit, Usage
from exporter.vocab import Check, Reason


def make_store(key: bool = True) -> ProbeStore:
    store = ProbeStore()
    state = ProviderState(
        provider="openai",
        api="openai",
        host="api.openai.com",
        probe_model="gpt-6-luna",
        key_configured=key,
        allowed_models=("gpt-6-luna", "gpt-6-sol"),
    )
    if key:
        state.checks = {Check.MODELS: CheckState(30.0), Check.COMPLETION: CheckState(600.0)}
    store.add_provider(state)
    return store


def test_success_and_failure_are_rendered(registry: CollectorRegistry) -> None:
    store = make_store()
    registry.register(ProbeCollector(store))
    store.record(
        "openai",
        Check.MODELS,
        ProbeResult(
            success=True,
            duration=0.2,
            phases={"connect": 0.01, "first_byte": 0.15, "total": 0.2},
            models=frozenset({"gpt-6-luna", "whisper-9"}),
        ),
        now=1000.0,
    )
    store.record(
        "openai",
        Check.COMPLETION,
        ProbeResult(
            success=False,
            reason=Reason.RATE_LIMIT,
            duration=0.1,
            ratelimits={"requests": RateLimit(limit=500, remaining=0, reset_seconds=1.5)},
            usage=Usage(input=9, output=1),
        ),
        cost_usd=0.000002,
        now=1001.0,
    )
    m = {"provider": "openai", "check": "models"}
    c = {"provider": "openai", "check": "completion"}
    get = registry.get_sample_value
    assert get("llm_probe_success", m) == 1
    assert get("llm_probe_success", c) == 0
    assert get("llm_provider_up", {"provider": "openai"}) == 0
    assert get("llm_probes_total", c) == 1
    assert get("llm_probe_failures_total", {**c, "reason": "rate_limit"}) == 1
    assert get("llm_probe_failures_total", {**c, "reason": "timeout"}) == 0
    assert get("llm_probe_duration_seconds_count", m) == 1
    assert get("llm_probe_duration_seconds_count", c) == 0
    assert get("llm_probe_duration_seconds_bucket", {**m, "le": "0.25"}) == 1
    assert get("llm_probe_phase_seconds", {**m, "phase": "first_byte"}) == 0.15
    assert get("llm_probe_phase_seconds", {**m, "phase": "tls"}) is None
    assert get("llm_probe_last_run_timestamp_seconds", c) == 1001.0
    assert get("llm_probe_last_success_timestamp_seconds", c) is None
    assert get("llm_probe_interval_seconds", c) == 600.0
    assert get("llm_provider_model_available", {"provider": "openai", "model": "gpt-6-luna"}) == 1
    assert get("llm_provider_model_available", {"provider": "openai", "model": "gpt-6-sol"}) == 0
    assert get("llm_provider_model_available", {"provider": "openai", "model": "whisper-9"}) is None
    rl = {"provider": "openai", "resource": "requests"}
    assert get("llm_provider_ratelimit_remaining", rl) == 0  # a 0 is written as 0
    assert get("llm_provider_ratelimit_limit", rl) == 500
    assert get("llm_provider_ratelimit_reset_seconds", rl) == 1.5
    assert get("llm_provider_ratelimit_remaining", {**rl, "resource": "tokens"}) is None
    assert get("llm_probe_tokens_total", {"provider": "openai", "token_type": "input"}) == 9
    assert get("llm_probe_cost_usd_total", {"provider": "openai"}) == 0.000002
    assert get("llm_provider_api_key_configured", {"provider": "openai"}) == 1
    info = {
        "provider": "openai",
        "api": "openai",
        "host": "api.openai.com",
        "probe_model": "gpt-6-luna",
    }
    assert get("llm_provider_info", info) == 1


def test_provider_without_key_is_not_configured_not_down(registry: CollectorRegistry) -> None:
    registry.register(ProbeCollector(make_store(key=False)))
    assert registry.get_sample_value("llm_provider_api_key_configured", {"provider": "openai"}) == 0
    assert registry.get_sample_value("llm_provider_up", {"provider": "openai"}) is None
    assert b"llm_probe_success{" not in generate_latest(registry)


def test_help_says_probes_are_cached(registry: CollectorRegistry) -> None:
    registry.register(ProbeCollector(make_store()))
    text = generate_latest(registry).decode()
    assert (
        "# HELP llm_probe_success 1 if the last probe succeeded. Set by the background prober"
        in text
    )
