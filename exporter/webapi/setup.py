"""Integration point: `setup_webapi(app, config)` adds the JSON API, the feed and the page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from exporter import __version__, keys
from exporter.config import Config
from exporter.webapi import handlers
from exporter.webapi.live import live_document
from exporter.webapi.promql import SourceError
from exporter.webapi.state import WEBAPI, WebApi, unavailable_body
from exporter.webapi.summary import build_summary
from exporter.webapi.values import iso
from exporter.webapi.ws import MAX_CLIENTS, QUEUE_SIZE, Feed, ws_metrics

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def build_payload(api: WebApi) -> str:
    """One feed message: the 24h summary plus the live document, or an error message."""
    at = time.time()
    try:
        prom, scope = api.prom(), api.scope()
        summary, live = await asyncio.gather(
            build_summary(prom, scope, at=at), live_document(prom, api.am(), scope, at)
        )
        doc = {"type": "update", "summary": summary, **live}
    except SourceError as exc:
        doc = {"type": "error", "timestamp": iso(at), **unavailable_body(exc)}
    return json.dumps(doc, separators=(",", ":"))


async def _ws_handler(request: web.Request) -> web.StreamResponse:
    return await ws_metrics(request, request.app[WEBAPI].feed)


async def _webapi_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the HTTP session for Prometheus/Alertmanager and the feed task for the app's life."""
    api = app[WEBAPI]
    async with aiohttp.ClientSession(
        headers={"User-Agent": f"llm-exporter/{__version__} webapi"},
        connector=aiohttp.TCPConnector(limit=32),
    ) as session:
        api.session = session
        feed = asyncio.create_task(api.feed.run(), name="ws-metrics-feed")
        yield
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
        await api.feed.close_all()
        api.session = None


async def _close_clients(app: web.Application) -> None:
    """On shutdown, close WebSockets first so the server need not wait for them."""
    await app[WEBAPI].feed.close_all()


def setup_webapi(
    app: web.Application,
    config: Config,
    *,
    max_clients: int = MAX_CLIENTS,
    queue_size: int = QUEUE_SIZE,
) -> None:
    """Register `/`, `/static/`, `/api/metrics`, `/api/metrics/mobile` and `/ws/metrics`."""

    def current() -> Config:
        live = app.get(keys.LIVE)
        return live.config if live is not None else config

    feed = Feed(
        build=lambda: build_payload(api),
        interval=lambda: current().dashboard_refresh_interval,
        max_clients=max_clients,
        queue_size=queue_size,
    )
    api = WebApi(config=current, feed=feed)
    app[WEBAPI] = api
    app.router.add_get("/", handlers.status_page)
    app.router.add_get("/api/metrics", handlers.api_metrics)
    app.router.add_get("/api/metrics/mobile", handlers.api_mobile)
    app.router.add_get("/ws/metrics", _ws_handler)
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app.cleanup_ctx.append(_webapi_ctx)
    app.on_shutdown.append(_close_clients)
