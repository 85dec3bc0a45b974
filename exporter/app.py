"""The exporter's aiohttp application: routes, collectors and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter import __version__, keys
from exporter.auth import setup_metrics_auth
from exporter.collector import ExporterCollector, ProbeCollector
from exporter.config import Config
from exporter.exposition import metrics_handler
from exporter.health import health_document
from exporter.host import HostSampler
from exporter.persist import session_state_ctx
from exporter.probestate import CheckState, ProbeStore, ProviderState
from exporter.providers import PROBERS, make_ssl_context, make_trace_config
from exporter.providers.base import ProbeFn, ProbeTarget
from exporter.redact import SecretRegistry
from exporter.reload import reload_handler, sighup_ctx
from exporter.report import run_report_schedule
from exporter.scheduler import ProbeScheduler
from exporter.traffic_setup import setup_traffic
from exporter.webapi.setup import setup_webapi


def build_probe_store(config: Config, env: Mapping[str, str]) -> ProbeStore:
    """One ProviderState per enabled provider; checks only where the API key is set."""
    store = ProbeStore()
    for pid, pc in config.enabled_providers().items():
        key_set = bool(env.get(pc.api_key_env, "").strip())
        state = ProviderState(
            provider=pid,
            api=str(pc.api),
            host=urlsplit(pc.base_url).hostname or "",
            probe_model=pc.probe_model,
            key_configured=key_set,
            allowed_models=tuple(pc.models),
        )
        if key_set and config.monitoring_enabled:
            state.checks = {c: CheckState(interval=pc.interval_for(c)) for c in pc.checks}
        store.add_provider(state)
    return store


def probe_targets(config: Config, env: Mapping[str, str]) -> dict[str, ProbeTarget]:
    return {
        pid: ProbeTarget(
            provider=pid,
            api=str(pc.api),
            base_url=pc.base_url,
            probe_model=pc.probe_model,
            timeout=pc.timeout,
            api_key=env[pc.api_key_env].strip(),
        )
        for pid, pc in config.enabled_providers().items()
        if env.get(pc.api_key_env, "").strip()
    }


def secret_values(config: Config, env: Mapping[str, str]) -> list[str]:
    """Every secret the process may hold: provider keys, the ingest token, the /metrics secret."""
    names = [pc.api_key_env for pc in config.providers.values()]
    if config.ingest.token_env:
        names.append(config.ingest.token_env)
    if config.metrics_auth is not None:
        names.append(config.metrics_auth.secret_env)
    return [env[n].strip() for n in names if env.get(n, "").strip()]


def _new_scheduler(app: web.Application, config: Config) -> ProbeScheduler:
    env = app[keys.ENV]
    targets = probe_targets(config, env) if config.monitoring_enabled else {}
    checks = {
        pid: {c: config.providers[pid].interval_for(c) for c in config.providers[pid].checks}
        for pid in targets
    }
    return ProbeScheduler(
        app[keys.PROBES],
        app[keys.LIVE].session,
        targets,
        checks,
        app[keys.PROBERS],
        cost=app[keys.COST_FN],
        failed_interval={pid: config.providers[pid].interval for pid in targets},
    )


async def _probing(app: web.Application) -> AsyncIterator[None]:
    ssl_context = await asyncio.to_thread(make_ssl_context)  # reads the CA bundle from disk
    async with aiohttp.ClientSession(
        trace_configs=[make_trace_config()],
        connector=aiohttp.TCPConnector(ssl=ssl_context, limit=64, ttl_dns_cache=60),
        headers={"User-Agent": f"llm-exporter/{__version__}"},
    ) as session:
        live = app[keys.LIVE]
        live.session = session
        live.scheduler = _new_scheduler(app, live.config)
        live.scheduler.start()
        yield
        await live.scheduler.stop()


async def _reload_probes(app: web.Application, config: Config) -> None:
    """Swap in the new providers: unchanged ones keep their counters, changed ones start over."""
    live = app[keys.LIVE]
    if live.scheduler is not None:
        await live.scheduler.stop()
    old = app[keys.PROBES].providers
    fresh = build_probe_store(config, app[keys.ENV]).providers
    old_config = live.config.providers
    for pid in fresh:
        if pid in old and old_config.get(pid) == config.providers[pid]:
            fresh[pid] = old[pid]
    old.clear()
    old.update(fresh)
    live.scheduler = _new_scheduler(app, config)
    live.scheduler.start()


async def _report_schedule(app: web.Application) -> AsyncIterator[None]:
    """The optional daily report; returns at once when no destination is configured."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_report_schedule(app[keys.LIVE].config, stop, env=app[keys.ENV]))
    yield
    stop.set()
    await task


