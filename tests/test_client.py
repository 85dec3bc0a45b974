"""exporter.client.Reporter against a real traffic server: batching, retries, restarts, bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from _net import free_port
from aiohttp import web

from exporter.client import Reporter
from exporter.traffic_setup import TrafficParts, build_traffic
from tests._traffic_helpers import make_config, traffic_app, until, value

PM = {"provider": "openai", "model": "gpt-6-luna"}



class Server:
    """The traffic app on a fixed loopback port, stoppable and restartable with the same state."""

    def __init__(self, parts: TrafficParts, port: int, middlewares: list | None = None) -> None:
        self.parts, self.port, self.middlewares = parts, port, middlewares or []
        self.runner: web.AppRunner | None = None
        self.registry = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app, self.registry, _ = traffic_app(make_config(), parts=self.parts)
        app.middlewares.extend(self.middlewares)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        self.runner = None


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(build_traffic(make_config(), env={}), free_port())
    await srv.start()
    yield srv
    if srv.runner is not None:
        await srv.stop()


def calls(reporter: Reporter, start: int, stop: int) -> None:
    for i in range(start, stop):
        reporter.record_call("openai", "gpt-6-luna", duration_seconds=0.5, input_tokens=i)


def tokens(n: int) -> int:
    return n * (n - 1) // 2  # sum(range(n)): each event's input_tokens is its index


async def test_events_arrive_in_batches_exactly_once(server: Server) -> None:
    async with Reporter(server.url, batch_size=64, flush_interval=0.05) as rep:
        rep.session_start("s1")
        calls(rep, 0, 1000)
        rep.session_message("s1", "assistant", provider="openai", content_length=42)
        rep.session_summarized("s1")
        rep.session_end("s1")
        assert await rep.aflush(10)
        stats = rep.stats
    assert (stats.sent, stats.dropped, stats.failed, stats.rejected) == (1004, 0, 0, 0)
    reg = server.registry
    assert value(reg, "llm_requests_total", outcome="success", **PM) == 1000
    assert value(reg, "llm_tokens_total", token_type="input", **PM) == tokens(1000)
    assert value(reg, "llm_session_summarizations_total") == 1
    assert value(reg, "llm_sessions_ended_total", outcome="completed") == 1


async def test_surviving_an_exporter_restart_without_loss_or_doubles(server: Server) -> None:
    rep = Reporter(server.url, batch_size=50, flush_interval=0.02, backoff=(0.02, 0.2))
    calls(rep, 0, 300)
    assert await rep.aflush(10)
    await server.stop()
    calls(rep, 300, 700)  # recorded while the exporter is down: queued and retried
    await until(lambda: rep.stats.retried >= 2)  # the sender keeps knocking at a closed port
    await server.start()
    assert await rep.aflush(10)
    stats = rep.stats
    await rep.aclose()
    assert (stats.sent, stats.duplicates, stats.dropped, stats.failed) == (700, 0, 0, 0)
    reg = server.registry
    assert value(reg, "llm_requests_total", outcome="success", **PM) == 700
    assert value(reg, "llm_tokens_total", token_type="input", **PM) == tokens(700)


async def test_a_lost_answer_is_retried_and_counted_once() -> None:
    parts = build_traffic(make_config(), env={})
    lost: list[int] = []

    @web.middleware
    async def drop_first_answers(request: web.Request, handler: Callable) -> web.StreamResponse:
        response = await handler(request)  # the exporter has counted the batch ...
        if len(lost) < 2:
            lost.append(1)
            assert request.transport is not None
            request.transport.abort()  # ... but the client never hears back
        return response

    srv = Server(parts, free_port(), [drop_first_answers])
    await srv.start()
    try:
        async with Reporter(srv.url, batch_size=100, backoff=(0.01, 0.05)) as rep:
            calls(rep, 0, 250)
            assert await rep.aflush(10)
            stats = rep.stats
    finally:
        await srv.stop()
    assert len(lost) == 2 and stats.retried >= 2
    assert stats.sent <= 250 and stats.duplicates > 0
    assert value(srv.registry, "llm_requests_total", outcome="success", **PM) == 250
    # the server saw every retry, including any whose answer was lost again
    assert value(srv.registry, "llm_exporter_events_duplicate_total") >= stats.duplicates


async def test_a_4xx_is_not_retried(aiohttp_server) -> None:
    cfg = make_config(ingest={"token_env": "T"})
    app, registry, _ = traffic_app(cfg, env={"T": "right"})
    srv = await aiohttp_server(app)
    async with Reporter(f"http://127.0.0.1:{srv.port}", token="wrong") as rep:
        calls(rep, 0, 10)
        assert await rep.aflush(5)
        assert (rep.stats.failed, rep.stats.retried, rep.stats.sent) == (10, 0, 0)
    assert value(registry, "llm_exporter_events_rejected_total", reason="unauthorized") == 1
    async with Reporter(f"http://127.0.0.1:{srv.port}", token="right") as rep:
        calls(rep, 0, 10)
        assert await rep.aflush(5) and rep.stats.sent == 10


async def test_an_oversize_batch_is_split(aiohttp_server) -> None:
    app, registry, _ = traffic_app(make_config(ingest={"max_batch": 30}))
    srv = await aiohttp_server(app)
    async with Reporter(f"http://127.0.0.1:{srv.port}", batch_size=200) as rep:
        calls(rep, 0, 200)
        assert await rep.aflush(5)
        assert (rep.stats.sent, rep.stats.failed) == (200, 0)
    assert value(registry, "llm_requests_total", outcome="success", **PM) == 200


def test_the_queue_is_bounded_and_recording_never_blocks() -> None:
    rep = Reporter(f"http://127.0.0.1:{free_port()}", max_queue=100, flush_interval=10)
    started = time.perf_counter()
    calls(rep, 0, 5000)  # nothing listens: the sender is stuck retrying
    assert time.perf_counter() - started < 0.5
    assert (rep.stats.queued, rep.stats.dropped) == (100, 4900)
    assert not rep.close(timeout=0.3)  # cannot deliver: gives up, counts what it lost
    stats = rep.stats
    assert stats.queued == 0
    assert stats.dropped + stats.failed == 5000
    rep.record_call("openai", "gpt-6-luna")  # after close: dropped, not queued
    assert rep.stats.dropped == stats.dropped + 1


async def test_timed_call_sync_and_async(server: Server) -> None:
    rep = Reporter(server.url, flush_interval=0.02)
    with rep.timed_call("openai", "gpt-6-luna", session_id=None) as t:
        t.first_token()
        t.input_tokens, t.output_tokens = 7, 3
    with pytest.raises(TimeoutError), rep.timed_call("openai", "gpt-6-luna"):
        raise TimeoutError
    with pytest.raises(ConnectionResetError), rep.timed_call("openai", "gpt-6-luna"):
        raise ConnectionResetError
    async with rep.timed_call("anthropic", "claude-haiku-4-5") as t:
        await asyncio.sleep(0.01)
        t.outcome = "rate_limit"
    with pytest.raises(ValueError), rep.timed_call("openai", "gpt-6-luna"):
        raise ValueError
    assert await rep.aflush(5)
    await rep.aclose()
    reg = server.registry
    assert value(reg, "llm_requests_total", outcome="success", **PM) == 1
    assert value(reg, "llm_requests_total", outcome="timeout", **PM) == 1
    assert value(reg, "llm_requests_total", outcome="network", **PM) == 1
    assert value(reg, "llm_requests_total", outcome="other", **PM) == 1
    assert value(reg, "llm_requests_total", provider="anthropic", model="claude-haiku-4-5",
                 outcome="rate_limit") == 1  # fmt: skip
    assert value(reg, "llm_time_to_first_token_seconds_count", **PM) == 1
    assert value(reg, "llm_tokens_total", token_type="output", **PM) == 3


def test_ids_are_unique_across_reporters() -> None:
    a, b = Reporter("http://127.0.0.1:1"), Reporter("http://127.0.0.1:1")
    try:
        ids = {a._as_dict(("session_start", i, 0.0, {}))["id"] for i in range(3)}
        ids |= {b._as_dict(("session_start", i, 0.0, {}))["id"] for i in range(3)}
        assert len(ids) == 6
    finally:
        a.close(0.1)
        b.close(0.1)


async def test_odd_values_neither_crash_the_sender_nor_get_lost(server: Server) -> None:
    class Tokens(int):  # an int subclass, like numpy's integer types
        pass

    class Seconds:  # only convertible with float(), like numpy.float32
        def __float__(self) -> float:
            return 0.5

    async with Reporter(server.url, flush_interval=0.02) as rep:
        rep.record_call("openai", "gpt-6-luna", input_tokens=Tokens(7), duration_seconds=Seconds())
        rep.record_call("openai", "gpt-6-luna", input_tokens=object())  # rejected by the exporter
        assert await rep.aflush(5)
        assert (rep.stats.sent, rep.stats.rejected, rep.stats.failed) == (1, 1, 0)
    assert value(server.registry, "llm_tokens_total", token_type="input", **PM) == 7
    assert value(server.registry, "llm_request_duration_seconds_sum", **PM) == 0.5
