"""`/ws/metrics`: periodic pushes backed by Prometheus, the slow-client drop and the client cap."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

import aiohttp
import pytest
from _prom_fixture import Prometheus, shared_fixture_stack
from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from exporter.config import build_config
from exporter.webapi.setup import setup_webapi
from exporter.webapi.state import WEBAPI
from exporter.webapi.ws import SLOW_REASON

DAY = "86400s"
CONFIGURED = 'provider=~"openai|anthropic|gemini|mistral|grok|qwen|deepseek|kimi_k2"'


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Prometheus, float]:
    return shared_fixture_stack(request, tmp_path_factory)


def make_app(prometheus_url: str | None, refresh: str = "200ms", **kw: Any) -> web.Application:
    app = web.Application()
    raw = {"prometheus_url": prometheus_url, "dashboard_refresh_interval": refresh}
    setup_webapi(app, build_config(raw, env={}), **kw)
    return app


async def until(check: Any, within: float, what: str) -> None:
    """Await a condition: poll it every 20 ms, fail after `within` seconds."""
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    assert check(), f"timed out after {within}s waiting for {what}"


@pytest.mark.e2e
async def test_pushes_the_summary_every_interval(stack, aiohttp_client) -> None:
    prom, _ = stack
    client: TestClient = await aiohttp_client(make_app(prom.url))
    async with client.ws_connect("/ws/metrics") as ws:
        first = await ws.receive_json(timeout=10)
        second = await ws.receive_json(timeout=10)
    assert first["type"] == second["type"] == "update"
    assert second["summary"]["evaluated_at"] > first["summary"]["evaluated_at"]
    assert second["summary"]["evaluated_at"] - first["summary"]["evaluated_at"] < 5
    t = second["summary"]["evaluated_at"]
    direct = prom.value(f"sum(increase(llm_requests_total{{{CONFIGURED}}}[{DAY}]))", t)
    assert second["summary"]["totals"]["requests"] == pytest.approx(direct, abs=1e-3)
    cost = prom.value(f"sum(increase(llm_cost_usd_total{{{CONFIGURED}}}[{DAY}]))", t)
    assert second["summary"]["cost_analytics"]["total_cost_usd"] == pytest.approx(cost, abs=1e-6)
    providers = second["providers"]
    assert providers["openai"]["status"] == "up" and providers["anthropic"]["status"] == "down"
    assert providers["mistral"]["status"] == "not_configured"
    assert providers["openai"]["probe_latency_seconds"] == pytest.approx(0.9)
    assert second["mobile"]["status"] == "degraded"
    assert second["alerts"]["count"] == 1 and second["alerts"]["source"] == "prometheus"


async def test_error_message_when_prometheus_is_missing(aiohttp_client) -> None:
    client: TestClient = await aiohttp_client(make_app(None))
    async with client.ws_connect("/ws/metrics") as ws:
        msg = await ws.receive_json(timeout=5)
    assert msg["type"] == "error" and "no Prometheus configured" in msg["error"]


def _handshake(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws/metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def test_a_client_that_never_reads_is_dropped(aiohttp_client) -> None:
    app = make_app(None, refresh="20ms", queue_size=2)
    big = "x" * (1 << 20)  # 1 MiB per push fills any socket buffer within a few pushes

    async def build() -> str:
        return big

    app[WEBAPI].feed.build = build
    client: TestClient = await aiohttp_client(app)
    feed = app[WEBAPI].feed
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", client.port))
        await loop.sock_sendall(sock, _handshake(client.port))
        head = await loop.sock_recv(sock, 256)  # the 101 answer; then never read again
        assert head.startswith(b"HTTP/1.1 101")
        async with client.session.ws_connect(client.make_url("/ws/metrics")) as fast:
            await until(lambda: feed.stats["dropped_slow"] == 1, 20, "the slow client dropped")
            assert len(feed.clients) == 1  # only the fast one is left
            before = feed.stats["pushes"]
            msg = await fast.receive(timeout=5)  # the reading client is still served
            assert msg.type is WSMsgType.TEXT and len(msg.data) == len(big)
            async with asyncio.timeout(10):  # pushes go on, and the client that reads stays
                while feed.stats["pushes"] <= before + 2:
                    msg = await fast.receive()
                    assert msg.type is WSMsgType.TEXT
            assert feed.stats["dropped_slow"] == 1
        # The slow socket was aborted: what is left to read is bounded, then the connection ends.
        received = 0
        async with asyncio.timeout(10):
            while True:
                try:
                    chunk = await loop.sock_recv(sock, 1 << 16)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                received += len(chunk)
        assert received < 16 * len(big)
    finally:
        sock.close()


async def test_client_cap_answers_503(aiohttp_client) -> None:
    app = make_app(None, refresh="1s", max_clients=2)
    client: TestClient = await aiohttp_client(app)
    feed = app[WEBAPI].feed
    first = await client.ws_connect("/ws/metrics")
    second = await client.ws_connect("/ws/metrics")
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await client.ws_connect("/ws/metrics")
    assert err.value.status == 503 and feed.stats["rejected_full"] == 1
    await first.close()
    await until(lambda: len(feed.clients) == 1, 5, "the closed client to leave")
    third = await client.ws_connect("/ws/metrics")  # room again
    await third.close()
    await second.close()


async def test_shutdown_closes_clients_with_going_away() -> None:
    server = TestServer(make_app(None, refresh="10s"), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(server.make_url("/ws/metrics"))
        assert (await ws.receive_json(timeout=5))["type"] == "error"
        async with asyncio.timeout(10):  # far below aiohttp's 60 s shutdown timeout
            await server.close()
        msg = await ws.receive(timeout=5)
        assert msg.type is WSMsgType.CLOSE and msg.data == WSCloseCode.GOING_AWAY
        await ws.close()


def test_slow_reason_is_readable() -> None:
    assert "slow" in SLOW_REASON and len(SLOW_REASON.encode()) <= 123  # close reason limit
