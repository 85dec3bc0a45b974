"""What a probe's duration covers: the exchange on the wire, not our parsing, not our event
loop's queue; and the simulator keeps a fixed latency without the timer's millisecond of slack."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from _probe_helpers import reply_json, reply_sse, sse, target
from aiohttp import web

from exporter.providers import http, make_trace_config
from exporter.providers.http import Exchange, base_headers, run
from exporter.providers.openai import ChatStream, probe
from exporter.providers.timing import PhaseTimer
from exporter.simulator import call as sim_call
from exporter.simulator.call import Call
from exporter.simulator.state import SimState
from exporter.vocab import Check

STALL = 0.2  # seconds our own code is made to take; a loopback exchange takes a few ms
MODELS = {"object": "list", "data": [{"id": "m"}]}
CHUNK = {"choices": [{"index": 0, "delta": {"content": "pong"}}]}


async def test_duration_stops_before_the_body_is_parsed(fake, session) -> None:
    """A slow parse of a 2xx body happens after the clock stopped."""
    fake.handler = reply_json(MODELS)

    def slow_parse(doc: Any) -> tuple[frozenset[str], None]:
        time.sleep(STALL)
        return frozenset(item["id"] for item in doc["data"]), None

    exchange = Exchange("GET", f"{fake.url}/models", base_headers(), parse=slow_parse)
    started = time.perf_counter()
    result = await run(session, target(fake.url, "openai"), exchange)
    assert time.perf_counter() - started >= STALL
    assert result.success and result.models == frozenset({"m"})
    assert result.duration < STALL and result.phases["total"] == result.duration


async def test_duration_excludes_header_parsing(fake, session, monkeypatch) -> None:
    """Rate-limit headers are read after the last byte, so their parsing is not timed."""
    fake.handler = reply_json(MODELS, headers={"x-ratelimit-limit-requests": "500"})
    real = http.parse_ratelimits

    def slow(headers: Any) -> Any:
        time.sleep(STALL)
        return real(headers)

    monkeypatch.setattr(http, "parse_ratelimits", slow)
    result = await probe(session, target(fake.url, "openai"), Check.MODELS)
    assert result.success and result.ratelimits["requests"].limit == 500
    assert result.duration < STALL


async def test_error_duration_excludes_classification(fake, session, monkeypatch) -> None:
    """A 429 is timed to its last byte; classifying it and its retry hints come after."""
    fake.handler = reply_json({"error": {"message": "slow down"}}, status=429,
                              headers={"retry-after": "7"})
    real = http.classify_status

    def slow(*args: Any) -> Any:
        time.sleep(STALL)
        return real(*args)

    monkeypatch.setattr(http, "classify_status", slow)
    result = await probe(session, target(fake.url, "openai"), Check.MODELS)
    assert not result.success and result.status == 429 and result.retry_after == 7.0
    assert result.duration < STALL


async def test_stream_ends_at_the_end_marker_and_keeps_the_connection(fake, session) -> None:
    """[DONE] stops the clock even if the chunked terminator comes later; reading that
    terminator (untimed) lets the next probe reuse the connection instead of reconnecting."""
    fake.handler = reply_sse(sse(CHUNK), sse("[DONE]"), 0.1)  # EOF 100 ms after [DONE]
    first = await probe(session, target(fake.url, "openai"), Check.STREAM)
    second = await probe(session, target(fake.url, "openai"), Check.STREAM)
    assert first.success and second.success
    assert first.duration < 0.1 and second.duration < 0.1
    assert first.phases["connect"] > 0 and second.phases["connect"] == 0.0  # reused


async def test_stream_end_marker_parse_is_not_timed(fake, session, monkeypatch) -> None:
    """The clock takes the end marker's arrival, before its chunk is parsed."""
    fake.handler = reply_sse(sse(CHUNK), sse("[DONE]"))
    real = ChatStream.feed

    def slow_feed(self: ChatStream, event: Any) -> bool:
        if event.data == "[DONE]":
            time.sleep(STALL)
        return real(self, event)

    monkeypatch.setattr(ChatStream, "feed", slow_feed)
    result = await probe(session, target(fake.url, "openai"), Check.STREAM)
    assert result.success and result.duration < STALL


