"""One sweep: with every provider misbehaving differently, no API key shows up anywhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter import keys
from exporter.app import create_app
from exporter.config import load_config
from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.redact import RedactingFilter
from exporter.simulator import ECHO_HEADER, SIM_STATE
from exporter.simulator import create_app as create_simulator
from exporter.vocab import PROVIDERS
from tests._reliability_helpers import wait_for

Client = TestClient[web.Request, web.Application]
SENTINELS = {p: f"sk-SWEEP-{p}-b71e0c9a" for p in PROVIDERS}
INGEST = "ingest-SWEEP-token-55aa"
MODES = {
    "openai": "echo_key",
    "anthropic": "echo_key",
    "gemini": "echo_key",
    "mistral": "auth",
    "grok": "rate_limit",
    "qwen": "malformed",
    "deepseek": "down",
    "kimi_k2": "hang",
}
ENV = {PROVIDER_DEFAULTS[p]["api_key_env"]: SENTINELS[p] for p in PROVIDERS} | {
    "LLM_EXPORTER_INGEST_TOKEN": INGEST
}


class Collect(logging.Handler):
    """Keeps every formatted record (after the handler's filters ran)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def leaks(text: str) -> list[str]:
    return [p for p, key in {**SENTINELS, "ingest": INGEST}.items() if key in text]


async def test_no_key_in_any_output_with_every_fault_mode(
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
    caplog,
) -> None:
    sim = await aiohttp_server(create_simulator(seed=11))
    for p, mode in MODES.items():
        sim.app[SIM_STATE].set_mode(p, mode)
    sim_url = str(sim.make_url("")).rstrip("/")
    doc = {
        "providers": {
            p: {"base_url": sim_url + SIMULATOR_ROOTS[p], "interval": "0.5s",
                "billable_interval": "0.5s", "timeout": "0.4s"}
            for p in PROVIDERS
        }
    }  # fmt: skip
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(doc))
    config = load_config(path, ENV)
    app = create_app(config, env=ENV, registry=CollectorRegistry(), config_path=str(path))
    filtered = Collect()
    filtered.addFilter(RedactingFilter(app[keys.SECRETS]))
    root = logging.getLogger()
    root.addHandler(filtered)
    caplog.set_level(logging.DEBUG)
    try:
        client = await aiohttp_client(app)

        def every_check_ran() -> bool:
            store = app[keys.PROBES]
            return all(
                cs.last is not None for ps in store.providers.values() for cs in ps.checks.values()
            )

        async def ran() -> bool:
            return every_check_ran()

        await wait_for(ran, 15)
        # the simulator really did receive and echo the keys, so there was something to leak
        async with client.session.get(
            sim_url + SIMULATOR_ROOTS["openai"] + "/models",
            headers={"Authorization": f"Bearer {SENTINELS['openai']}"},
        ) as resp:
            assert resp.headers.get(ECHO_HEADER) == SENTINELS["openai"]
            assert SENTINELS["openai"] in await resp.text()

        auth = {"Authorization": f"Bearer {INGEST}"}
        outputs: dict[str, str] = {}
        outputs["metrics"] = await (await client.get("/metrics")).text()
        om = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        outputs["openmetrics"] = await om.text()
        outputs["health"] = await (await client.get("/api/health")).text()
        resp = await client.post(
            "/api/v1/events",
            headers=auth,
            json=[
                {"type": "session_start", "session_id": "sweep"},
                {"type": "llm_call", "provider": "openai", "model": "x", "session_id": "sweep",
                 "input_tokens": 3},
            ],
        )  # fmt: skip
        assert resp.status == 200
        outputs["events"] = await resp.text()
        outputs["events-401"] = await (
            await client.post("/api/v1/events", json=[], headers={"Authorization": "Bearer no"})
        ).text()
        outputs["session"] = await (await client.get("/api/sessions/sweep/metrics")).text()
        for extra in ("/api/metrics", "/api/metrics/mobile", "/"):
            got = await client.get(extra)
            outputs[extra] = await got.text()

        bad = yaml.safe_load(path.read_text())
        bad["providers"]["openai"]["base_url"] = f"http://u:{SENTINELS['openai']}@127.0.0.1/v1"
        path.write_text(yaml.safe_dump(bad))
        resp = await client.post("/-/reload")
        assert resp.status == 400
        outputs["reload-400"] = await resp.text()

        errors = [
            f"{pid}/{check}: {cs.last.error}"
            for pid, ps in app[keys.PROBES].providers.items()
            for check, cs in ps.checks.items()
            if cs.last is not None
        ]
        assert any("echo" in e or "auth" in e or e.split(": ", 1)[1] for e in errors)
        outputs["probe-errors"] = "\n".join(errors)
        await asyncio.sleep(0)
    finally:
        root.removeHandler(filtered)

    found = {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert not found, found
    assert filtered.lines, "nothing was logged at DEBUG: the log check would prove nothing"
    assert not leaks("\n".join(filtered.lines))
    raw = [
        f"{r.name}: {leaks(r.getMessage() + (caplog.handler.formatter.formatException(r.exc_info) if r.exc_info else ''))}"  # noqa: E501
        for r in caplog.records
        if leaks(
            r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        )
    ]
    assert not raw, f"unfiltered log records carry keys: {raw}"


async def test_reload_problems_do_not_echo_a_key_pasted_into_the_config(
    tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    path = tmp_path / "c.yml"
    path.write_text("monitoring_enabled: false\n")
    env = {"OPENAI_API_KEY": SENTINELS["openai"]}
    app = create_app(load_config(path, env), env=env, registry=CollectorRegistry(),
                     config_path=str(path))  # fmt: skip
    client = await aiohttp_client(app)
    path.write_text(f"thresholds: {{error_rate: {SENTINELS['openai']}}}\n")
    resp = await client.post("/-/reload")
    assert resp.status == 400
    assert not leaks(await resp.text())
