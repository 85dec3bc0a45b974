"""USD cost of a call from its tokens: config overrides, then the shipped file, then genai-prices.

A price lookup in genai-prices takes hundreds of microseconds, so each (provider, model) is resolved
once into a `PricePlan` of plain per-token floats (tiers and time windows included) and cached,
unknown prices too. Only genai-prices' bundled data is read; its network updater is never started.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from exporter.config import Config, Price
from exporter.providers.base import Usage

# Our provider ids -> genai-prices provider ids (None: genai-prices has no data for it).
GENAI_PROVIDERS: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
    "grok": "x-ai",
    "qwen": None,
    "deepseek": "deepseek",
    "kimi_k2": "moonshotai",
}
MAX_CACHED = 4096
_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token of each token type (token counts are disjoint)."""

    input: float
    output: float
    cached_input: float
    cache_write: float
    reasoning: float

    @classmethod
    def per_million(cls, inp: Any, out: Any, cached: Any, write: Any, reasoning: Any) -> Rates:
        inp, out = float(inp or 0), float(out or 0)
        return cls(
            inp / 1e6,
            out / 1e6,
            (inp if cached is None else float(cached)) / 1e6,
            (inp if write is None else float(write)) / 1e6,
            (out if reasoning is None else float(reasoning)) / 1e6,
        )


