"""`llm-exporter demo`: simulator, exporter probing it, synthetic orchestrator traffic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from exporter.config import Config, build_config
from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.redact import SecretRegistry

log = logging.getLogger(__name__)

DEMO_INTERVAL = "5s"  # free checks
DEMO_BILLABLE_INTERVAL = "15s"  # the simulator charges nothing, so billable checks run often too
DEMO_TIMEOUT = "4s"


def demo_env() -> dict[str, str]:
    """Placeholder keys: the simulator accepts any non-empty key."""
    return {d["api_key_env"]: f"demo-key-{pid}" for pid, d in PROVIDER_DEFAULTS.items()}


def demo_config(simulator_url: str, listen: str) -> Config:
    """The built-in defaults, with every provider pointed at the simulator and probed often."""
    providers: dict[str, Any] = {
        pid: {
            "base_url": simulator_url + SIMULATOR_ROOTS[pid],
            "interval": DEMO_INTERVAL,
            "billable_interval": DEMO_BILLABLE_INTERVAL,
            "timeout": DEMO_TIMEOUT,
        }
        for pid in PROVIDER_DEFAULTS
    }
    raw = {"listen": listen, "providers": providers, "ingest": {"token_env": None}}
    return build_config(raw, env={})


def _url(host: str, port: int) -> str:
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def run_demo(
    listen: tuple[str, int],
    simulator_listen: tuple[str, int],
    *,
    rate: float = 4.0,
    secrets: SecretRegistry | None = None,
) -> None:
    from exporter.app import create_app
    from exporter.orchestrator_sim import run_synthetic_orchestrator
    from exporter.runner import run_site
    from exporter.simulator import create_app as create_simulator

    sim_url = _url(*simulator_listen)
    exporter_url = _url(*listen)
    config = demo_config(sim_url, f"{listen[0]}:{listen[1]}")
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(run_site(create_simulator(), *simulator_listen, name="simulator")),
    ]
    await asyncio.sleep(0.2)
    tasks.append(
        asyncio.create_task(
            run_site(
                create_app(config, env=demo_env(), secrets=secrets), *listen, name="llm-exporter"
            )
        )
    )
    await asyncio.sleep(0.3)
    for task in tasks:
        if task.done():  # e.g. a port already in use: report it and stop
            await task
    tasks.append(
        asyncio.create_task(
            run_synthetic_orchestrator(
                config,
                events_url=f"{exporter_url}/api/v1/events",
                simulator_url=sim_url,
                stop=stop,
                rate_per_second=rate,
            )
        )
    )
    print(
        f"demo: simulator {sim_url} (faults: POST {sim_url}/_sim/<provider>)\n"
        f"demo: exporter  {exporter_url}/metrics and {exporter_url}/api/health\n"
        f"demo: synthetic traffic at {rate:g} calls/s for all eight providers; Ctrl-C stops",
        flush=True,
    )
    try:
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
