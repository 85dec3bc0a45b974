"""`web.AppKey`s for the exporter's application state, kept apart to avoid import cycles."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.config import Config
from exporter.host import HostSampler
from exporter.probestate import ProbeStore
from exporter.redact import SecretRegistry
from exporter.scheduler import ProbeScheduler


@dataclass
class Live:
    """What a reload replaces while the app runs (aiohttp freezes the app's own mapping)."""

    config: Config
    scheduler: ProbeScheduler | None = None
    session: aiohttp.ClientSession | None = None


LIVE = web.AppKey("live", Live)
ENV = web.AppKey("env", Mapping)
REGISTRY = web.AppKey("registry", CollectorRegistry)
PROBES = web.AppKey("probes", ProbeStore)
HOST = web.AppKey("host", HostSampler)
STARTED = web.AppKey("started", float)
READY = web.AppKey("ready", dict)
PROBERS = web.AppKey("probers", Mapping)
COST_FN = web.AppKey("cost_fn", object)  # (provider, model, Usage) -> float | None, or None
HEALTH_EXTRAS = web.AppKey("health_extras", object)  # () -> {active_sessions, requests_per_minute}
RELOAD_OK = web.AppKey("reload_ok", dict)
SECRETS = web.AppKey("secrets", SecretRegistry)
CONFIG_PATH = web.AppKey("config_path", object)  # str | None: where reloads read from
RELOAD_LOCK = web.AppKey("reload_lock", asyncio.Lock)
RELOAD_HOOKS = web.AppKey("reload_hooks", list)  # [async (app, new_config) -> None]
