"""The path every provider request takes: faults, latency, auth, then the wire module."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from exporter.simulator import catalog
from exporter.simulator.call import Call, drop
from exporter.simulator.state import SIM_STATE

Endpoint = Callable[[Call], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ANTHROPIC_VERSIONS = frozenset({"2023-06-01", "2026-10-21"})
_ERROR_MODES = {
    "rate_limit": "rate_limit",
    "overloaded": "overloaded",
    "auth": "auth",
    "server_error": "server_error",
    "billing": "billing",
}


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_key(family: str, request: web.Request) -> str:
    """The key as the provider reads it; empty when none was sent."""
    if family == "anthropic":
        return request.headers.get("x-api-key", "").strip() or _bearer(request)
    if family == "gemini":
        return (
            request.headers.get("x-goog-api-key", "").strip()
            or request.query.get("key", "").strip()
        )
    return _bearer(request)


async def _read_json(request: web.Request) -> tuple[Any, str]:
    """The request's JSON object, or None and a message saying what is wrong with it."""
    if not request.can_read_body:
        return None, ""
    raw = await request.read()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return None, f"request body is not valid JSON: {exc.msg} at position {exc.pos}"
    if not isinstance(data, dict):
        return None, "request body must be a JSON object"
    return data, ""


async def _serve(request: web.Request, call: Call, endpoint: Endpoint) -> web.StreamResponse:
    state, provider = call.state, call.provider
    mode = state.faults[provider].mode
    if mode == "down":
        return drop(request)
    if not await call.pause(state.latency_s(provider), precise=True):
        return drop(request)
    if mode == "hang":
        await call.pause(math.inf)
        return drop(request)
    call.key = api_key(call.family, request)
    if not call.key:
        return call.error("missing_key")
    if call.family == "anthropic":
        version = request.headers.get("anthropic-version", "")
        if version not in ANTHROPIC_VERSIONS:
            what = "is required" if not version else f"value {version!r} is not supported"
            return call.error("bad_request", detail=f"anthropic-version: header {what}")
    call.body, problem = await _read_json(request)
    model = str(call.body.get("model", "")) if call.body else ""
    model = model or request.match_info.get("model", "")
    call.echo = mode == "echo_key"
    if call.echo:
        return call.error("auth")
    if mode in _ERROR_MODES:
        return call.error(_ERROR_MODES[mode], model=model)
    if state.roll_error(provider):
        return call.error("server_error", model=model)
    if problem:
        return call.error("bad_request", detail=problem)
    return await endpoint(call)


def provider_handler(provider: str, endpoint: Endpoint) -> Handler:
    """An aiohttp handler serving `endpoint` for `provider` under the configured faults."""

    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[SIM_STATE]
        state.requests[provider] += 1
        state.in_flight[provider] += 1
        prefix = "req_" if catalog.family(provider) == "anthropic" else ""
        call = Call(request=request, provider=provider, state=state)
        call.request_id = state.request_id(prefix)
        try:
            return await _serve(request, call, endpoint)
        finally:
            state.in_flight[provider] -= 1

    return handler
