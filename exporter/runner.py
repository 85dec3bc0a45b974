"""Run an app on a TCP site until cancelled, then shut it down cleanly."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from exporter.config import Config
from exporter.redact import SecretRegistry

log = logging.getLogger(__name__)


async def run_site(app: web.Application, host: str, port: int, *, name: str) -> None:
    """Serve `app` until this coroutine is cancelled; in-flight requests get time to finish."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("%s listening on http://%s:%d", name, host, port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def serve(
    config: Config,
    host: str,
    port: int,
    *,
    config_path: str | None = None,
    secrets: SecretRegistry | None = None,
) -> None:
    from exporter.app import create_app

    app = create_app(config, secrets=secrets, config_path=config_path)
    await run_site(app, host, port, name="llm-exporter")
