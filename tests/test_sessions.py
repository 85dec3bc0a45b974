"""Sessions: stats, provider switches, expiry (lazy and in the background), bounds, the GET API."""

from __future__ import annotations

import dataclasses

from exporter.config import SessionsConfig
from exporter.events import LlmCall, SessionMessage
from exporter.sessions import SessionCollector, SessionState, SessionStore
from tests._traffic_helpers import EVENTS, call, make_config, traffic_app, until, value


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def store(ttl: float = 60.0, max_active: int = 100, max_recent: int = 100) -> SessionStore:
    cfg = SessionsConfig(ttl=ttl, max_active=max_active, max_recent=max_recent)
    return SessionStore(cfg, clock=Clock())


def msg(sid: str, role: str, provider: str | None = None, **kw) -> SessionMessage:
    return SessionMessage(session_id=sid, role=role, provider=provider, **kw)


def test_a_session_collects_its_stats() -> None:
    s = store()
    s.start("a", 1000.0, 990.0)
    s.message(msg("a", "user", content_length=10), 1001.0)
    s.message(msg("a", "assistant", "openai", content_length=100, response_time_seconds=1.0), 1002)
    s.message(msg("a", "user", content_length=30), 1003.0)
    s.message(msg("a", "assistant", "gemini", response_time_seconds=3.0), 1004.0)
    s.message(msg("a", "assistant", "gemini", content_length=50), 1005.0)
    s.message(msg("a", "assistant", "openai"), 1006.0)
    s.message(msg("a", "system"), 1006.5)
    s.summarized("a", 1007.0, None)
    ev = LlmCall(provider="openai", model="m", session_id="a", duration_seconds=2.0,
                 input_tokens=10, output_tokens=5, quality_score=0.5)  # fmt: skip
    s.call(ev, 1008.0, 0.25)
    s.end("a", 1010.0, None)
    view = s.get("a", 1011.0).view()
    assert view == {
        "session_id": "a", "status": "completed", "started_at": 990.0, "ended_at": 1010.0,
        "duration_seconds": 20.0, "message_count": 7, "user_messages": 2,
        "assistant_messages": 4, "avg_user_message_length": 20.0,
        "avg_assistant_message_length": 75.0, "providers_used": ["openai", "gemini"],
        "provider_switches": 2, "summarizations": 1, "mean_response_time_seconds": 2.0,
        "mean_quality_score": 0.5, "calls": 1, "tokens": 15, "cost_usd": 0.25,
    }  # fmt: skip
    assert (s.started, s.ended, s.switches, s.summarizations) == (
        1,
        {"completed": 1, "expired": 0},
        2,
        1,
    )
    assert s.duration.count == 1 and s.duration.sum == 20.0 and s.messages.sum == 7


def test_optional_figures_are_null_when_never_given() -> None:
    s = store()
    s.start("b", 1000.0, None)
    s.message(msg("b", "user"), 1000.0)
    view = s.get("b", 1000.0).view()
    assert view["status"] == "active" and view["ended_at"] is None
    assert view["avg_user_message_length"] is None and view["mean_quality_score"] is None
    assert view["mean_response_time_seconds"] is None


def test_implicit_starts_and_no_ops() -> None:
    s = store()
    s.message(msg("m", "user"), 1000.0)  # a message opens an unknown session
    s.summarized("z", 1000.0, None)  # so does a summarization
    s.call(LlmCall(provider="openai", model="x", session_id="c"), 1000.0, None)  # a call doesn't
    s.end("nobody", 1000.0, None)
    s.start("m", 1001.0, None)  # a repeated start is not a second session
    assert set(s.active) == {"m", "z"} and s.started == 2 and s.ended["completed"] == 0


