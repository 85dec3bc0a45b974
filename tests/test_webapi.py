"""`/api/metrics` and `/api/metrics/mobile` against a real Prometheus scraping fixed data."""

from __future__ import annotations

import math
import sys
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _net import free_port
from _prom_fixture import (
    Alertmanager,
    Process,
    Prometheus,
    http_json,
    shared_fixture_stack,
    wait_until,
)
from aiohttp import web
from aiohttp.test_utils import TestClient

from exporter.config import build_config
from exporter.webapi.live import seconds_since_midnight
from exporter.webapi.setup import setup_webapi

pytestmark = pytest.mark.e2e
MakeClient = Callable[..., Awaitable[TestClient]]
DAY = "86400s"
CONFIGURED = 'provider=~"openai|anthropic|gemini|mistral|grok|qwen|deepseek|kimi_k2"'


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Prometheus, float]:
    return shared_fixture_stack(request, tmp_path_factory)


@pytest.fixture
def make_client(aiohttp_client: Any) -> MakeClient:
    async def make(prometheus_url: str | None, alertmanager_url: str | None = None) -> TestClient:
        raw = {"prometheus_url": prometheus_url, "alertmanager_url": alertmanager_url}
        app = web.Application()
        setup_webapi(app, build_config(raw, env={}))
        return await aiohttp_client(app)

    return make


