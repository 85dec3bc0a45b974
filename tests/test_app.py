"""The exporter over real HTTP against the simulator: /metrics, /api/health, faults, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporter import keys
from exporter.app import create_app
from exporter.config import Config, build_config
from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.simulator import SIM_STATE
from exporter.simulator import create_app as create_simulator
from exporter.vocab import PROVIDERS, Check, Reason

SENTINELS = {pid: f"sk-SENTINEL-{pid}-7f3a9c" for pid in PROVIDERS}

Client = TestClient[web.Request, web.Application]


def env_with_keys() -> dict[str, str]:
    return {PROVIDER_DEFAULTS[p]["api_key_env"]: SENTINELS[p] for p in PROVIDERS}


def sim_config(sim_url: str, *, interval: str = "1s", timeout: str = "0.8s") -> Config:
    providers: dict[str, Any] = {
        p: {
            "base_url": sim_url + SIMULATOR_ROOTS[p],
            "interval": interval,
            "billable_interval": interval,
            "timeout": timeout,
        }
        for p in PROVIDERS
    }
    return build_config({"providers": providers, "ingest": {"token_env": None}}, env={})


@pytest.fixture
async def sim(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    return await aiohttp_server(create_simulator(seed=7))


@pytest.fixture
async def exporter(sim: TestServer, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    config = sim_config(str(sim.make_url("")).rstrip("/"))
    app = create_app(config, env=env_with_keys(), registry=CollectorRegistry())
    return await aiohttp_client(app)


async def wait_for(cond: Callable[[], bool], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def all_checks_ran(client: Client) -> bool:
    store = client.app[keys.PROBES]
    return all(cs.last is not None for ps in store.providers.values() for cs in ps.checks.values())


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, metric: str, /, **labels: str) -> float | None:
    return samples(text).get((metric, frozenset(labels.items())))


async def test_every_provider_has_probe_families(exporter: Client) -> None:
    await wait_for(lambda: all_checks_ran(exporter))
    resp = await exporter.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    for p in PROVIDERS:
        assert value(text, "llm_provider_up", provider=p) == 1, p
        assert value(text, "llm_provider_api_key_configured", provider=p) == 1
        for check in Check:
            labels = {"provider": p, "check": str(check)}
            assert value(text, "llm_probe_success", **labels) == 1, (p, check)
            assert value(text, "llm_probe_duration_seconds_count", **labels) >= 1
            assert value(text, "llm_probe_duration_seconds_bucket", **labels, le="+Inf") >= 1
            assert value(text, "llm_probe_phase_seconds", **labels, phase="total") > 0
            assert value(text, "llm_probe_phase_seconds", **labels, phase="first_byte") > 0
        stream = {"provider": p, "check": "stream"}
        ttft = value(text, "llm_probe_phase_seconds", **stream, phase="first_token")
        assert ttft is not None
        assert 0 < ttft <= value(text, "llm_probe_phase_seconds", **stream, phase="total")
        probe_model = PROVIDER_DEFAULTS[p]["probe_model"]
        assert value(text, "llm_provider_model_available", provider=p, model=probe_model) == 1
        assert value(text, "llm_probe_tokens_total", provider=p, token_type="input") > 0
    for p in ("openai", "anthropic"):
        for kind in ("limit", "remaining", "reset_seconds"):
            got = value(text, f"llm_provider_ratelimit_{kind}", provider=p, resource="requests")
            assert got is not None and got >= 0, (p, kind)
    for p in ("gemini", "deepseek"):  # they send no rate-limit headers: absent, not 0
        assert (
            value(text, "llm_provider_ratelimit_remaining", provider=p, resource="requests") is None
        )
    assert value(text, "llm_alert_threshold", name="response_time_seconds") == 5.0
    assert value(text, "llm_exporter_config_last_reload_successful") == 1


async def test_promtool_check_metrics_is_clean(exporter: Client) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: `make test` installs Debian's prometheus package"
    await wait_for(lambda: all_checks_ran(exporter))
    body = await (await exporter.get("/metrics")).read()
    result = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=body, capture_output=True
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() + result.stderr.decode() == ""


async def test_openmetrics_is_negotiated(exporter: Client) -> None:
    await wait_for(lambda: all_checks_ran(exporter))
    resp = await exporter.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await resp.text()
    assert text.endswith("# EOF\n")
    assert "llm_probes_total{" in text


async def test_health_json_has_the_original_shape(exporter: Client) -> None:
    await wait_for(lambda: all_checks_ran(exporter))
    doc = await (await exporter.get("/api/health")).json()
    assert doc["status"] == "healthy"
    assert set(doc) >= {
        "status",
        "timestamp",
        "version",
        "uptime",
        "providers_status",
        "system_metrics",
    }
    assert set(doc["providers_status"]) == set(PROVIDERS)
    entry = doc["providers_status"]["openai"]
    assert set(entry) >= {
        "healthy",
        "last_check",
        "response_time",
        "api_key_configured",
        "models_available",
        "rate_limit_remaining",
        "error_rate_24h",
        "last_success",
    }
    assert entry["healthy"] is True
    assert entry["error_rate_24h"] == 0
    assert "gpt-6-luna" in entry["models_available"]
    assert set(doc["system_metrics"]) == {
        "cpu_usage",
        "memory_usage",
        "disk_usage",
        "active_sessions",
        "requests_per_minute",
    }
    assert (await exporter.get("/-/healthy")).status == 200
    assert (await exporter.get("/-/ready")).status == 200


async def test_provider_without_key_is_not_configured(
    sim: TestServer, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    env = env_with_keys()
    del env["MOONSHOT_API_KEY"]
    config = sim_config(str(sim.make_url("")).rstrip("/"))
    client = await aiohttp_client(create_app(config, env=env, registry=CollectorRegistry()))
    await wait_for(lambda: all_checks_ran(client))
    text = await (await client.get("/metrics")).text()
    assert value(text, "llm_provider_api_key_configured", provider="kimi_k2") == 0
    assert value(text, "llm_provider_up", provider="kimi_k2") is None
    doc = await (await client.get("/api/health")).json()
    assert doc["status"] == "healthy"  # not configured is not down
    kimi = doc["providers_status"]["kimi_k2"]
    assert kimi["api_key_configured"] is False
    assert "not configured" in kimi["error"]


FAULTS = {
    "down": Reason.NETWORK,
    "rate_limit": Reason.RATE_LIMIT,
    "overloaded": Reason.OVERLOADED,
    "auth": Reason.AUTH,
    "server_error": Reason.SERVER_ERROR,
    "malformed": Reason.INVALID_RESPONSE,
}


@pytest.mark.parametrize(("mode", "reason"), list(FAULTS.items()))
async def test_a_fault_is_classified_and_others_stay_up(
    exporter: Client, sim: TestServer, mode: str, reason: Reason
) -> None:
    await wait_for(lambda: all_checks_ran(exporter))
    sim.app[SIM_STATE].set_mode("mistral", mode)
    store = exporter.app[keys.PROBES]
    # the free model list: it keeps running even while a retry-after defers billable checks
    check = store.providers["mistral"].checks[Check.MODELS]
    before = check.probes
    await wait_for(
        lambda: check.probes > before + 1 and check.last is not None and not check.last.success,
        limit=8,
    )
    assert check.last is not None
    assert check.last.reason is reason
    text = await (await exporter.get("/metrics")).text()
    labels = {"provider": "mistral", "check": "models"}
    assert value(text, "llm_probe_success", **labels) == 0
    assert value(text, "llm_probe_failures_total", **labels, reason=str(reason)) >= 1
    assert value(text, "llm_provider_up", provider="mistral") == 0
    assert value(text, "llm_provider_up", provider="openai") == 1
    if mode == "rate_limit":  # the provider asked us to wait: billable checks are deferred
        assert store.providers["mistral"].not_before > time.monotonic()


async def test_a_hanging_provider_times_out_while_others_keep_schedule(
    exporter: Client, sim: TestServer
) -> None:
    await wait_for(lambda: all_checks_ran(exporter))
    store = exporter.app[keys.PROBES]
    sim.app[SIM_STATE].set_mode("anthropic", "hang")
    hung = store.providers["anthropic"].checks[Check.MODELS]
    openai = store.providers["openai"].checks[Check.MODELS]
    openai_before = openai.probes
    t0 = time.monotonic()
    before = hung.probes
    await wait_for(
        lambda: (
            hung.probes > before and hung.last is not None and hung.last.reason is Reason.TIMEOUT
        ),
        limit=6,
    )
    assert hung.last is not None
    assert hung.last.duration <= 0.8 + 1.0  # timeout + 1 s
    await asyncio.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
    assert openai.probes - openai_before >= 2  # 1 s interval: kept its schedule meanwhile


async def test_no_key_leaks_even_when_the_provider_echoes_it(
    exporter: Client, sim: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await wait_for(lambda: all_checks_ran(exporter))
    for p in PROVIDERS:
        sim.app[SIM_STATE].set_mode(p, "echo_key")
    store = exporter.app[keys.PROBES]
    counts = {p: sum(c.probes for c in ps.checks.values()) for p, ps in store.providers.items()}
    await wait_for(
        lambda: all(
            sum(c.probes for c in store.providers[p].checks.values()) > counts[p] + 2
            for p in PROVIDERS
        ),
        limit=10,
    )
    metrics = await (await exporter.get("/metrics")).text()
    openmetrics = await (
        await exporter.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    ).text()
    health = await (await exporter.get("/api/health")).text()
    errors = [c.last.error for ps in store.providers.values() for c in ps.checks.values() if c.last]
    logs = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert any(
        not c.last.success for ps in store.providers.values() for c in ps.checks.values() if c.last
    ), "echo_key mode should make probes fail"
    for secret in SENTINELS.values():
        for where, text in (
            ("metrics", metrics),
            ("openmetrics", openmetrics),
            ("health", health),
            ("errors", json.dumps(errors)),
            ("logs", logs),
        ):
            assert secret not in text, f"{secret} leaked into {where}"
