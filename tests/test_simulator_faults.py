"""Simulator fault modes, the /_sim control API and `serve()` over real HTTP."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import aiohttp
import pytest
from _sim_helpers import KEY, auth_headers, completion_request, models_path, parse_sse

from exporter.simulator import ECHO_HEADER, MODES, SIM_STATE, create_app, serve
from exporter.vocab import PROVIDERS

STATUS = {  # provider -> mode -> HTTP status, per providers.md
    "openai": {"auth": 401, "overloaded": 503, "billing": 429, "missing_key": 401},
    "anthropic": {"auth": 401, "overloaded": 529, "billing": 402, "missing_key": 401},
    "gemini": {"auth": 400, "overloaded": 503, "billing": 400, "missing_key": 403},
    "mistral": {"auth": 401, "overloaded": 503, "billing": 402, "missing_key": 401},
    "grok": {"auth": 400, "overloaded": 503, "billing": 403, "missing_key": 401},
    "qwen": {"auth": 401, "overloaded": 503, "billing": 400, "missing_key": 401},
    "deepseek": {"auth": 401, "overloaded": 503, "billing": 402, "missing_key": 401},
    "kimi_k2": {"auth": 401, "overloaded": 429, "billing": 403, "missing_key": 401},
}
RETRY_AFTER = {"openai", "anthropic", "mistral"}


@pytest.fixture
async def sim(aiohttp_client):
    app = create_app(seed=11)
    for provider in PROVIDERS:
        app[SIM_STATE].set_mode(provider, "ok", latency_ms=0, token_delay_ms=0)
    return await aiohttp_client(app)


def set_mode(sim, provider: str, mode: str, **kw) -> None:
    sim.server.app[SIM_STATE].set_mode(provider, mode, **{"latency_ms": 0} | kw)


async def call(sim, provider: str, *, stream: bool = False, headers=None, **kw):
    path, body = completion_request(provider)
    if stream and provider == "gemini":
        path = path.replace(":generateContent", ":streamGenerateContent") + "?alt=sse"
    elif stream:
        body["stream"] = True
    hdrs = auth_headers(provider) if headers is None else headers
    return await sim.post(path, json=body, headers=hdrs, **kw)


def error_type(provider: str, status: int, body: dict) -> str:
    """Check `body` has the provider's exact error shape; return its type/status/code."""
    if provider == "anthropic":
        assert set(body) == {"type", "error", "request_id"} and body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        return body["error"]["type"]
    if provider == "gemini":
        assert set(body) == {"error"} and body["error"]["code"] == status
        assert {"code", "message", "status"} <= set(body["error"])
        return body["error"]["status"]
    if provider == "mistral":
        assert "error" not in body and body["object"] == "error"
        assert {"message", "type", "param", "code"} <= set(body)
        return body["type"]
    if provider == "grok":
        assert set(body) == {"code", "error"} and isinstance(body["error"], str)
        return body["code"]
    if provider == "kimi_k2":
        assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
        return body["error"]["type"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert set(body) == ({"error", "request_id"} if provider == "qwen" else {"error"})
    return body["error"]["type"]


async def wait_until(predicate, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["auth", "overloaded", "billing", "server_error"])
async def test_error_modes_status_and_shape(sim, provider, mode):
    set_mode(sim, provider, mode)
    resp = await call(sim, provider)
    expected = STATUS[provider].get(mode, 500)
    assert resp.status == expected
    kind = error_type(provider, expected, await resp.json())
    assert kind
    if provider == "kimi_k2" and mode == "overloaded":
        assert kind == "engine_overloaded_error"
    if provider == "anthropic" and mode == "overloaded":
        assert kind == "overloaded_error"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_missing_key_gets_the_providers_auth_error(sim, provider):
    resp = await call(sim, provider, headers={"anthropic-version": "2023-06-01"})
    expected = STATUS[provider]["missing_key"]
    assert resp.status == expected
    assert error_type(provider, expected, await resp.json())


async def test_auth_errors_carry_the_classifiable_details(sim):
    for provider in ("openai", "gemini", "grok"):
        set_mode(sim, provider, "auth")
    openai = await (await call(sim, "openai")).json()
    assert openai["error"]["code"] == "invalid_api_key"
    gemini = await (await call(sim, "gemini")).json()
    assert gemini["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    grok = await (await call(sim, "grok")).json()
    assert "incorrect api key" in grok["error"].lower()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("stream", [False, True])
async def test_rate_limit_mode(sim, provider, stream):
    set_mode(sim, provider, "rate_limit")
    resp = await call(sim, provider, stream=stream)
    assert resp.status == 429
    body = await resp.json()
    assert error_type(provider, 429, body)
    remaining = [v for k, v in resp.headers.items() if "remaining" in k.lower()]
    assert all(v == "0" for v in remaining)
    assert bool(remaining) == (provider in ("openai", "anthropic", "mistral", "kimi_k2"))
    assert ("retry-after" in resp.headers) == (provider in RETRY_AFTER)
    if provider == "openai":
        assert int(resp.headers["retry-after-ms"]) >= 1000
    if provider == "gemini":
        assert body["error"]["details"][-1]["retryDelay"].endswith("s")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "deepseek"])
