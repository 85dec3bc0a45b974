"""Prices: published figures per provider, precedence, tiers, time windows, caching, no network."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

import exporter.pricing as pricing
from exporter.config import Price
from exporter.defaults import PROVIDER_DEFAULTS
from exporter.pricing import PriceBook, load_shipped
from exporter.providers.base import Usage
from tests._traffic_helpers import EVENTS, call, make_config, traffic_app, value

MON_PEAK = dt.datetime(2026, 11, 23, 2, 30, tzinfo=dt.UTC).timestamp()  # Monday 02:30 UTC
SAT_SAME_HOUR = dt.datetime(2026, 11, 21, 2, 30, tzinfo=dt.UTC).timestamp()  # Saturday
MON_OFF_PEAK = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp()
BEFORE_2027 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
AFTER_PROMO = dt.datetime(2027, 1, 2, tzinfo=dt.UTC).timestamp()

# Published USD per million tokens (input, cached input, output, cache write or None) from
# shared/reference/providers.md, one or more models per provider.
PUBLISHED: list[tuple[str, str, float, float, float, float | None]] = [
    ("openai", "gpt-6-luna", 0.10, 0.01, 0.50, 0.125),
    ("openai", "gpt-5.4-mini", 0.75, 0.075, 4.50, None),
    ("anthropic", "claude-haiku-4-5", 1.00, 0.10, 5.00, 1.25),
    ("anthropic", "claude-opus-5-5", 4.00, 0.20, 20.00, 5.00),
    ("gemini", "gemini-2.5-flash-lite", 0.10, 0.01, 0.40, None),
    ("gemini", "gemini-3.1-flash-lite", 0.25, 0.025, 1.50, None),
    ("mistral", "ministral-3b-latest", 0.10, 0.01, 0.10, None),
    ("mistral", "mistral-large-latest", 0.50, 0.05, 1.50, None),
    ("mistral", "mistral-small-latest", 0.15, 0.015, 0.60, None),
    ("grok", "grok-4.7", 2.00, 0.50, 6.00, None),
    ("grok", "grok-4.3", 1.25, 0.20, 2.50, None),
    ("qwen", "qwen3.8-flash", 0.15, 0.016, 0.47, 0.20),
    ("qwen", "qwen3.8-max", 2.00, 0.25, 6.00, None),
    ("kimi_k2", "kimi-k3", 3.00, 0.30, 15.00, 3.00),
    ("kimi_k2", "kimi-k2.6", 0.95, 0.16, 4.00, None),
]
INPUT, CACHED, WRITE, OUTPUT, REASONING = 12_000, 3_000, 2_000, 1_500, 500


def expected(inp: float, cached: float, out: float, write: float | None) -> float:
    write_tokens = WRITE if write is not None else 0
    return (
        INPUT * inp + CACHED * cached + write_tokens * (write or 0) + (OUTPUT + REASONING) * out
    ) / 1e6


def usage(write: bool) -> dict[str, int]:
    return {
        "input_tokens": INPUT, "cached_input_tokens": CACHED, "output_tokens": OUTPUT,
        "reasoning_tokens": REASONING, "cache_write_tokens": WRITE if write else 0,
    }  # fmt: skip


async def test_cost_total_equals_tokens_times_published_price(aiohttp_client) -> None:
    app, reg, _ = traffic_app(make_config())
    client = await aiohttp_client(app)
    batch = [call(p, m, timestamp=BEFORE_2027, **usage(w is not None)) for p, m, *_, w in PUBLISHED]
    batch += [  # DeepSeek: peak on weekday mornings only, half price otherwise
        call("deepseek", "deepseek-flash", timestamp=MON_PEAK, **usage(False)),
        call("deepseek", "deepseek-flash", timestamp=SAT_SAME_HOUR, **usage(False)),
        call("deepseek", "deepseek-v4-pro", timestamp=MON_OFF_PEAK, **usage(False)),
        call("gemini", "gemini-3.8-flash", timestamp=BEFORE_2027, **usage(False)),
        call("gemini", "gemini-3.8-flash", timestamp=AFTER_PROMO, **usage(False)),
    ]
    r = await client.post(EVENTS, json=batch)
    assert (await r.json())["accepted"] == len(batch)
    for provider, model, inp, cached, out, write in PUBLISHED:
        got = value(reg, "llm_cost_usd_total", provider=provider, model=model)
        assert got == pytest.approx(expected(inp, cached, out, write), rel=1e-9), model
    ds_flash = expected(0.30, 0.006, 1.20, None) + expected(0.15, 0.003, 0.60, None)
    assert value(reg, "llm_cost_usd_total", provider="deepseek", model="deepseek-flash") == (
        pytest.approx(ds_flash, rel=1e-9)
    )
    assert value(reg, "llm_cost_usd_total", provider="deepseek", model="deepseek-v4-pro") == (
        pytest.approx(expected(0.66, 0.022, 1.98, None), rel=1e-9)
    )
    promo = expected(0.75, 0.075, 3.75, None) + expected(1.50, 0.15, 7.50, None)
    assert value(reg, "llm_cost_usd_total", provider="gemini", model="gemini-3.8-flash") == (
        pytest.approx(promo, rel=1e-9)
    )
    assert value(reg, "llm_unpriced_requests_total", provider="qwen", model="qwen3.8-flash") == 0


def test_every_default_model_is_priced_without_network(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("pricing tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    book = PriceBook(make_config())
    book.warm()
    for provider, d in PROVIDER_DEFAULTS.items():
        for model in d["models"]:
            assert book.cost(provider, model, Usage(input=1000, output=100)) is not None, model


def test_precedence_config_then_shipped_then_genai() -> None:
    cfg = make_config(
        pricing={"overrides": {"openai": {"gpt-6-luna": {"input": 1.0, "output": 3.0}}}}
    )
    book = PriceBook(cfg)
    assert book.plan("openai", "gpt-6-luna").source == "config"
    assert book.plan("mistral", "mistral-large-latest").source == "shipped"  # genai: stale $2/$6
    assert book.plan("openai", "gpt-6-sol").source.startswith("genai-prices")
    u = Usage(input=1_000_000, cached_input=1_000_000, output=1_000_000, reasoning=1_000_000)
    # no cached/reasoning price in the override: cached bills as input, reasoning as output
    assert book.cost("openai", "gpt-6-luna", u) == pytest.approx(1.0 + 1.0 + 3.0 + 3.0)


@pytest.mark.parametrize(
    ("provider", "model", "inp", "below", "above"),
    [
        ("qwen", "qwen-flash", 256_000, (0.05, 0.40), (0.25, 2.00)),  # shipped tiers
        ("openai", "gpt-6-luna", 272_000, (0.10, 0.50), (0.20, 0.75)),  # genai tiers
        ("anthropic", "claude-haiku-5-5", 100_000, (0.10, 0.50), (0.50, 2.50)),
    ],
)
def test_tiers_bill_the_whole_call_by_total_input(provider, model, inp, below, above) -> None:
    book = PriceBook(make_config())
    at = book.cost(provider, model, Usage(input=inp, output=1_000_000))
    over = book.cost(provider, model, Usage(input=inp + 1, output=1_000_000))
    assert at == pytest.approx((inp * below[0] + 1e6 * below[1]) / 1e6)
    assert over == pytest.approx(((inp + 1) * above[0] + 1e6 * above[1]) / 1e6)


def test_prices_are_looked_up_once_per_model_unknown_ones_too(monkeypatch) -> None:
    calls: list[tuple[str, str]] = []
    real = pricing.genai_plan

    def counting(provider: str, model: str):
        calls.append((provider, model))
        return real(provider, model)

    monkeypatch.setattr(pricing, "genai_plan", counting)
    book = PriceBook(make_config())
    for _ in range(3):
        assert book.cost("openai", "no-such-model", Usage(input=5)) is None
        assert book.cost("openai", "gpt-6-sol", Usage(input=5)) is not None
    assert calls == [("openai", "no-such-model"), ("openai", "gpt-6-sol")]


def test_the_shipped_file_is_dated_and_names_known_providers() -> None:
    shipped = load_shipped()
    assert shipped.last_reviewed >= dt.date(2026, 11, 1)
    assert set(shipped.providers) <= set(PROVIDER_DEFAULTS)
    assert shipped.providers["qwen"]["qwen3.8-flash"].cache_write == 0.20


def test_price_model_from_config_is_per_million() -> None:
    plan = pricing.plan_from_price(Price(input=2.0, output=8.0, cached_input=0.5), "config")
    assert plan.cost(1_000_000, 0, 1_000_000, 0, 0, 0.0) == pytest.approx(2.5)
