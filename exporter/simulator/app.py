"""The simulator's aiohttp application: one API root per provider plus the control API."""

from __future__ import annotations

from aiohttp import web

from exporter.simulator import anthropic_wire, catalog, control, gemini_wire, openai_wire
from exporter.simulator.call import Call
from exporter.simulator.pipeline import Endpoint, provider_handler
from exporter.simulator.state import MODES, SIM_STATE, SimState
from exporter.vocab import PROVIDERS


async def _no_route(call: Call) -> web.StreamResponse:
    """The provider's 404 for a path it does not serve."""
    request = call.request
    return call.error("not_found", message=f"Invalid URL ({request.method} {request.path})")


def _routes(provider: str) -> list[tuple[str, str, Endpoint]]:
    """(method, path under the root, endpoint) for the provider's wire family."""
    api = catalog.family(provider)
    if api == "anthropic":
        return [
            ("GET", "/models", anthropic_wire.list_models),
            ("GET", "/models/{model}", anthropic_wire.get_model),
            ("POST", "/messages", anthropic_wire.messages),
            ("POST", "/messages/count_tokens", anthropic_wire.count_tokens),
        ]
    if api == "gemini":
        return [
            ("GET", "/models", gemini_wire.list_models),
            ("GET", "/models/{model}", gemini_wire.get_model),
            ("POST", "/models/{model}:{action}", gemini_wire.model_action),
        ]
    return [
        ("GET", "/models", openai_wire.list_models),
        ("POST", "/chat/completions", openai_wire.chat),
    ]


async def _index(request: web.Request) -> web.Response:
    """What is served where, for people poking at the simulator."""
    roots = {p: catalog.root(p) for p in PROVIDERS}
    return web.json_response({"simulator": "llm-exporter", "roots": roots, "modes": list(MODES)})


async def _stopping(app: web.Application) -> None:
    """Let slow, hanging and streaming handlers end instead of holding up shutdown."""
    app[SIM_STATE].closing = True


def create_app(*, seed: int | None = None) -> web.Application:
    """The simulator app; `seed` makes latency jitter, error rolls and replies reproducible."""
    app = web.Application()
    app[SIM_STATE] = SimState(seed)
    app.on_shutdown.append(_stopping)
    app.router.add_get("/", _index)
    control.add_routes(app.router)
    for provider in PROVIDERS:
        root = catalog.root(provider)
        for method, path, endpoint in _routes(provider):
            app.router.add_route(method, root + path, provider_handler(provider, endpoint))
        app.router.add_route("*", root + "/{tail:.*}", provider_handler(provider, _no_route))
    return app
