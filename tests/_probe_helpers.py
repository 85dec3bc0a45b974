"""A scripted fake provider for the prober tests: one aiohttp app whose reply each test sets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

from exporter.providers.base import ProbeTarget

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEY = "sk-test-SENTINEL-0123456789abcdef"  # a fake key: tests assert it never leaks


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDictProxy[str]
    body: Any


@dataclass
class FakeProvider:
    """Serves whatever `handler` says and records every request in `seen`."""

    url: str = ""  # the API root the probers are pointed at
    handler: Handler | None = None
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends hanging handlers
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first request

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              request.headers, body))
        self.arrived.set()
        assert self.handler is not None, "test forgot to set a handler"
        return await self.handler(request)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app


async def start_fake(aiohttp_server: Any, root: str = "/v1") -> FakeProvider:
    """Start a FakeProvider on loopback; its `url` is the API root to probe."""
    fake = FakeProvider()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url(root))
    return fake


def target(url: str, api: str, provider: str | None = None, **kw: Any) -> ProbeTarget:
    """A ProbeTarget at the fake's root with the sentinel key and a 5 s timeout by default."""
    settings: dict[str, Any] = {"probe_model": "probe-model", "timeout": 5.0, "api_key": KEY}
    settings.update(kw)
    return ProbeTarget(provider=provider or api, api=api, base_url=url, **settings)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reply_json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.json_response(doc, status=status, headers=headers)

    return handler


def reply_bytes(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type=content_type)

    return handler


def reply_sse(*parts: str | float, headers: dict[str, str] | None = None) -> Handler:
    """Stream `parts` in order: a str is written as-is, a float is a pause in seconds."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **(headers or {})})
        await resp.prepare(request)
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                await resp.write(part.encode())
        await resp.write_eof()
        return resp

    return handler


def sse(data: Any, event: str | None = None) -> str:
    """One SSE event carrying `data` as JSON (or as-is when it is a str)."""
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def reply_hang(fake: FakeProvider) -> Handler:
    """Never send headers (until the test ends)."""

    async def handler(_: web.Request) -> web.StreamResponse:
        await fake.release.wait()
        return web.Response(status=599)

    return handler


def reply_reset(prefix: bytes, content_type: str = "application/json") -> Handler:
    """Send headers and `prefix` of a chunked body, then drop the connection."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": content_type})
        await resp.prepare(request)
        await resp.write(prefix)
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.abort()
        return resp

    return handler


def reply_big(total: int, *, content_length: bool) -> Handler:
    """A body of `total` bytes sent in 1 MiB chunks, with or without a Content-Length."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if content_length:
            resp.content_length = total
        await resp.prepare(request)
        block = b"[" + b" " * ((1 << 20) - 1)
        sent = 0
        try:
            while sent < total:
                await resp.write(block[: total - sent])
                sent += len(block)
        except ConnectionError:
            pass  # the client stopped reading, as it should
        return resp

    return handler
