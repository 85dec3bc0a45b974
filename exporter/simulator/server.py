"""Running the simulator on a socket, with an access log that never records keys."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from exporter.simulator.app import create_app

log = logging.getLogger("exporter.simulator")


class AccessLogger(AbstractAccessLogger):
    """Method, path (no query string: Gemini keys travel in `?key=`), status and time only."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.3fs",
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
        )


async def serve(host: str, port: int, *, seed: int | None = None) -> None:
    """Serve the simulator on host:port until cancelled, then shut down cleanly."""
    runner = web.AppRunner(
        create_app(seed=seed),
        access_log_class=AccessLogger,
        access_log=logging.getLogger("exporter.simulator.access"),
        shutdown_timeout=5.0,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("provider simulator listening on http://%s:%d", host, port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
