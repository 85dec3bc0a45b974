"""Loopback notification sinks (webhook, Slack, SMTP) and a scrape target the test can rewrite."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

HOST = "127.0.0.1"


@dataclass
class Received:
    """One delivery: when it arrived and what it carried."""

    at: float
    body: Any


@dataclass
class Sink:
    """Deliveries recorded by one sink, with a bounded wait for a matching one."""

    name: str
    url: str = ""
    received: list[Received] = field(default_factory=list)

    def record(self, body: Any) -> None:
        self.received.append(Received(time.monotonic(), body))

    def matching(self, predicate: Callable[[Any], bool]) -> list[Received]:
        return [r for r in self.received if predicate(r.body)]

    async def wait_for(
        self, predicate: Callable[[Any], bool], within: float, what: str = ""
    ) -> Received:
        """Return the first delivery matching `predicate`, polling for up to `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            found = self.matching(predicate)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} sink got no {what or 'matching delivery'} within {within}s; "
                    f"got {len(self.received)} deliveries: {[r.body for r in self.received]!r}"
                )
            await asyncio.sleep(0.1)


async def _start_site(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@asynccontextmanager
async def webhook_sink() -> AsyncIterator[Sink]:
    """Alertmanager webhook receiver: records each JSON payload (version 4)."""
    sink = Sink("webhook")

    async def receive(request: web.Request) -> web.Response:
        sink.record(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner, base = await _start_site(app)
    sink.url = f"{base}/llm-alerts"
    try:
        yield sink
    finally:
        await runner.cleanup()


@asynccontextmanager
async def slack_sink() -> AsyncIterator[Sink]:
    """Slack incoming-webhook stand-in: accepts JSON with text, attachments or blocks."""
    sink = Sink("slack")

    async def receive(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(payload, dict) or not (
            payload.get("text") or payload.get("attachments") or payload.get("blocks")
        ):
            return web.Response(status=400, text="no_text")
        sink.record(payload)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/services/{tail:.*}", receive)
    runner, base = await _start_site(app)
    sink.url = f"{base}/services/T000/B000/test"
    try:
        yield sink
    finally:
        await runner.cleanup()


class _SmtpHandler:
    """aiosmtpd handler that keeps every message, parsed."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        self._sink.record(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message": message,
            }
        )
        return "250 Message accepted for delivery"


@asynccontextmanager
async def smtp_sink() -> AsyncIterator[Sink]:
    """SMTP server (aiosmtpd, no TLS, no auth) recording messages; `url` is host:port."""
    sink = Sink("smtp")
    handler = _SmtpHandler(sink)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPProtocol(handler, hostname="sink.invalid", loop=loop), HOST, 0
    )
    port = server.sockets[0].getsockname()[1]
    sink.url = f"{HOST}:{port}"
    try:
        yield sink
    finally:
        server.close()
        await server.wait_closed()


def email_text(message: EmailMessage) -> str:
    """The plain-text part of a notification email."""
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


@dataclass
class ScrapeTarget:
    """A /metrics endpoint whose exposition text the test sets (stands in for the exporter)."""

    samples: dict[str, float] = field(default_factory=dict)
    address: str = ""

    def put(self, series: str, value: float) -> None:
        """Set one sample, e.g. put('llm_provider_up{provider="openai"}', 0)."""
        self.samples[series] = value

    def exposition(self) -> str:
        return "".join(f"{series} {value}\n" for series, value in sorted(self.samples.items()))


@asynccontextmanager
async def scrape_target(initial: dict[str, float]) -> AsyncIterator[ScrapeTarget]:
    """Serve `initial` (then whatever the test puts) as Prometheus text on /metrics."""
    target = ScrapeTarget(dict(initial))

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            text=target.exposition(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner, base = await _start_site(app)
    target.address = base.removeprefix("http://")
    try:
        yield target
    finally:
        await runner.cleanup()