async def test_drain_after_end_marker_is_bounded(fake, session) -> None:
    """A server that never ends the body after [DONE] costs at most DRAIN_S, not the timeout."""

    async def never_ends(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write((sse(CHUNK) + sse("[DONE]")).encode())
        await fake.release.wait()  # set when the test ends
        return resp

    fake.handler = never_ends
    started = time.perf_counter()
    result = await probe(session, target(fake.url, "openai", timeout=5.0), Check.STREAM)
    elapsed = time.perf_counter() - started
    assert result.success and result.reason is None
    assert http.DRAIN_S <= elapsed < http.DRAIN_S + 1.0
    assert result.duration < http.DRAIN_S


async def test_time_our_loop_holds_a_ready_request_is_not_timed(fake) -> None:
    """Between aiohttp buffering the headers and writing them with the body nothing is on the
    wire; a stall there (our loop busy with other probes) is left out of the duration."""
    fake.handler = reply_json({"choices": [], "usage": {"prompt_tokens": 1}})
    stalled: list[bool] = []

    async def stall(*_: Any) -> None:  # runs just before our own chunk-sent mark
        if not stalled:
            stalled.append(True)
            time.sleep(STALL)  # noqa: ASYNC251 - the point: our loop is busy

    blocker = aiohttp.TraceConfig()
    blocker.on_request_chunk_sent.append(stall)
    async with aiohttp.ClientSession(trace_configs=[blocker, make_trace_config()]) as s:
        started = time.perf_counter()
        result = await probe(s, target(fake.url, "openai"), Check.COMPLETION)
        elapsed = time.perf_counter() - started
    assert stalled and elapsed >= STALL
    assert result.success and result.duration < STALL
    assert result.phases["first_byte"] <= result.duration


async def test_clock_starts_when_aiohttp_starts_the_request(fake) -> None:
    """Building the request in Python (everything before aiohttp's request-start signal) is not
    timed; the connection it then opens is (`connect` stays inside `total`)."""
    fake.handler = reply_json(MODELS)

    async def stall(*_: Any) -> None:  # runs just before our own request-start mark
        time.sleep(STALL)  # noqa: ASYNC251 - the point: our loop is busy

    blocker = aiohttp.TraceConfig()
    blocker.on_request_start.append(stall)
    async with aiohttp.ClientSession(trace_configs=[blocker, make_trace_config()]) as s:
        started = time.perf_counter()
        result = await probe(s, target(fake.url, "openai"), Check.MODELS)
        elapsed = time.perf_counter() - started
    assert elapsed >= STALL and result.success and result.duration < STALL
    assert 0 < result.phases["connect"] <= result.phases["first_byte"] <= result.duration


def test_phase_timer_subtracts_only_the_send_lag() -> None:
    """Marks relative to start, minus the headers-ready -> body-sent gap; no gap, no change."""
    timer = PhaseTimer(https=False)
    timer.start, timer.first_byte, timer.end = 10.0, 10.5, 10.75
    assert timer.phases() == {"first_byte": 0.5, "total": 0.75}
    timer.headers_ready, timer.body_sent = 10.1, 10.3
    assert timer.send_lag() == pytest.approx(0.2)
    assert timer.phases() == {"first_byte": pytest.approx(0.3), "total": pytest.approx(0.55)}
    timer.body_sent = None  # failed before the body went out: nothing to subtract
    assert timer.send_lag() == 0.0


class FakeClock:
    """monotonic() and sleep() for Call.pause: every real sleep wakes `late` seconds late."""

    def __init__(self, late: float) -> None:
        self.now, self.late, self.sleeps = 0.0, late, []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + (self.late if seconds > 0 else 1e-5)


@pytest.mark.parametrize(("precise", "low", "high"), [(False, 8e-4, 1e-3), (True, 0.0, 2e-5)])
async def test_simulator_pause_keeps_a_fixed_latency(monkeypatch, precise, low, high) -> None:
    """With timers 0.9 ms late, a plain pause ends 0.9 ms late; a precise one sleeps to 1 ms
    short and yields for the rest, ending within 20 us and never early."""
    clock = FakeClock(late=9e-4)
    monkeypatch.setattr(sim_call, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(sim_call, "asyncio", SimpleNamespace(sleep=clock.sleep))
    request = SimpleNamespace(transport=SimpleNamespace(is_closing=lambda: False))
    call = Call(request=request, provider="openai", state=SimState(seed=1))  # type: ignore[arg-type]
    assert await call.pause(0.1, precise=precise)
    assert low <= clock.now - 0.1 <= high
    assert all(s <= sim_call._POLL_S for s in clock.sleeps)


async def test_simulator_precise_pause_stops_for_a_gone_client() -> None:
    """The busy last millisecond still notices a client that left."""
    transport = SimpleNamespace(closing=False)
    transport.is_closing = lambda: transport.closing
    call = Call(request=SimpleNamespace(transport=transport), provider="openai",  # type: ignore[arg-type]
                state=SimState(seed=1))
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, setattr, transport, "closing", True)
    started = time.perf_counter()
    assert await call.pause(5.0, precise=True) is False
    assert time.perf_counter() - started < 1.0