async def test_malformed_mode_sends_broken_json(sim, provider):
    set_mode(sim, provider, "malformed")
    resp = await call(sim, provider)
    assert resp.status == 200
    with pytest.raises(ValueError):
        json.loads(await resp.text())
    resp = await sim.get(models_path(provider), headers=auth_headers(provider))
    with pytest.raises(ValueError):
        json.loads(await resp.text())
    resp = await call(sim, provider, stream=True)
    events, _ = parse_sse(await resp.text())
    broken = 0
    for _, data in events:
        try:
            json.loads(data) if data != "[DONE]" else None
        except ValueError:
            broken += 1
    assert resp.status == 200 and broken == 1


async def test_echo_key_mode_reflects_the_key(sim):
    set_mode(sim, "openai", "echo_key")
    resp = await call(sim, "openai")
    assert resp.status == 401
    assert resp.headers[ECHO_HEADER] == KEY and KEY in await resp.text()
    set_mode(sim, "openai", "auth")
    resp = await call(sim, "openai")
    assert ECHO_HEADER not in resp.headers and KEY not in await resp.text()


async def test_down_drops_the_connection(sim):
    set_mode(sim, "mistral", "down")
    with pytest.raises(aiohttp.ClientConnectionError):
        await call(sim, "mistral")
    resp = await call(sim, "openai")  # other providers are unaffected
    assert resp.status == 200


async def test_hang_never_answers_and_leaves_no_handler_behind(sim):
    set_mode(sim, "anthropic", "hang")
    state = sim.server.app[SIM_STATE]
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await call(sim, "anthropic", timeout=aiohttp.ClientTimeout(total=0.5))
    assert time.monotonic() - started >= 0.5
    await wait_until(lambda: state.in_flight["anthropic"] == 0)


async def test_hanging_requests_end_when_the_simulator_stops(aiohttp_server):
    app = create_app(seed=1)
    app[SIM_STATE].set_mode("gemini", "hang", latency_ms=0)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        url = server.make_url("/gemini/v1beta/models")
        pending = asyncio.ensure_future(session.get(url, headers=auth_headers("gemini")))
        await wait_until(lambda: app[SIM_STATE].in_flight["gemini"] == 1)
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 2.0
        with pytest.raises(aiohttp.ClientConnectionError):
            await pending
    assert app[SIM_STATE].in_flight["gemini"] == 0


async def test_explicit_latency_is_exact_and_slow_mode_defaults(sim):
    set_mode(sim, "qwen", "ok", latency_ms=200)
    started = time.monotonic()
    assert (await call(sim, "qwen")).status == 200
    assert 0.2 <= time.monotonic() - started < 0.45
    state = sim.server.app[SIM_STATE]
    state.set_mode("qwen", "slow")
    assert all(3.0 <= state.latency_s("qwen") <= 5.0 for _ in range(20))
    assert state.token_delay_s("qwen") >= 0.2
    state.set_mode("qwen", "ok")
    assert all(0.02 <= state.latency_s("qwen") <= 0.08 for _ in range(20))


