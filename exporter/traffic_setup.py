"""Plugs the events API, traffic and session state, prices and their collectors into an app."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.ingest import Ingestor
from exporter.pricing import PriceBook
from exporter.sessions import SessionCollector, SessionStore
from exporter.traffic import TrafficCollector, TrafficState

TRAFFIC = web.AppKey("traffic", TrafficState)
SESSIONS = web.AppKey("sessions", SessionStore)
PRICES = web.AppKey("prices", PriceBook)
INGESTOR = web.AppKey("ingestor", Ingestor)
MAX_EXPIRY_PERIOD = 30.0


@dataclass
class TrafficParts:
    """The traffic side's state; several apps in turn may share one (tests restart servers)."""

    prices: PriceBook
    traffic: TrafficState
    sessions: SessionStore
    ingestor: Ingestor

    async def reconfigure(self, app: web.Application, config: Config) -> None:
        """Config reload hook: new limits, allow-lists and prices; counters and sessions stay."""
        self.prices.reconfigure(config)
        await asyncio.to_thread(self.prices.warm)
        self.traffic.reconfigure(config, self.prices)
        self.sessions.reconfigure(config.sessions)
        self.ingestor.reconfigure(config.ingest)

    def health_extras(self) -> dict[str, Any]:
        """`active_sessions` and `requests_per_minute` for /api/health's system_metrics."""
        return {
            "active_sessions": len(self.sessions.active),
            "requests_per_minute": self.ingestor.calls_last_minute(),
        }


def build_traffic(
    config: Config,
    *,
    env: Mapping[str, str],
    prices: PriceBook | None = None,
    clock: Callable[[], float] = time.time,
) -> TrafficParts:
    """Build the state; prices of every allow-listed model are resolved here, not per event."""
    if prices is None:
        prices = PriceBook(config)
        prices.warm()
    traffic = TrafficState(config, prices)
    sessions = SessionStore(config.sessions, clock=clock)
    token_env = config.ingest.token_env
    token = (env.get(token_env) or "").strip() if token_env else ""
    ingestor = Ingestor(config.ingest, traffic, sessions, token=token or None, clock=clock)
    return TrafficParts(prices, traffic, sessions, ingestor)


def mount_traffic(app: web.Application, parts: TrafficParts, registry: CollectorRegistry) -> None:
    """Routes, app keys, collectors on `registry`, and the session-expiry background task."""
    app[TRAFFIC], app[SESSIONS], app[PRICES] = parts.traffic, parts.sessions, parts.prices
    app[INGESTOR] = parts.ingestor
    app.router.add_post("/api/v1/events", parts.ingestor.post_events)
    app.router.add_get("/api/sessions/{id}/metrics", parts.ingestor.get_session)
    registry.register(TrafficCollector(parts.traffic))
    registry.register(SessionCollector(parts.sessions))
    app.cleanup_ctx.append(partial(_expiry, parts.sessions))


def setup_traffic(
    app: web.Application, config: Config, registry: CollectorRegistry, *, env: Mapping[str, str]
) -> None:
    """The one entry point `create_app` calls; the ingest token comes from `env`.

    Also fills the app's probe-cost, /api/health and config-reload hooks (exporter.keys).
    """
    from exporter import keys

    parts = build_traffic(config, env=env)
    mount_traffic(app, parts, registry)
    app[keys.COST_FN] = parts.prices.cost
    app[keys.HEALTH_EXTRAS] = parts.health_extras
    if keys.RELOAD_HOOKS in app:
        app[keys.RELOAD_HOOKS].append(parts.reconfigure)


async def _expiry(sessions: SessionStore, app: web.Application) -> AsyncIterator[None]:
    period = max(0.05, min(sessions.ttl / 4, MAX_EXPIRY_PERIOD))

    async def loop() -> None:
        while True:
            await asyncio.sleep(period)
            sessions.expire()

    task = asyncio.create_task(loop(), name="session-expiry")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
