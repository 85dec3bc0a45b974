"""Helpers shared by the JSON documents: the label scope, rounding and result folding."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.config import Config
from exporter.webapi.promql import Sample, finite

OTHER = "other"


@dataclass(frozen=True)
class Scope:
    """The label values a document may contain: provider ids and their allow-listed models."""

    providers: Mapping[str, frozenset[str]]

    @classmethod
    def from_config(cls, config: Config) -> Scope:
        return cls({p: frozenset(c.models) for p, c in config.enabled_providers().items()})

    def selector(self) -> str:
        """A PromQL label matcher for the configured providers (ids are `[a-z][a-z0-9_]*`)."""
        return '{provider=~"' + "|".join(sorted(self.providers)) + '"}'

    def model(self, provider: str, model: str) -> str:
        return model if model in self.providers.get(provider, ()) else OTHER


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def rnd(value: float | None, digits: int = 6) -> float | None:
    value = finite(value)
    return None if value is None else round(value, digits)


def ratio(num: float, den: float) -> float | None:
    return rnd(num / den) if den > 0 else None


def by_provider(samples: list[Sample], scope: Scope) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in samples:
        if labels.get("provider") in scope.providers:
            out[labels["provider"]] = out.get(labels["provider"], 0.0) + value
    return out


def scalar(samples: list[Sample]) -> float | None:
    return finite(samples[0][1]) if samples else None