def test_silent_sessions_expire_and_active_ones_do_not() -> None:
    s = store(ttl=60.0)
    s.start("old", 1000.0, None)
    s.start("busy", 1000.0, None)
    s.message(msg("busy", "user"), 1050.0)
    assert s.expire(1061.0) == 1
    assert set(s.active) == {"busy"}
    old = s.get("old", 1061.0)
    assert old.status == "expired" and old.ended_at == 1000.0
    assert s.ended == {"completed": 0, "expired": 1}
    # lazily: an overdue session is expired when touched, and the event opens a new one
    s.message(msg("busy", "user"), 1200.0)
    assert s.ended["expired"] == 2 and s.started == 3 and s.active["busy"].user_messages == 1


def test_get_expires_lazily() -> None:
    s = store(ttl=10.0)
    s.start("a", 1000.0, None)
    assert s.get("a", 1005.0).status == "active"
    assert s.get("a", 1011.0).status == "expired"
    assert not s.active


def test_active_and_recent_are_bounded() -> None:
    s = store(max_active=3, max_recent=2)
    for i in range(5):
        s.start(f"s{i}", 1000.0 + i, None)
    assert list(s.active) == ["s2", "s3", "s4"]
    assert s.evicted == 2 and s.ended["expired"] == 2
    s.end("s2", 1010.0, None)
    assert list(s.recent) == ["s1", "s2"]  # s0 fell out of the LRU
    assert s.get("s0", 1010.0) is None


def test_session_state_is_plain_data() -> None:
    st = SessionState("x", 1.0, 2.0, 3.0, providers_used=["openai"])
    d = dataclasses.asdict(st)
    assert SessionState(**d) == st


def test_collector_families(registry) -> None:
    s = store()
    registry.register(SessionCollector(s))
    s.start("a", 1000.0, None)
    s.start("b", 1000.0, None)
    s.message(msg("a", "assistant", "openai"), 1001.0)
    s.message(msg("a", "assistant", "grok"), 1002.0)
    s.end("a", 1003.0, None)
    get = registry.get_sample_value
    assert get("llm_sessions_active") == 1
    assert get("llm_sessions_started_total") == 2
    assert get("llm_sessions_ended_total", {"outcome": "completed"}) == 1
    assert get("llm_sessions_ended_total", {"outcome": "expired"}) == 0
    assert get("llm_session_provider_switches_total") == 1
    assert get("llm_session_messages_count") == 1 and get("llm_session_messages_sum") == 2
    assert get("llm_session_duration_seconds_bucket", {"le": "10.0"}) == 1


async def test_sessions_over_http_and_background_expiry(aiohttp_client) -> None:
    app, reg, _ = traffic_app(make_config(sessions={"ttl": "300ms"}))
    client = await aiohttp_client(app)
    events = [
        {"type": "session_start", "session_id": "done"},
        {"type": "session_start", "session_id": "abandoned"},
        {"type": "session_message", "session_id": "done", "role": "user", "content_length": 12},
        call(session_id="done", duration_seconds=1.5, input_tokens=100, output_tokens=20),
        {"type": "session_message", "session_id": "done", "role": "assistant"}
        | {"provider": "openai", "response_time_seconds": 1.5},
        {"type": "session_end", "session_id": "done"},
    ]
    assert (await (await client.post(EVENTS, json=events)).json())["accepted"] == 6
    r = await client.get("/api/sessions/done/metrics")
    body = await r.json()
    assert r.status == 200 and body["status"] == "completed" and body["calls"] == 1
    assert body["providers_used"] == ["openai"] and body["tokens"] == 120
    assert body["cost_usd"] > 0 and body["mean_response_time_seconds"] == 1.5
    r = await client.get("/api/sessions/nope/metrics")
    assert r.status == 404 and await r.json() == {"error": "unknown session"}
    # nobody touches "abandoned": the background task must expire it
    await until(lambda: value(reg, "llm_sessions_ended_total", outcome="expired") == 1)
    assert value(reg, "llm_sessions_active") == 0
    assert value(reg, "llm_sessions_ended_total", outcome="completed") == 1
    r = await client.get("/api/sessions/abandoned/metrics")
    assert (await r.json())["status"] == "expired"
