"""Config reload on SIGHUP or `POST /-/reload`: a bad config is refused, the old one runs on."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from exporter import keys
from exporter.config import Config, ConfigError, load_config

log = logging.getLogger(__name__)

ReloadHook = Callable[[web.Application, Config], Awaitable[None]]


async def reload_config(app: web.Application) -> list[str]:
    """Load the config file again and apply it; returns the problems (empty on success)."""
    path = app[keys.CONFIG_PATH]
    async with app[keys.RELOAD_LOCK]:
        try:
            config = await asyncio.to_thread(load_config, path, app[keys.ENV])
        except ConfigError as exc:
            app[keys.RELOAD_OK]["ok"] = False
            # a key pasted into the file would otherwise come back in the "got ..." part
            problems = [app[keys.SECRETS].redact(p) for p in exc.problems]
            for problem in problems:
                log.error("reload refused: %s", problem)
            return problems
        for hook in app[keys.RELOAD_HOOKS]:
            await hook(app, config)
        app[keys.LIVE].config = config
        app[keys.RELOAD_OK]["ok"] = True
        log.info("configuration reloaded from %s", path or "built-in defaults")
        return []


async def reload_handler(request: web.Request) -> web.Response:
    problems = await reload_config(request.app)
    if problems:
        return web.json_response({"status": "error", "problems": problems}, status=400)
    return web.json_response({"status": "reloaded"})


async def sighup_ctx(app: web.Application) -> AsyncIterator[None]:
    """For `cleanup_ctx`: reload on SIGHUP where the platform has it."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[list[str]]] = set()

    def on_hup() -> None:
        task = asyncio.create_task(reload_config(app))
        pending.add(task)
        task.add_done_callback(pending.discard)

    installed = False
    if hasattr(signal, "SIGHUP"):
        try:
            loop.add_signal_handler(signal.SIGHUP, on_hup)
            installed = True
        except (RuntimeError, ValueError):  # not the main thread (e.g. under a test runner)
            installed = False
    yield
    if installed:
        loop.remove_signal_handler(signal.SIGHUP)
    for task in pending:
        await task
