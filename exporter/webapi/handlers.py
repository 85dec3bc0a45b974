"""aiohttp handlers for `/api/metrics`, `/api/metrics/mobile` and the status page `/`."""

from __future__ import annotations

import asyncio
import math
import time

from aiohttp import web

from exporter.webapi.live import live_document
from exporter.webapi.page import render_page
from exporter.webapi.promql import SourceError
from exporter.webapi.state import WEBAPI, unavailable_body
from exporter.webapi.summary import PERIODS, build_summary

NO_STORE = {"Cache-Control": "no-store"}
PAGE_HEADERS = {
    **NO_STORE,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
MAX_SKEW = 366 * 86400.0  # `time=` may look back a year, and not into the future
PAGE_TIMEOUT = 3.0  # the page renders placeholders rather than wait longer for Prometheus


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=web.json_response({"error": message}).text, content_type="application/json"
    )


def _evaluation_time(request: web.Request) -> float | None:
    """The optional `time` parameter: unix seconds to evaluate at (default now)."""
    raw = request.query.get("time")
    if raw is None:
        return None
    try:
        at = float(raw)
    except ValueError:
        raise _bad_request("time: expected unix seconds") from None
    now = time.time()
    if not math.isfinite(at) or not now - MAX_SKEW <= at <= now + 60:
        raise _bad_request("time: must be within the last year and not in the future")
    return at


def _unavailable(exc: SourceError) -> web.Response:
    return web.json_response(unavailable_body(exc), status=503, headers=NO_STORE)


async def api_metrics(request: web.Request) -> web.Response:
    """The summary for `period` (last_1h, last_24h or last_7d; default last_24h)."""
    period = request.query.get("period", "last_24h")
    if period not in PERIODS:
        raise _bad_request(f"period: must be one of {', '.join(PERIODS)}")
    at = _evaluation_time(request)
    api = request.app[WEBAPI]
    try:
        doc = await build_summary(api.prom(), api.scope(), seconds=PERIODS[period], at=at)
    except SourceError as exc:
        return _unavailable(exc)
    return web.json_response(doc, headers=NO_STORE)


async def api_mobile(request: web.Request) -> web.Response:
    """The small summary for phones: status, sessions, traffic, cost today, firing alerts."""
    at = _evaluation_time(request)
    api = request.app[WEBAPI]
    try:
        doc = await live_document(api.prom(), api.am(), api.scope(), at)
    except SourceError as exc:
        return _unavailable(exc)
    return web.json_response(doc["mobile"], headers=NO_STORE)


async def status_page(request: web.Request) -> web.Response:
    """The status page, rendered with the current state; the browser then follows the feed."""
    api = request.app[WEBAPI]
    doc, error = None, None
    try:
        live = live_document(api.prom(), api.am(), api.scope())
        doc = await asyncio.wait_for(live, PAGE_TIMEOUT)
    except SourceError as exc:
        error = str(exc)
    except TimeoutError:
        error = f"prometheus: no answer within {PAGE_TIMEOUT:g} s; waiting for live updates"
    refresh = api.config().dashboard_refresh_interval
    html = render_page(doc, error, providers=list(api.scope().providers), refresh=refresh)
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)