async def test_token_delay_paces_streams(sim):
    set_mode(sim, "openai", "slow", token_delay_ms=40)
    started = time.monotonic()
    resp = await call(sim, "openai", stream=True)
    text = await resp.text()
    chunks = [d for _, d in parse_sse(text)[0] if d != "[DONE]"]
    assert time.monotonic() - started >= 0.04 * (len(chunks) - 2)


async def test_error_rate(sim):
    set_mode(sim, "deepseek", "ok", error_rate=1.0)
    assert {(await call(sim, "deepseek")).status for _ in range(5)} == {500}
    set_mode(sim, "deepseek", "ok", error_rate=0.5)
    statuses = [(await call(sim, "deepseek")).status for _ in range(40)]
    assert set(statuses) == {200, 500}


def test_seed_makes_runs_reproducible():
    a, b = create_app(seed=5)[SIM_STATE], create_app(seed=5)[SIM_STATE]
    assert [a.latency_s("openai") for _ in range(5)] == [b.latency_s("openai") for _ in range(5)]


# --- control API ---------------------------------------------------------------------------


async def test_control_api_sets_shows_and_resets(sim):
    resp = await sim.post("/_sim/grok", json={"mode": "slow", "latency_ms": 10, "error_rate": 0.25})
    body = await resp.json()
    assert resp.status == 200
    assert (body["provider"], body["mode"], body["latency_ms"], body["error_rate"]) == (
        "grok",
        "slow",
        10.0,
        0.25,
    )
    everything = await (await sim.get("/_sim")).json()
    assert set(everything["providers"]) == set(PROVIDERS)
    assert everything["providers"]["grok"]["mode"] == "slow"
    assert (await (await sim.get("/_sim/grok")).json())["mode"] == "slow"
    for mode in MODES:
        assert (await sim.post("/_sim/qwen", json={"mode": mode})).status == 200
    await call(sim, "openai")
    reset = await (await sim.post("/_sim/_reset")).json()
    assert {s["mode"] for s in reset["providers"].values()} == {"ok"}
    assert reset["providers"]["openai"]["requests"] == 0


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/_sim/nope", {"mode": "ok"}, "unknown provider"),
        ("/_sim/openai", {"mode": "sideways"}, "unknown mode"),
        ("/_sim/openai", {"latency_ms": 5}, "mode is required"),
        ("/_sim/openai", {"mode": "ok", "latency_ms": -1}, "latency_ms"),
        ("/_sim/openai", {"mode": "ok", "latency_ms": "5"}, "latency_ms"),
        ("/_sim/openai", {"mode": "ok", "latency_ms": True}, "latency_ms"),
        ("/_sim/openai", {"mode": "ok", "error_rate": 1.5}, "error_rate"),
        ("/_sim/openai", {"mode": "ok", "colour": "red"}, "unknown field"),
        ("/_sim/openai", ["down"], "JSON object"),
        ("/_sim/openai", None, "JSON object"),
    ],
)
async def test_control_api_rejects_bad_requests(sim, path, body, needle):
    data = b"not json" if body is None else json.dumps(body).encode()
    resp = await sim.post(path, data=data)
    assert resp.status == 400
    assert needle in (await resp.json())["error"]
    state = (await (await sim.get("/_sim")).json())["providers"]["openai"]
    assert state["mode"] == "ok"  # nothing changed
    assert (await sim.get("/_sim/nope")).status == 404


# --- serve() -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_runs_until_cancelled_and_never_logs_keys(caplog):
    caplog.set_level(logging.INFO)
    port = _free_port()
    task = asyncio.ensure_future(serve("127.0.0.1", port))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:

        async def answered() -> bool:
            try:
                async with session.get(f"{base}/_sim") as resp:
                    return resp.status == 200
            except aiohttp.ClientConnectionError:
                return False

        deadline = time.monotonic() + 5
        while not await answered():
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.05)
        async with session.get(f"{base}/gemini/v1beta/models?key={KEY}") as resp:
            assert resp.status == 200
        headers = {"Authorization": f"Bearer {KEY}"}
        async with session.get(f"{base}/openai/v1/models", headers=headers) as resp:
            assert resp.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert "/gemini/v1beta/models" in caplog.text
    assert KEY not in caplog.text
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
