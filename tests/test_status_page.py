"""The status page `/`: server-rendered values, then live updates in headless Chromium."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest
from _cdp import chromium_page
from _prom_fixture import Prometheus, shared_fixture_stack
from aiohttp import web

from exporter.config import build_config
from exporter.webapi.page import render_page
from exporter.webapi.setup import setup_webapi

pytestmark = pytest.mark.e2e
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Prometheus, float]:
    return shared_fixture_stack(request, tmp_path_factory)


@pytest.fixture
async def server(stack, aiohttp_server) -> Any:
    prom, _ = stack
    app = web.Application()
    raw = {"prometheus_url": prom.url, "dashboard_refresh_interval": "500ms"}
    setup_webapi(app, build_config(raw, env={}))
    return await aiohttp_server(app, host="127.0.0.1")


async def test_page_is_server_rendered(server, aiohttp_client) -> None:
    client = await aiohttp_client(server)
    resp = await client.get("/")
    html = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert '<li class="card" data-provider="openai" data-status="up">' in html
    assert '<li class="card" data-provider="anthropic" data-status="down">' in html
    assert 'data-provider="mistral" data-status="not_configured"' in html
    assert '<dd data-field="probe_latency_seconds">900 ms</dd>' in html  # the slowest check
    assert 'id="overall" data-status="degraded"' in html
    assert "FixtureAlwaysFiring" in html  # Prometheus's ALERTS, no Alertmanager configured
    for path, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        asset = await client.get(path)
        assert asset.status == 200 and kind in asset.content_type


def test_rendering_escapes_what_it_shows() -> None:
    doc = {
        "providers": {"openai": {"status": "up", "cost_today_usd": 0.5}},
        "alerts": {"count": 1, "items": [{"alertname": "<b>x</b>", "summary": "<script>"}]},
        "mobile": {"status": "healthy", "timestamp": "t"},
    }
    html = render_page(doc, None, providers=["openai"])
    assert "<script>" not in html.replace('<script src="/static/app.js" defer></script>', "")
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "$0.5000" in html
    down = render_page(None, "prometheus: not reachable <x>", providers=["openai", "gemini"])
    assert "not reachable &lt;x&gt;" in down and 'data-provider="gemini"' in down


async def _wait_for(page: Any, expression: str, within: float) -> Any:
    """Evaluate `expression` in the page until it is truthy (every 100 ms, up to `within` s)."""
    for _ in range(int(within / 0.1)):
        if value := await page.evaluate(expression):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {expression}")


async def test_live_updates_in_headless_chromium(server, tmp_path: Path) -> None:
    url = str(server.make_url("/"))
    async with chromium_page(tmp_path) as page:
        for domain in ("Runtime", "Log", "Page"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", **PHONE)
        await page.send("Page.navigate", url=url)
        await _wait_for(page, "document.readyState === 'complete'", 15)
        rendered = await page.evaluate("document.getElementById('updated').textContent")
        await _wait_for(page, "Number(document.body.dataset.updates) >= 2", 20)
        state = await page.evaluate(
            """(() => {
              const card = (p) => document.querySelector(`li[data-provider="${p}"] .pill`);
              return {
                conn: document.getElementById('conn').dataset.state,
                updated: document.getElementById('updated').textContent,
                openai: card('openai').textContent, anthropic: card('anthropic').textContent,
                mistral: card('mistral').textContent,
                cost: document.getElementById('cost-today').textContent,
                alerts: document.getElementById('alerts').textContent,
                requests: document.querySelector('#day dd[data-field="requests"]').textContent,
                overflow: document.documentElement.scrollWidth - window.innerWidth,
                width: window.innerWidth,
              };
            })()"""
        )
        shot = await page.screenshot(tmp_path / "status-page.png")
        problems = page.problems()
    assert state["conn"] == "live" and state["updated"] != rendered  # a push arrived
    pills = (state["openai"], state["anthropic"], state["mistral"])
    assert pills == ("up", "down", "not configured")
    assert float(state["cost"].removeprefix("$")) >= 2.5  # $2.50, extrapolated to now
    assert "FixtureAlwaysFiring" in state["alerts"]
    assert float(state["requests"].replace(",", "")) >= 165  # extrapolated to now
    assert state["width"] == 390 and state["overflow"] <= 0  # fits a phone, no sideways scroll
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", shot[16:24]) == (780, 1688)  # 390x844 at 2x
    assert (tmp_path / "status-page.png").stat().st_size > 10_000
    assert problems == []
