"""Traffic families: bounded labels under a flood, the series ceiling, cost and unpriced calls."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.providers.base import Usage
from exporter.traffic import OTHER, REJECT_REASONS, TrafficCollector
from exporter.traffic_setup import build_traffic, setup_traffic
from tests._traffic_helpers import EVENTS, call, make_config, series, traffic_app, value

PM = {"provider": "openai", "model": "gpt-6-luna"}


def pairs(reg) -> set[tuple[str, str]]:
    """Distinct (provider, model) pairs across every traffic family."""
    return {
        (dict(labels)["provider"], dict(labels)["model"])
        for (name, labels), _ in series(reg).items()
        if "model" in dict(labels)
    }


async def test_a_flood_of_model_names_cannot_grow_the_series(aiohttp_client) -> None:
    app, reg, _ = traffic_app(make_config())
    client = await aiohttp_client(app)
    r = await client.post(EVENTS, json=[call(input_tokens=1, duration_seconds=0.2)])
    assert r.status == 200
    baseline = len(series(reg))
    for start in range(0, 10_000, 1000):
        batch = [call(model=f"flood-{i}", input_tokens=1, duration_seconds=0.2, id=f"f{i}")
                 for i in range(start, start + 1000)]  # fmt: skip
        r = await client.post(EVENTS, json=batch)
        assert (await r.json())["accepted"] == 1000
    assert pairs(reg) == {("openai", "gpt-6-luna"), ("openai", OTHER)}
    # one more pair's worth of series (outcomes, histogram buckets, tokens, cost, unpriced)
    assert len(series(reg)) <= baseline + 40
    assert value(reg, "llm_exporter_label_overflow_total", label="model") == 10_000
    assert value(reg, "llm_requests_total", provider="openai", model=OTHER,
                 outcome="success") == 10_000  # fmt: skip
    assert value(reg, "llm_unpriced_requests_total", provider="openai", model=OTHER) == 10_000


async def test_the_series_ceiling_collapses_new_pairs_to_other(aiohttp_client) -> None:
    models = [f"m{i}" for i in range(150)]
    cfg = make_config(ingest={"max_series": 100}, providers={"openai": {"models": models}})
    app, reg, _ = traffic_app(cfg)
    client = await aiohttp_client(app)
    for i in range(0, 150, 50):
        r = await client.post(EVENTS, json=[call(model=m) for m in models[i : i + 50]])
        assert (await r.json())["accepted"] == 50
    got = pairs(reg)
    assert len(got) == 101 and ("openai", OTHER) in got
    assert value(reg, "llm_exporter_label_overflow_total", label="model") == 50
    assert value(reg, "llm_requests_total", provider="openai", model=OTHER,
                 outcome="success") == 50  # fmt: skip
    # a pair that already exists keeps its own label
    await client.post(EVENTS, json=[call(model="m0")])
    assert value(reg, "llm_requests_total", provider="openai", model="m0", outcome="success") == 2


async def test_cost_from_the_event_wins_and_unknown_prices_are_counted(aiohttp_client) -> None:
    cfg = make_config(providers={"openai": {"models": ["gpt-6-luna", "homegrown-1"]}})
    app, reg, _ = traffic_app(cfg)
    client = await aiohttp_client(app)
    batch = [
        call(input_tokens=1_000_000, cost_usd=42.5),
        call(model="homegrown-1", input_tokens=10),  # no price anywhere
        call(model="homegrown-1", outcome="auth"),  # no tokens spent: nothing unpriced
        call(model="homegrown-1", output_tokens=10, cost_usd=0.25),
    ]
    assert (await (await client.post(EVENTS, json=batch)).json())["accepted"] == 4
    assert value(reg, "llm_cost_usd_total", **PM) == 42.5
    assert value(reg, "llm_unpriced_requests_total", **PM) == 0
    hg = {"provider": "openai", "model": "homegrown-1"}
    assert value(reg, "llm_unpriced_requests_total", **hg) == 1
    assert value(reg, "llm_cost_usd_total", **hg) == 0.25


async def test_latency_histograms_take_successful_calls_only(aiohttp_client) -> None:
    app, reg, _ = traffic_app(make_config())
    client = await aiohttp_client(app)
    batch = [
        call(duration_seconds=0.4, time_to_first_token_seconds=0.08),
        call(duration_seconds=2.5),
        call(outcome="timeout", duration_seconds=30.0, time_to_first_token_seconds=1.0),
        call("gemini", "gemini-3.8-flash", quality_score=0.85),
        call("gemini", "gemini-3.8-flash", quality_score=0.35, outcome="server_error"),
    ]
    await client.post(EVENTS, json=batch)
    assert value(reg, "llm_request_duration_seconds_count", **PM) == 2
    assert value(reg, "llm_request_duration_seconds_sum", **PM) == 2.9
    assert value(reg, "llm_request_duration_seconds_bucket", le="0.5", **PM) == 1
    assert value(reg, "llm_time_to_first_token_seconds_count", **PM) == 1
    assert value(reg, "llm_time_to_first_token_seconds_bucket", le="0.1", **PM) == 1
    assert value(reg, "llm_response_quality_score_count", provider="gemini") == 2
    assert value(reg, "llm_response_quality_score_bucket", provider="gemini", le="0.4") == 1


def test_an_empty_state_exports_zeros_where_dashboards_need_them(registry) -> None:
    cfg = make_config()
    state = build_traffic(cfg, env={}).traffic
    registry.register(TrafficCollector(state))
    for kind in ("llm_call", "session_start", "session_message", "session_summarized",
                 "session_end"):  # fmt: skip
        assert registry.get_sample_value("llm_exporter_events_total", {"type": kind}) == 0
    for reason in REJECT_REASONS:
        assert registry.get_sample_value("llm_exporter_events_rejected_total",
                                         {"reason": reason}) == 0  # fmt: skip
    assert registry.get_sample_value("llm_exporter_events_duplicate_total") == 0
    assert registry.get_sample_value("llm_exporter_label_overflow_total", {"label": "model"}) == 0
    for provider in cfg.enabled_providers():
        assert (
            registry.get_sample_value("llm_response_quality_score_count", {"provider": provider})
            == 0
        )


async def test_setup_traffic_fills_the_app_hooks_and_reloads_keep_counters(aiohttp_client) -> None:
    from exporter import keys

    app = web.Application()
    app[keys.RELOAD_HOOKS] = []
    registry = CollectorRegistry()
    setup_traffic(app, make_config(), registry, env={})
    assert app[keys.COST_FN]("openai", "gpt-5.4-mini", Usage(input=1_000_000)) == 0.75
    client = await aiohttp_client(app)
    await client.post(EVENTS, json=[call(model="gpt-5.4-mini", input_tokens=1_000_000),
                                    {"type": "session_start", "session_id": "s"}])  # fmt: skip
    assert app[keys.HEALTH_EXTRAS]() == {"active_sessions": 1, "requests_per_minute": 1}
    assert value(registry, "llm_cost_usd_total", provider="openai", model="gpt-5.4-mini") == 0.75
    new = make_config(
        providers={"openai": {"models": ["gpt-5.4-mini", "house-model"]}},
        pricing={"overrides": {"openai": {"gpt-5.4-mini": {"input": 2.0, "output": 8.0}}}},
    )
    [hook] = app[keys.RELOAD_HOOKS]
    await hook(app, new)
    await client.post(EVENTS, json=[call(model="gpt-5.4-mini", input_tokens=1_000_000),
                                    call(model="house-model")])  # fmt: skip
    mini = {"provider": "openai", "model": "gpt-5.4-mini"}
    assert value(registry, "llm_cost_usd_total", **mini) == 2.75  # old counts kept, new price
    assert value(registry, "llm_requests_total", provider="openai", model="house-model",
                 outcome="success") == 1  # fmt: skip
    assert app[keys.COST_FN]("openai", "gpt-5.4-mini", Usage(input=1_000_000)) == 2.0
    assert app[keys.HEALTH_EXTRAS]()["active_sessions"] == 1
