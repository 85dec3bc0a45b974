"""Traffic state from `llm_call` events, and the collector for traffic and ingest families.

Labels stay bounded: `provider` is an enabled provider (others are rejected before they get here),
`model` is allow-listed or `other`, and at most `ingest.max_series` (provider, model) pairs exist
(plus one `other` pair per provider). Each pair resolves its price once, when it is created.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric

from exporter.config import Config
from exporter.events import EVENT_TYPES, LlmCall
from exporter.exposition import counter, histogram
from exporter.histogram import LATENCY_BUCKETS, QUALITY_BUCKETS, TTFT_BUCKETS, Histogram
from exporter.pricing import PriceBook, PricePlan
from exporter.vocab import TokenType

OTHER = "other"
TOKEN_TYPES: tuple[str, ...] = tuple(t.value for t in TokenType)  # the order of _Pair.tokens
# Why events were refused. Per event: invalid (schema), unknown_provider. Whole requests (counted
# once per request, since their events cannot be counted): malformed, too_large, unauthorized,
# busy (over ingest.max_concurrent_requests; answered 503, safe to retry).
REJECT_REASONS: tuple[str, ...] = (
    "invalid", "unknown_provider", "malformed", "too_large", "unauthorized", "busy",
)  # fmt: skip
OVERFLOW_LABELS: tuple[str, ...] = ("model",)


class _Pair:
    """Everything recorded for one (provider, model) label pair."""

    __slots__ = ("cost", "duration", "outcomes", "plan", "tokens", "ttft", "unpriced")

    def __init__(self, plan: PricePlan | None) -> None:
        self.plan = plan
        self.outcomes: dict[str, int] = {}
        self.duration = Histogram(LATENCY_BUCKETS)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.tokens = [0, 0, 0, 0, 0]
        self.cost = 0.0
        self.unpriced = 0


class TrafficState:
    """Counters and histograms of the orchestrator's calls, plus the ingest bookkeeping."""

    def __init__(self, config: Config, prices: PriceBook) -> None:
        self.pairs: dict[tuple[str, str], _Pair] = {}
        self.quality: dict[str, Histogram] = {}
        self.events: dict[str, int] = dict.fromkeys(EVENT_TYPES, 0)
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)
        self.overflow: dict[str, int] = dict.fromkeys(OVERFLOW_LABELS, 0)
        self.duplicates = 0
        self.reconfigure(config, prices)

    def reconfigure(self, config: Config, prices: PriceBook) -> None:
        """New allow-lists, ceiling and prices; counters so far are kept."""
        enabled = config.enabled_providers()
        self.allowed = {p: frozenset(c.models) for p, c in enabled.items()}
        self.max_series = config.ingest.max_series
        self._prices = prices
        for p in enabled:
            self.quality.setdefault(p, Histogram(QUALITY_BUCKETS))
        for (provider, model), pair in list(self.pairs.items()):
            pair.plan = None if model == OTHER else prices.plan(provider, model)

    def pair(self, provider: str, model: str) -> _Pair:
        """The state for a label pair; off-list models and pairs past the ceiling become `other`."""
        pair = self.pairs.get((provider, model))
        if pair is not None:
            return pair
        if model not in self.allowed[provider] or len(self.pairs) >= self.max_series:
            self.overflow["model"] += 1
            model = OTHER
            pair = self.pairs.get((provider, OTHER))
            if pair is not None:
                return pair
        # `other` is priced only from what events carry: its calls are for unknown models.
        plan = None if model == OTHER else self._prices.plan(provider, model)
        pair = self.pairs[(provider, model)] = _Pair(plan)
        return pair

    def record_call(self, ev: LlmCall, now: float) -> float | None:
        """Count one valid call; returns its cost in USD when known."""
        pair = self.pair(ev.provider, ev.model)
        outcome = ev.outcome
        pair.outcomes[outcome] = pair.outcomes.get(outcome, 0) + 1
        if outcome == "success":
            if ev.duration_seconds is not None:
                pair.duration.observe(ev.duration_seconds)
            if ev.time_to_first_token_seconds is not None:
                pair.ttft.observe(ev.time_to_first_token_seconds)
        inp, out = ev.input_tokens, ev.output_tokens
        cached, write, reasoning = (
            ev.cached_input_tokens,
            ev.cache_write_tokens,
            ev.reasoning_tokens,
        )
        tokens = pair.tokens
        tokens[0] += inp
        tokens[1] += out
        tokens[2] += cached
        tokens[3] += write
        tokens[4] += reasoning
        cost = ev.cost_usd
        if cost is None and pair.plan is not None:
            at = now if ev.timestamp is None else ev.timestamp
            cost = pair.plan.cost(inp, out, cached, write, reasoning, at)
        if cost is not None:
            pair.cost += cost
        elif inp or out or cached or write or reasoning:
            pair.unpriced += 1  # tokens were spent at an unknown price: never a silent $0
        if ev.quality_score is not None:
            self.quality[ev.provider].observe(ev.quality_score)
        return cost