async def get_json(client: TestClient, path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_summary_has_the_fixture_numbers_exactly(stack, make_client) -> None:
    prom, at = stack
    client = await make_client(prom.url)
    doc = await get_json(client, f"/api/metrics?time={at}")
    assert doc["period"] == "last_24h" and doc["evaluated_at"] == pytest.approx(at)
    assert doc["system_metrics"] == {
        "cpu_usage": 0.25,
        "memory_usage": 0.5,
        "disk_usage": 0.75,
        "active_sessions": 3,
        "requests_per_minute": 33.0,  # 165 requests of configured providers over 5m
    }
    totals = doc["totals"]
    assert (totals["requests"], totals["successful_requests"], totals["failed_requests"]) == (
        165, 150, 15,  # the `rogue` provider (1000 requests) is outside the config
    )  # fmt: skip
    assert totals["success_rate"] == pytest.approx(150 / 165, abs=1e-6)
    assert totals["avg_latency"] == pytest.approx(130 / 140)
    # sum by (le): 0.5:40 1:100 2:131 5:140 -> linear interpolation inside the bucket
    assert totals["p50_latency"] == pytest.approx(0.75)
    assert totals["p95_latency"] == pytest.approx(2 + 3 * 2 / 9, abs=1e-6)
    assert totals["p99_latency"] == pytest.approx(2 + 3 * 7.6 / 9, abs=1e-6)
    assert totals["tokens"] == {
        "input": 14000, "output": 6000, "cached_input": 2000, "cache_write": 0, "reasoning": 0,
        "total": 22000,
    }  # fmt: skip
    assert totals["cost_usd"] == pytest.approx(2.5)

    openai = doc["providers"]["openai"]
    assert openai["up"] is True and openai["api_key_configured"] is True
    assert (openai["requests"], openai["successful_requests"], openai["failed_requests"]) == (
        110, 100, 10,
    )  # fmt: skip
    assert openai["avg_latency"] == pytest.approx(1.0)
    assert openai["p50_latency"] == pytest.approx(0.75)
    assert openai["p95_latency"] == pytest.approx(3.5)
    assert openai["p99_latency"] == pytest.approx(4.7)
    assert openai["ttft_p50"] == pytest.approx(0.3)
    assert openai["models_used"] == ["gpt-6-luna", "other"]  # off-list model folded into other
    assert openai["errors"] == {"rate_limit": 6, "timeout": 4}
    assert openai["cost_usd"] == pytest.approx(1.75)
    anthropic = doc["providers"]["anthropic"]
    assert anthropic["up"] is False and anthropic["errors"] == {"other": 5}  # unknown outcome
    assert anthropic["success_rate"] == pytest.approx(50 / 55, abs=1e-6)
    mistral = doc["providers"]["mistral"]
    assert mistral["requests"] == 0 and mistral["success_rate"] is None
    assert mistral["p95_latency"] is None and mistral["api_key_configured"] is False
    assert "rogue" not in doc["providers"]
    assert doc["error_breakdown"] == {"other": 5, "rate_limit": 6, "timeout": 4}
    assert doc["models_used"][0] == {"provider": "openai", "model": "gpt-6-luna", "requests": 100}

    sessions = doc["session_metrics"]
    assert sessions["sessions_started"] == 12
    assert sessions["sessions_ended"] == {"completed": 7, "expired": 2}
    assert sessions["avg_duration"] == pytest.approx(100.0)
    assert sessions["p50_duration"] == pytest.approx(90.0)

    cost = doc["cost_analytics"]
    assert cost["total_cost_usd"] == pytest.approx(2.5)
    assert cost["cost_by_provider"]["openai"] == pytest.approx(1.75)
    assert cost["cost_last_hour_usd"] == pytest.approx(2.5)
    assert cost["cost_previous_hour_usd"] == 0
    assert cost["trend"] == "rising"
    assert cost["projected_monthly_cost_usd"] == pytest.approx(2.5 * 30)
    assert cost["average_hourly_cost_usd"] == pytest.approx(2.5 / 24, abs=1e-6)


async def test_summary_now_agrees_with_direct_promql(stack, make_client) -> None:
    prom, _ = stack
    client = await make_client(prom.url)
    doc = await get_json(client, "/api/metrics")
    t = doc["evaluated_at"]  # increase() extrapolates at "now": compare at the same instant
    reqs = prom.by(
        f"sum by (provider) (increase(llm_requests_total{{{CONFIGURED}}}[{DAY}]))", "provider", t
    )
    assert doc["totals"]["requests"] == pytest.approx(sum(reqs.values()), abs=1e-3)
    assert doc["providers"]["openai"]["requests"] == pytest.approx(reqs["openai"], abs=1e-3)
    assert doc["totals"]["requests"] >= 165  # extrapolated past the last sample, as PromQL does
    cost = prom.value(f"sum(increase(llm_cost_usd_total{{{CONFIGURED}}}[{DAY}]))", t)
    assert doc["totals"]["cost_usd"] == pytest.approx(cost, abs=1e-6)
    p95 = prom.by(
        "histogram_quantile(0.95, sum by (provider, le) "
        f"(increase(llm_request_duration_seconds_bucket[{DAY}])))", "provider", t,
    )  # fmt: skip
    assert doc["providers"]["anthropic"]["p95_latency"] == pytest.approx(p95["anthropic"], 1e-6)
    rpm = prom.value(f"sum(rate(llm_requests_total{{{CONFIGURED}}}[5m])) * 60", t)
    assert doc["system_metrics"]["requests_per_minute"] == pytest.approx(rpm, abs=1e-3)


async def test_mobile_summary(stack, make_client) -> None:
    prom, at = stack
    client = await make_client(prom.url)
    doc = await get_json(client, f"/api/metrics/mobile?time={at}")
    assert doc["status"] == "degraded"  # anthropic has a key but is down; openai, gemini up
    assert doc["active_sessions"] == 3
    assert doc["requests_per_minute"] == pytest.approx(33.0)
    assert doc["error_rate"] == pytest.approx(15 / 165, abs=1e-6)
    assert doc["top_provider"] == "openai"  # not `rogue`, which is outside the config
    window = seconds_since_midnight(at)
    direct = prom.value(f"sum(increase(llm_cost_usd_total{{{CONFIGURED}}}[{window}s]))", at)
    assert doc["cost_today"] == pytest.approx(direct, abs=1e-6)
    if window > 60:  # the fixture's data lies inside today's window
        assert doc["cost_today"] == pytest.approx(2.5)
    assert doc["alerts_count"] == 1  # no Alertmanager configured: Prometheus's ALERTS
    assert set(doc) >= {"status", "timestamp", "active_sessions", "requests_per_minute",
                        "error_rate", "top_provider", "cost_today", "alerts_count"}  # fmt: skip


async def test_periods_and_bad_parameters(stack, make_client) -> None:
    prom, at = stack
    client = await make_client(prom.url)
    hour = await get_json(client, f"/api/metrics?period=last_1h&time={at}")
    assert hour["period"] == "last_1h" and hour["period_seconds"] == 3600
    assert hour["totals"]["requests"] == 165  # all fixture data is inside the last hour
    assert hour["cost_analytics"]["projected_monthly_cost_usd"] == pytest.approx(2.5 * 24 * 30)
    bad = await get_json(client, "/api/metrics?period=forever", status=400)
    assert "last_24h" in bad["error"]
    for query in ("time=yesterday", "time=nan", "time=99999999999"):
        bad = await get_json(client, f"/api/metrics/mobile?{query}", status=400)
        assert bad["error"].startswith("time:")


async def test_503_without_prometheus(make_client) -> None:
    client = await make_client(None)
    for path in ("/api/metrics", "/api/metrics/mobile"):
        doc = await get_json(client, path, status=503)
        assert "no Prometheus configured" in doc["error"] and doc["prometheus_url"] is None
    page = await client.get("/")
    assert page.status == 200 and "no Prometheus configured" in await page.text()


async def test_503_when_unreachable_and_credentials_stay_out(make_client) -> None:
    port = free_port()  # nothing listens there
    client = await make_client(f"http://admin:s3cr3t-pw@127.0.0.1:{port}/prom?token=t0k3n")
    for path in ("/api/metrics", "/api/metrics/mobile"):
        resp = await client.get(path)
        text = await resp.text()
        assert resp.status == 503
        assert "s3cr3t-pw" not in text and "t0k3n" not in text and "admin" not in text
        doc = await resp.json()
        assert doc["prometheus_url"] == f"http://127.0.0.1:{port}/prom"
        assert "not reachable" in doc["error"]


async def test_alerts_count_from_alertmanager(stack, make_client, tmp_path: Path) -> None:
    prom, at = stack
    am = Alertmanager(tmp_path)
    try:
        down = {"alertname": "LLMProviderDown", "severity": "critical", "provider": "openai"}
        am.post_alert(down, {"summary": "openai is down"})
        am.post_alert({"alertname": "LLMHighLatency", "severity": "warning"})
        am.post_alert({"alertname": "LLMSilenced", "severity": "warning"})
        silence = {
            "matchers": [{"name": "alertname", "value": "LLMSilenced", "isRegex": False}],
            "startsAt": "2000-01-01T00:00:00Z", "endsAt": "2999-01-01T00:00:00Z",
            "createdBy": "test", "comment": "silenced alerts are not counted",
        }  # fmt: skip
        http_json(f"{am.url}/api/v2/silences", silence)
        wait_until(lambda: len(am.active()) == 2, 10, "Alertmanager to list two active alerts")
        client = await make_client(prom.url, am.url)
        doc = await get_json(client, f"/api/metrics/mobile?time={at}")
        assert doc["alerts_count"] == 2
        page = await (await client.get("/")).text()
        assert "LLMProviderDown" in page and "openai is down" in page
        assert "LLMSilenced" not in page
    finally:
        am.close()
    client = await make_client(prom.url, am.url)  # Alertmanager gone: alerts unknown, not 503
    doc = await get_json(client, f"/api/metrics/mobile?time={at}")
    assert doc["alerts_count"] is None and doc["top_provider"] == "openai"


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """`llm-exporter demo` (simulator, exporter, synthetic traffic) scraped by Prometheus."""
    tmp = tmp_path_factory.mktemp("demo")
    port, sim_port = free_port(), free_port()
    demo = Process(
        [sys.executable, "-m", "exporter", "demo", "--listen", f"127.0.0.1:{port}",
         "--simulator-listen", f"127.0.0.1:{sim_port}"],
        tmp / "demo.log",
    )  # fmt: skip
    prom = None
    try:
        wait_until(lambda: demo.check_alive() or _answers(f"http://127.0.0.1:{port}/metrics"),
                   30, "the demo's exporter to serve /metrics")  # fmt: skip
        prom = Prometheus(tmp, [f"127.0.0.1:{port}"])
        yield prom
    finally:
        if prom is not None:
            prom.close()
        demo.close()


def _answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


@pytest.mark.slow
async def test_demo_numbers_agree_with_direct_promql(demo_stack, make_client) -> None:
    prom = demo_stack
    # ~30 s of the demo's traffic (1 s scrapes), every provider seen, before comparing.
    wait_until(lambda: (prom.value("count_over_time(up[5m])") or 0) >= 30, 60, "30 scrapes")
    client = await make_client(prom.url)
    doc = await get_json(client, "/api/metrics")
    t = doc["evaluated_at"]
    inc = f"[{DAY}]"
    by_outcome = prom.query(f"sum by (provider, outcome) (increase(llm_requests_total{inc}))", t)
    assert doc["totals"]["requests"] == pytest.approx(sum(v for _, v in by_outcome), abs=0.01)
    assert doc["totals"]["requests"] > 50
    for pid, entry in doc["providers"].items():
        mine = [(o, v) for labels, v in by_outcome if labels["provider"] == pid
                for o in [labels["outcome"]]]  # fmt: skip
        total = sum(v for _, v in mine)
        ok = sum(v for o, v in mine if o == "success")
        assert entry["requests"] == pytest.approx(total, abs=1e-3), pid
        assert entry["up"] is True and entry["api_key_configured"] is True, pid
        if total:
            assert entry["success_rate"] == pytest.approx(ok / total, abs=1e-6), pid
    # Sessions stick to a provider, so one may see no calls yet; most do.
    assert sum(1 for e in doc["providers"].values() if e["requests"] > 0) >= 4
    buckets = f"increase(llm_request_duration_seconds_bucket{inc})"
    p95 = prom.by(f"histogram_quantile(0.95, sum by (provider, le) ({buckets}))", "provider", t)
    for pid, value in p95.items():
        mine = doc["providers"][pid]["p95_latency"]
        assert mine == (pytest.approx(value, abs=1e-6) if math.isfinite(value) else None), pid
    tokens = prom.by(f"sum by (token_type) (increase(llm_tokens_total{inc}))", "token_type", t)
    for token_type, value in tokens.items():
        assert doc["totals"]["tokens"][token_type] == pytest.approx(value, abs=1e-3)
    cost = prom.value(f"sum(increase(llm_cost_usd_total{inc}))", t)
    assert cost and doc["totals"]["cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert doc["system_metrics"]["cpu_usage"] == pytest.approx(
        prom.value("max(llm_host_cpu_usage_ratio)", t), abs=1e-4
    )
    mobile = await get_json(client, "/api/metrics/mobile")
    t = mobile["evaluated_at"]
    rpm = prom.value("sum(rate(llm_requests_total[5m])) * 60", t)
    assert mobile["requests_per_minute"] == pytest.approx(rpm, abs=1e-3)
    assert mobile["active_sessions"] == prom.value("sum(llm_sessions_active)", t)
    assert mobile["status"] == "healthy"
