"""Helpers for the traffic, ingest, session and client tests: an app with only the traffic side."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import Config, build_config
from exporter.traffic_setup import TrafficParts, build_traffic, mount_traffic

EVENTS = "/api/v1/events"


def make_config(**raw: Any) -> Config:
    """Built-in defaults with `raw` merged over them, no environment."""
    return build_config(raw, env={})


def traffic_app(
    config: Config, *, env: Mapping[str, str] | None = None, parts: TrafficParts | None = None
) -> tuple[web.Application, CollectorRegistry, TrafficParts]:
    """A bare application with only the traffic side mounted, on its own registry."""
    app = web.Application()
    registry = CollectorRegistry()
    parts = parts or build_traffic(config, env=env or {})
    mount_traffic(app, parts, registry)
    return app, registry, parts


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A sample's value; 0.0 when the series does not exist (so a missing series fails `== n`)."""
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def series(registry: CollectorRegistry, prefix: str = "llm_") -> dict[tuple[str, tuple], float]:
    """Every sample whose name starts with `prefix`, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in registry.collect()
        for s in fam.samples
        if s.name.startswith(prefix)
    }


def call(provider: str = "openai", model: str = "gpt-6-luna", **fields: Any) -> dict[str, Any]:
    """An llm_call event."""
    return {"type": "llm_call", "provider": provider, "model": model, **fields}


async def until(predicate: Callable[[], bool], within: float = 5.0, step: float = 0.02) -> None:
    """Wait for a condition some background task brings about; TimeoutError after `within` s."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(step)