@dataclass(frozen=True, slots=True)
class Variant:
    """Rates (with tiers by total input tokens) that apply from `since` or inside time windows."""

    base: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()  # ascending; applies when total input > threshold
    since: float | None = None  # Unix seconds
    windows: tuple[tuple[float, float], ...] = ()  # seconds after UTC midnight, [start, end)
    weekdays: frozenset[int] | None = None  # 0 = Monday, UTC

    def active(self, t: float) -> bool:
        if self.since is not None and t < self.since:
            return False
        if self.weekdays is not None and (int(t // _DAY) + 3) % 7 not in self.weekdays:
            return False
        if not self.windows:
            return True
        tod = t % _DAY
        return any(s <= tod < e if s <= e else (tod >= s or tod < e) for s, e in self.windows)


@dataclass(frozen=True, slots=True)
class PricePlan:
    """All prices of one model; the last active variant wins, the first is the fallback."""

    variants: tuple[Variant, ...]
    source: str

    def cost(self, inp: int, out: int, cached: int, write: int, reasoning: int, at: float) -> float:
        variant = self.variants[0]
        if len(self.variants) > 1:
            variant = next((v for v in reversed(self.variants) if v.active(at)), variant)
        rates = variant.base
        if variant.tiers:
            total = inp + cached + write
            for threshold, tier in reversed(variant.tiers):
                if total > threshold:
                    rates = tier
                    break
        return (
            inp * rates.input + out * rates.output + cached * rates.cached_input
            + write * rates.cache_write + reasoning * rates.reasoning
        )  # fmt: skip


class _Tier(Price):
    above_input_tokens: int = Field(ge=0)


class _Peak(Price):
    weekdays: list[int] = Field(default=[0, 1, 2, 3, 4, 5, 6], min_length=1)
    utc_hours: list[tuple[float, float]] = Field(min_length=1)


class ShippedPrice(Price):
    tiers: list[_Tier] = []
    peak: _Peak | None = None


class ShippedPrices(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    last_reviewed: dt.date
    providers: dict[str, dict[str, ShippedPrice]]


def load_shipped() -> ShippedPrices:
    """The override file shipped in exporter/data/prices.yml."""
    text = resources.files("exporter").joinpath("data/prices.yml").read_text(encoding="utf-8")
    return ShippedPrices.model_validate(yaml.safe_load(text))


def _rates(p: Price) -> Rates:
    return Rates.per_million(p.input, p.output, p.cached_input, p.cache_write, p.reasoning)


def plan_from_price(p: Price, source: str) -> PricePlan:
    """A plan from a config or shipped price (with the shipped file's tiers and peak windows)."""
    tiers = tuple(sorted((t.above_input_tokens, _rates(t)) for t in getattr(p, "tiers", ())))
    variants = [Variant(_rates(p), tiers)]
    peak = getattr(p, "peak", None)
    if peak is not None:
        windows = tuple((a * 3600.0, b * 3600.0) for a, b in peak.utc_hours)
        variants.append(Variant(_rates(peak), windows=windows, weekdays=frozenset(peak.weekdays)))
    return PricePlan(tuple(variants), source)


_GENAI_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok",
               "output_reasoning_mtok")  # fmt: skip


def _genai_variant(prices: Any, constraint: Any) -> Variant | None:
    from genai_prices import types as gt

    values = [getattr(prices, key, None) for key in _GENAI_KEYS]
    if values[3] is None:
        values[3] = getattr(prices, "cache_write_5m_mtok", None)
    if values[0] is None and values[1] is None:
        return None

    def at(value: Any, threshold: int) -> Any:  # the price of one key once total input > threshold
        if not isinstance(value, gt.TieredPrices):
            return value
        return next((t.price for t in reversed(value.tiers) if threshold >= t.start), value.base)

    starts = sorted({t.start for v in values if isinstance(v, gt.TieredPrices) for t in v.tiers})
    base = Rates.per_million(*(at(v, -1) for v in values))
    tiers = tuple((s, Rates.per_million(*(at(v, s) for v in values))) for s in starts)
    if constraint is None:
        return Variant(base, tiers)
    if isinstance(constraint, gt.StartDateConstraint):
        since = dt.datetime.combine(constraint.start_date, dt.time(), dt.UTC).timestamp()
        return Variant(base, tiers, since=since)
    if isinstance(constraint, gt.TimeOfDateConstraint):
        day = dt.date(1970, 1, 1)
        s, e = (
            dt.datetime.combine(day, t).replace(tzinfo=t.tzinfo or dt.UTC).timestamp() % _DAY
            for t in (constraint.start_time, constraint.end_time)
        )
        return Variant(base, tiers, windows=((s, e),))
    return None  # a constraint kind we do not know: never assume it applies


def genai_plan(provider: str, model: str) -> PricePlan | None:
    """Resolve a model in genai-prices' bundled snapshot (no network)."""
    from genai_prices import data_snapshot
    from genai_prices import types as gt
    from genai_prices.data_snapshot import find_provider_by_id

    gid = GENAI_PROVIDERS.get(provider, provider)
    if gid is None:
        return None
    snapshot = data_snapshot.get_snapshot()
    gprovider = find_provider_by_id(snapshot.providers, gid)
    info = gprovider.find_model(model, all_providers=snapshot.providers) if gprovider else None
    if info is None:
        return None
    if isinstance(info.prices, gt.ModelPrice):
        found = [_genai_variant(info.prices, None)]
    else:
        found = [_genai_variant(c.prices, c.constraint) for c in info.prices]
    variants = tuple(v for v in found if v is not None)
    return PricePlan(variants, f"genai-prices:{info.id}") if variants else None


class PriceBook:
    """Prices per (provider, model), resolved once and cached (unknown prices too)."""

    def __init__(self, config: Config, *, shipped: ShippedPrices | None = None) -> None:
        self._shipped = load_shipped() if shipped is None else shipped
        self.last_reviewed = self._shipped.last_reviewed.isoformat()
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Take a new config's overrides; every price is looked up afresh."""
        self._config = config
        self._cache: dict[tuple[str, str], PricePlan | None] = {}

    def plan(self, provider: str, model: str) -> PricePlan | None:
        """The cached plan for a model, or None when no source knows its price."""
        key = (provider, model)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._resolve(provider, model)
        if len(self._cache) < MAX_CACHED:
            self._cache[key] = found
        return found

    def _resolve(self, provider: str, model: str) -> PricePlan | None:
        override = self._config.pricing.overrides.get(provider, {}).get(model)
        if override is not None:
            return plan_from_price(override, "config")
        shipped = self._shipped.providers.get(provider, {}).get(model)
        if shipped is not None:
            return plan_from_price(shipped, "shipped")
        try:
            return genai_plan(provider, model)
        except Exception:  # a data problem in the library must not break ingestion
            return None

    def cost(
        self, provider: str, model: str, usage: Usage, *, at: float | None = None
    ) -> float | None:
        """USD for a call, None when the price is unknown (never a silent 0)."""
        plan = self.plan(provider, model)
        if plan is None:
            return None
        when = time.time() if at is None else at
        return plan.cost(
            usage.input, usage.output, usage.cached_input, usage.cache_write, usage.reasoning, when
        )

    def warm(self) -> None:
        """Resolve every allow-listed and probe model of the enabled providers now."""
        for pid, pc in self._config.enabled_providers().items():
            for model in dict.fromkeys([*pc.models, pc.probe_model]):
                self.plan(pid, model)