class TrafficCollector:
    """`llm_requests_*`, `llm_tokens_total`, cost, quality and `llm_exporter_*` ingest families."""

    def __init__(self, state: TrafficState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        st = self._state
        pm = ("provider", "model")
        requests = counter(
            "llm_requests", "Calls reported by the orchestrator, by outcome.", (*pm, "outcome")
        )
        duration = histogram("llm_request_duration_seconds", "Duration of successful calls.", pm)
        ttft = histogram(
            "llm_time_to_first_token_seconds", "Time to first token of streamed successful calls.",
            pm,
        )  # fmt: skip
        tokens = counter(
            "llm_tokens", "Tokens of reported calls; token types are disjoint.", (*pm, "token_type")
        )
        cost = counter(
            "llm_cost_usd", "USD of reported calls: the event's cost_usd, else tokens x price.",
            pm,
        )  # fmt: skip
        unpriced = counter(
            "llm_unpriced_requests", "Calls that spent tokens at an unknown price.", pm
        )
        # Rows are built directly, in bulk: this loop makes most of a 10 000-series scrape.
        pairs = list(st.pairs.items())
        for (provider, model), pair in pairs:
            requests.rows += [((provider, model, o), n) for o, n in list(pair.outcomes.items())]
            tokens.rows += [
                ((provider, model, t), n) for t, n in zip(TOKEN_TYPES, pair.tokens, strict=True)
            ]
        duration.rows = [(labels, p.duration) for labels, p in pairs if p.duration.count]
        ttft.rows = [(labels, p.ttft) for labels, p in pairs if p.ttft.count]
        cost.rows = [(labels, p.cost) for labels, p in pairs]
        unpriced.rows = [(labels, p.unpriced) for labels, p in pairs]
        quality = histogram(
            "llm_response_quality_score", "Quality scores (0..1) the orchestrator reported.",
            labels=("provider",),
        )  # fmt: skip
        for provider, h in list(st.quality.items()):
            quality.add_metric((provider,), h)
        yield from (requests, duration, ttft, tokens, cost, unpriced, quality)
        yield from self._ingest()

    def _ingest(self) -> Iterator[Metric]:
        st = self._state
        yield _by_label("llm_exporter_events", "Events accepted, by type (duplicates excluded).",
                        "type", st.events)  # fmt: skip
        yield _by_label(
            "llm_exporter_events_rejected",
            "Refused events by reason; whole-request refusals (malformed, too_large, unauthorized) "
            "count once per request.",
            "reason",
            st.rejected,
        )
        yield counter(
            "llm_exporter_events_duplicate",
            "Events whose id was already seen within the dedup window (counted once).",
            value=st.duplicates,
        )
        yield _by_label(
            "llm_exporter_label_overflow",
            "Events whose label value was replaced by `other` (off the allow-list or over the "
            "series ceiling).",
            "label",
            st.overflow,
        )


def _by_label(name: str, documentation: str, label: str, counts: dict[str, int]) -> Metric:
    """A counter family with one series per key of `counts`."""
    family = counter(name, documentation, labels=(label,))
    for value, n in counts.items():
        family.add_metric((value,), n)
    return family