async def _host_sampling(app: web.Application) -> AsyncIterator[None]:
    async for _ in app[keys.HOST].context():
        yield


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy.\n")


async def ready(request: web.Request) -> web.Response:
    if not request.app[keys.READY].get("ready"):
        return web.Response(status=503, text="Starting.\n")
    return web.Response(text="Ready.\n")


async def api_health(request: web.Request) -> web.Response:
    app = request.app
    doc = health_document(
        app[keys.PROBES],
        version=__version__,
        started=app[keys.STARTED],
        host=app[keys.HOST].latest,
        **app[keys.HEALTH_EXTRAS](),
    )
    return web.json_response(doc)


def create_app(
    config: Config,
    *,
    registry: CollectorRegistry | None = None,
    env: Mapping[str, str] | None = None,
    probers: Mapping[str, ProbeFn] | None = None,
    secrets: SecretRegistry | None = None,
    config_path: str | None = None,
) -> web.Application:
    """Build the exporter app. Nothing starts until the app runs (see `cleanup_ctx`)."""
    env = dict(os.environ if env is None else env)
    registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
    app = web.Application(client_max_size=config.ingest.max_body_bytes)
    app[keys.LIVE] = keys.Live(config)
    app[keys.ENV] = env
    app[keys.REGISTRY] = registry
    app[keys.STARTED] = time.time()
    app[keys.READY] = {"ready": False}
    app[keys.PROBES] = build_probe_store(config, env)
    app[keys.HOST] = HostSampler()
    app[keys.PROBERS] = dict(probers or PROBERS)
    app[keys.COST_FN] = None
    app[keys.HEALTH_EXTRAS] = dict
    app[keys.RELOAD_OK] = {"ok": True}
    app[keys.CONFIG_PATH] = config_path
    app[keys.RELOAD_LOCK] = asyncio.Lock()
    app[keys.RELOAD_HOOKS] = [_reload_probes]
    app[keys.SECRETS] = secrets if secrets is not None else SecretRegistry()
    app[keys.SECRETS].add(*secret_values(config, env))

    registry.register(ProbeCollector(app[keys.PROBES]))
    registry.register(
        ExporterCollector(
            __version__,
            thresholds=lambda: app[keys.LIVE].config.thresholds.model_dump(),
            reload_ok=lambda: app[keys.RELOAD_OK]["ok"],
            host=app[keys.HOST],
        )
    )
    with contextlib.suppress(ValueError):  # already registered by the caller
        ProcessCollector(registry=registry)
    with contextlib.suppress(ValueError):
        PlatformCollector(registry=registry)

    # events API, traffic/session collectors; also sets COST_FN, HEALTH_EXTRAS, a reload hook
    setup_traffic(app, config, registry, env=env)
    app.cleanup_ctx.append(session_state_ctx(config.state_file))

    app.router.add_get("/metrics", metrics_handler(registry))
    setup_metrics_auth(app, config, env)  # guards /metrics only; /-/healthy, /-/ready stay open
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_get("/api/health", api_health)
    app.router.add_post("/-/reload", reload_handler)
    app.cleanup_ctx.append(_host_sampling)
    app.cleanup_ctx.append(_probing)
    app.cleanup_ctx.append(sighup_ctx)
    app.cleanup_ctx.append(_report_schedule)
    setup_webapi(app, config)  # `/` status page, /api/metrics, /ws/metrics
    app.on_startup.append(_mark_ready)
    return app


async def _mark_ready(app: web.Application) -> None:
    # What exists after start-up lives as long as the process: keep it out of the collector's
    # full passes, which otherwise hold the event loop ~40 ms during a scrape (docs/performance.md)
    gc.collect()
    gc.freeze()
    app[keys.READY]["ready"] = True
