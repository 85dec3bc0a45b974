"""The fault-control API: `GET /_sim`, `GET|POST /_sim/{provider}`, `POST /_sim/_reset`."""

from __future__ import annotations

import json

from aiohttp import web

from exporter.simulator.state import MODES, SIM_STATE
from exporter.vocab import PROVIDERS

FIELDS = ("mode", "latency_ms", "error_rate", "token_delay_ms")


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def show_all(request: web.Request) -> web.Response:
    """Every provider's fault settings and counters."""
    return web.json_response(request.app[SIM_STATE].snapshot())


async def show_one(request: web.Request) -> web.Response:
    """One provider's fault settings and counters."""
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        return _bad(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})", 404)
    state = request.app[SIM_STATE]
    return web.json_response({"provider": provider, **state.provider_snapshot(provider)})


async def set_one(request: web.Request) -> web.Response:
    """Replace one provider's faults from `{"mode": ..., "latency_ms": ..., "error_rate": ...}`."""
    provider = request.match_info["provider"]
    if provider not in PROVIDERS:
        return _bad(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
    try:
        body = json.loads(await request.read())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _bad('body must be a JSON object, e.g. {"mode": "down"}')
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        return _bad(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(FIELDS)})")
    mode = body.get("mode")
    if not isinstance(mode, str):
        return _bad(f"mode is required and must be one of {', '.join(MODES)}")
    state = request.app[SIM_STATE]
    try:
        state.set_mode(
            provider,
            mode,
            latency_ms=body.get("latency_ms"),
            error_rate=body.get("error_rate"),
            token_delay_ms=body.get("token_delay_ms"),
        )
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response({"provider": provider, **state.provider_snapshot(provider)})


async def reset(request: web.Request) -> web.Response:
    """Every provider back to mode ok, counters and caches cleared."""
    state = request.app[SIM_STATE]
    state.reset()
    return web.json_response(state.snapshot())


def add_routes(router: web.UrlDispatcher) -> None:
    """Register the control routes (`_reset` before the `{provider}` pattern)."""
    router.add_get("/_sim", show_all)
    router.add_post("/_sim/_reset", reset)
    router.add_get("/_sim/{provider}", show_one)
    router.add_post("/_sim/{provider}", set_one)
