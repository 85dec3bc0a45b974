"""The demo's synthetic orchestrator against the real simulator and the real traffic app."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestServer

from exporter.orchestrator_sim import run_synthetic_orchestrator, status_reason, usage_from
from exporter.providers.base import Usage
from exporter.simulator import create_app as create_simulator
from tests._traffic_helpers import EVENTS, make_config, traffic_app, until, value


def test_usage_is_made_disjoint_per_wire_family() -> None:
    openai = {"prompt_tokens": 1200, "completion_tokens": 90,
              "prompt_tokens_details": {"cached_tokens": 1024},
              "completion_tokens_details": {"reasoning_tokens": 40}}  # fmt: skip
    assert usage_from("openai", "openai", openai) == Usage(176, 50, 1024, 0, 40)
    assert usage_from("grok", "openai", openai) == Usage(176, 90, 1024, 0, 40)  # xAI: excluded
    anthropic = {"input_tokens": 30, "cache_read_input_tokens": 1000,
                 "cache_creation_input_tokens": 200, "output_tokens": 80,
                 "output_tokens_details": {"thinking_tokens": 20}}  # fmt: skip
    assert usage_from("anthropic", "anthropic", anthropic) == Usage(30, 60, 1000, 200, 20)
    gemini = {"promptTokenCount": 1500, "cachedContentTokenCount": 1024,
              "candidatesTokenCount": 70, "thoughtsTokenCount": 33}  # fmt: skip
    assert usage_from("gemini", "gemini", gemini) == Usage(476, 70, 1024, 0, 33)
    assert usage_from("mistral", "openai", {}) == Usage()


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "auth"), (403, "auth"), (402, "billing"), (404, "not_found"), (429, "rate_limit"),
     (408, "timeout"), (504, "timeout"), (503, "overloaded"), (529, "overloaded"),
     (500, "server_error"), (502, "server_error"), (400, "bad_request"), (422, "bad_request")],
)  # fmt: skip
def test_status_to_reason(status: int, reason: str) -> None:
    assert status_reason(status) == reason


async def test_every_traffic_and_session_family_gets_live_data(aiohttp_client) -> None:
    cfg = make_config(sessions={"ttl": "1s"})
    app, reg, _ = traffic_app(cfg)
    exporter = await aiohttp_client(app)
    sim = TestServer(create_simulator(seed=7))
    await sim.start_server()
    sim_client = await aiohttp_client(sim)
    r = await sim_client.post("/_sim/grok", json={"mode": "overloaded", "latency_ms": 5})
    assert r.status == 200
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_synthetic_orchestrator(
            cfg,
            events_url=str(exporter.make_url(EVENTS)),
            simulator_url=str(sim.make_url("")),
            stop=stop,
            rate_per_second=60,
            seed=11,
        )
    )
    providers = list(cfg.enabled_providers())

    def total(name: str, **labels: str) -> float:
        return sum(
            s.value for fam in reg.collect() for s in fam.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )  # fmt: skip

    checks = {
        "all providers": lambda: all(total("llm_requests_total", provider=p) for p in providers),
        "errors seen": lambda: total("llm_requests_total", provider="grok", outcome="overloaded"),
        "durations": lambda: total("llm_request_duration_seconds_count"),
        "ttft": lambda: total("llm_time_to_first_token_seconds_count"),
        "tokens": lambda: all(total("llm_tokens_total", token_type=t)
                              for t in ("input", "output", "cached_input", "reasoning")),
        "cost": lambda: total("llm_cost_usd_total"),
        "unpriced": lambda: total("llm_unpriced_requests_total", model="other"),
        "quality": lambda: total("llm_response_quality_score_count"),
        "overflow": lambda: value(reg, "llm_exporter_label_overflow_total", label="model"),
        "sessions": lambda: value(reg, "llm_sessions_started_total"),
        "completed": lambda: value(reg, "llm_sessions_ended_total", outcome="completed"),
        "expired": lambda: value(reg, "llm_sessions_ended_total", outcome="expired"),
        "durations s": lambda: value(reg, "llm_session_duration_seconds_count"),
        "messages": lambda: value(reg, "llm_session_messages_sum"),
        "summaries": lambda: value(reg, "llm_session_summarizations_total"),
        "switches": lambda: value(reg, "llm_session_provider_switches_total"),
        "event types": lambda: all(total("llm_exporter_events_total", type=t) for t in (
            "llm_call", "session_start", "session_message", "session_summarized",
            "session_end")),
    }  # fmt: skip
    try:
        await until(lambda: all(check() for check in checks.values()), within=25, step=0.2)
    except TimeoutError:
        missing = [name for name, check in checks.items() if not check()]
        pytest.fail(f"families without data: {missing}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await sim.close()
    assert value(reg, "llm_exporter_events_rejected_total", reason="invalid") == 0
    assert value(reg, "llm_exporter_events_rejected_total", reason="unknown_provider") == 0
