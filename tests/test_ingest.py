"""`POST /api/v1/events` over real HTTP: partial acceptance, dedup, limits, auth."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from exporter.dedup import Dedup
from tests._traffic_helpers import (
    EVENTS,
    call,
    make_config,
    series,
    traffic_app,
    until,
    value,
)

TOKEN = "s3cret-token"


@pytest.fixture
async def client(aiohttp_client) -> AsyncIterator[TestClient]:
    app, registry, _ = traffic_app(make_config(ingest={"max_batch": 50, "max_body_bytes": 4096}))
    c = await aiohttp_client(app)
    c.registry = registry
    yield c


async def post(client: TestClient, body: object, **kw) -> tuple[int, dict]:
    r = await client.post(EVENTS, json=body, **kw)
    return r.status, await r.json()


async def test_mixed_batch_keeps_the_valid_events_and_counts_exactly(client: TestClient) -> None:
    batch = [
        call(id="a", duration_seconds=1.0, input_tokens=100, output_tokens=10),
        call(duration_seconds=-3),  # invalid
        call("anthropic", "claude-haiku-4-5", id="b", outcome="rate_limit"),
        call("acme", "m1", id="c"),  # unknown provider
        {"type": "session_start", "session_id": "s1"},
        {"type": "session_message", "session_id": "s1", "role": "user", "provider": "acme"},
        {"type": "llm_call", "provider": "openai"},  # no model
        call(id="d", outcome="timeout", input_tokens=5),
    ]
    status, body = await post(client, batch)
    assert status == 200
    assert body["accepted"] == 4 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [1, 3, 5, 6]
    assert "$.duration_seconds" in body["rejected"][0]["error"]
    assert "'acme'" in body["rejected"][1]["error"]
    assert "model" in body["rejected"][3]["error"]
    reg = client.registry
    assert value(reg, "llm_requests_total", provider="openai", model="gpt-6-luna",
                 outcome="success") == 1  # fmt: skip
    assert value(reg, "llm_requests_total", provider="openai", model="gpt-6-luna",
                 outcome="timeout") == 1  # fmt: skip
    assert value(reg, "llm_requests_total", provider="anthropic", model="claude-haiku-4-5",
                 outcome="rate_limit") == 1  # fmt: skip
    assert value(reg, "llm_tokens_total", provider="openai", model="gpt-6-luna",
                 token_type="input") == 105  # fmt: skip
    assert value(reg, "llm_request_duration_seconds_count", provider="openai",
                 model="gpt-6-luna") == 1  # fmt: skip
    assert value(reg, "llm_exporter_events_total", type="llm_call") == 3
    assert value(reg, "llm_exporter_events_total", type="session_start") == 1
    assert value(reg, "llm_exporter_events_total", type="session_message") == 0
    assert value(reg, "llm_exporter_events_rejected_total", reason="invalid") == 2
    assert value(reg, "llm_exporter_events_rejected_total", reason="unknown_provider") == 2
    assert value(reg, "llm_sessions_started_total") == 1
    assert not [k for k in series(reg) if ("provider", "acme") in k[1]]


async def test_rejected_events_change_nothing_but_the_rejection_counters(client) -> None:
    await post(client, [call(id="x", input_tokens=3)])
    before = series(client.registry)
    status, body = await post(client, [call(input_tokens=-1), call("acme", "m"), 5])
    assert status == 200 and body["accepted"] == 0 and len(body["rejected"]) == 3
    after = series(client.registry)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {
        ("llm_exporter_events_rejected_total", (("reason", "invalid"),)),
        ("llm_exporter_events_rejected_total", (("reason", "unknown_provider"),)),
    }


async def test_duplicates_are_counted_once(client: TestClient) -> None:
    batch = [call(id=f"e{i}", input_tokens=10) for i in range(5)]
    assert (await post(client, batch))[1] == {"accepted": 5, "duplicates": 0, "rejected": []}
    status, body = await post(client, [*batch, call(id="new", input_tokens=10), batch[0]])
    assert status == 200 and body == {"accepted": 1, "duplicates": 6, "rejected": []}
    reg = client.registry
    assert value(reg, "llm_tokens_total", provider="openai", model="gpt-6-luna",
                 token_type="input") == 60  # fmt: skip
    assert value(reg, "llm_exporter_events_total", type="llm_call") == 6
    assert value(reg, "llm_exporter_events_duplicate_total") == 6


def test_the_dedup_window_is_bounded() -> None:
    d = Dedup(3)
    assert [d.seen(x) for x in "abca"] == [False, False, False, True]
    assert not d.seen("d") and len(d) == 3  # "a" left the window
    assert not d.seen("a")
    off = Dedup(0)
    assert not off.seen("a") and not off.seen("a") and len(off) == 0


async def test_single_object_and_empty_array(client: TestClient) -> None:
    assert (await post(client, call(id="one")))[1]["accepted"] == 1
    assert (await post(client, []))[1] == {"accepted": 0, "duplicates": 0, "rejected": []}


@pytest.mark.parametrize("raw", [b"{not json", b"42", b'"x"', b"null"])
async def test_a_body_that_is_not_events_json_is_400(client: TestClient, raw: bytes) -> None:
    r = await client.post(EVENTS, data=raw, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert "body" in (await r.json())["error"]
    assert value(client.registry, "llm_exporter_events_rejected_total", reason="malformed") == 1


async def test_wrong_content_type_is_415(client: TestClient) -> None:
    r = await client.post(EVENTS, data="a=b", headers={"Content-Type": "text/plain"})
    assert r.status == 415


async def test_oversize_bodies_are_413(client: TestClient) -> None:
    big = json.dumps([call(model="m" * 100, id=f"{i}") for i in range(40)]).encode()
    assert len(big) > 4096
    r = await client.post(EVENTS, data=big, headers={"Content-Type": "application/json"})
    assert r.status == 413

    async def chunks():  # no Content-Length: the cap applies while reading
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    r = await client.post(EVENTS, data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status == 413
    reg = client.registry
    assert value(reg, "llm_exporter_events_rejected_total", reason="too_large") == 2
    assert value(reg, "llm_exporter_events_total", type="llm_call") == 0


async def test_a_small_chunked_body_is_read(client: TestClient) -> None:
    async def chunks():
        yield b"[" + json.dumps(call(id="c1")).encode()
        yield b"]"

    r = await client.post(EVENTS, data=chunks(), headers={"Content-Type": "application/json"})
    assert r.status == 200 and (await r.json())["accepted"] == 1


async def test_more_events_than_max_batch_is_413(client: TestClient) -> None:
    status, body = await post(client, [{"type": "session_start", "session_id": "s"}] * 51)
    assert status == 413 and "max_batch" in body["error"]
    assert value(client.registry, "llm_sessions_started_total") == 0


async def test_token_is_required_when_configured(aiohttp_client) -> None:
    cfg = make_config(ingest={"token_env": "MY_TOKEN"})
    app, registry, _ = traffic_app(cfg, env={"MY_TOKEN": TOKEN})
    client = await aiohttp_client(app)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                    {"Authorization": f"Bearer {TOKEN}x"}):  # fmt: skip
        r = await client.post(EVENTS, json=[call()], headers=headers)
        assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
        assert TOKEN not in await r.text()
    r = await client.post(EVENTS, json=[call()], headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200 and (await r.json())["accepted"] == 1
    assert value(registry, "llm_exporter_events_rejected_total", reason="unauthorized") == 4
    assert value(registry, "llm_exporter_events_total", type="llm_call") == 1


async def test_no_token_configured_means_no_auth(aiohttp_client) -> None:
    app, _, _ = traffic_app(make_config(ingest={"token_env": "MY_TOKEN"}), env={"MY_TOKEN": " "})
    client = await aiohttp_client(app)
    r = await client.post(EVENTS, json=[call()])
    assert r.status == 200


async def test_disabled_provider_is_rejected(aiohttp_client) -> None:
    app, registry, _ = traffic_app(make_config(providers={"grok": {"enabled": False}}))
    client = await aiohttp_client(app)
    status, body = await post(client, [call("grok", "grok-4.7"), call("openai", "gpt-6-sol")])
    assert status == 200 and body["accepted"] == 1 and body["rejected"][0]["index"] == 0
    assert value(registry, "llm_exporter_events_rejected_total", reason="unknown_provider") == 1


async def test_json_content_types_are_accepted(client: TestClient) -> None:
    body = json.dumps(call(id="ct")).encode()
    for ctype in ("application/json; charset=utf-8", "application/vnd.events+json"):
        r = await client.post(EVENTS, data=body, headers={"Content-Type": ctype})
        assert r.status == 200, ctype
    assert value(client.registry, "llm_exporter_events_total", type="llm_call") == 1
    assert value(client.registry, "llm_exporter_events_duplicate_total") == 1


async def test_an_empty_body_is_a_json_400_counted_as_malformed(client: TestClient) -> None:
    for data in (b"", b"  \r\n"):
        r = await client.post(EVENTS, data=data, headers={"Content-Type": "application/json"})
        assert r.status == 400 and r.content_type == "application/json"
        assert "empty" in (await r.json())["error"]
    assert value(client.registry, "llm_exporter_events_rejected_total", reason="malformed") == 2
    assert value(client.registry, "llm_exporter_events_total", type="llm_call") == 0


async def test_the_unknown_provider_echo_is_bounded(client: TestClient) -> None:
    status, body = await post(client, [call("\u202e" + "x" * 63, "m"), call("y" * 64, "m")])
    assert status == 200
    first, second = (r["error"] for r in body["rejected"])
    assert first.startswith("provider '\\u202e" + "x" * 58 + "'... (64 chars) is not configured")
    assert second == f"provider '{'y' * 64}' is not configured and enabled - at `$.provider`"


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _hold_open(port: int, n: int) -> list[Conn]:
    """`n` connections that sent their headers and half of a body, and wait."""
    conns = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 4\r\n\r\n[]"
        )
        await writer.drain()
        conns.append((reader, writer))
    return conns


async def test_requests_over_max_concurrent_are_503_busy_over_real_http(aiohttp_server) -> None:
    app, registry, parts = traffic_app(make_config(ingest={"max_concurrent_requests": 2}))
    server = await aiohttp_server(app, host="127.0.0.1")
    url = f"http://127.0.0.1:{server.port}{EVENTS}"
    ingestor = parts.ingestor
    held = await _hold_open(server.port, 2)
    await until(lambda: ingestor.in_flight == 2)
    async with aiohttp.ClientSession() as http:
        r = await http.post(url, json=[call(id="busy-1")])
        assert r.status == 503 and r.headers["Retry-After"] == "1"
        assert "retry" in (await r.json())["error"]
        assert value(registry, "llm_exporter_events_rejected_total", reason="busy") == 1
        assert value(registry, "llm_exporter_events_total", type="llm_call") == 0

        for reader, writer in held:  # the held requests finish, and their slots come free
            writer.write(b"  ")
            await writer.drain()
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
            writer.close()
        assert ingestor.in_flight == 0
        r = await http.post(url, json=[call(id="busy-1")])
        assert r.status == 200 and (await r.json())["accepted"] == 1  # counted once, on retry

        dropped = await _hold_open(server.port, 2)  # a client that goes away frees its slot too
        await until(lambda: ingestor.in_flight == 2)
        for _, writer in dropped:
            writer.close()
        await until(lambda: ingestor.in_flight == 0)
        r = await http.post(url, json=[call(id="busy-2")])
        assert r.status == 200
    assert value(registry, "llm_exporter_events_rejected_total", reason="busy") == 1
    assert value(registry, "llm_exporter_events_total", type="llm_call") == 2


def test_a_reload_changes_the_concurrency_limit() -> None:
    _, _, parts = traffic_app(make_config())
    assert parts.ingestor.max_in_flight == 256
    parts.ingestor.reconfigure(make_config(ingest={"max_concurrent_requests": 3}).ingest)
    assert parts.ingestor.max_in_flight == 3
