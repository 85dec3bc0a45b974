"""Config reload: `POST /-/reload` and SIGHUP apply a good file and refuse a bad one."""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import load_config
from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.simulator import create_app as create_simulator
from tests._net import free_port
from tests._reliability_helpers import (
    cli,
    http_get,
    samples,
    stop,
    total,
    value,
    wait_for,
    wait_http,
)

Client = TestClient[web.Request, web.Application]
PROBED = ("openai", "anthropic")
KEYS = {PROVIDER_DEFAULTS[p]["api_key_env"]: f"sk-reload-{p}" for p in PROBED}


def doc(sim_url: str, *, error_rate: float = 0.05, anthropic: bool = True) -> dict[str, Any]:
    providers = {
        p: {
            "base_url": sim_url + SIMULATOR_ROOTS[p],
            "interval": "0.3s",
            "billable_interval": "0.3s",
            "timeout": "0.25s",
        }
        for p in PROBED
    }
    providers["anthropic"]["enabled"] = anthropic
    return {
        "providers": providers,
        "ingest": {"token_env": None},
        "thresholds": {"error_rate": error_rate},
    }


def write(path: Path, data: dict[str, Any] | str) -> None:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")


@pytest.fixture
async def setup(
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    aiohttp_client: Callable[..., Awaitable[Client]],
) -> tuple[Client, Path, str]:
    sim = await aiohttp_server(create_simulator(seed=3))
    sim_url = str(sim.make_url("")).rstrip("/")
    path = tmp_path / "exporter.yml"
    write(path, doc(sim_url))
    config = load_config(path, KEYS)
    app = create_app(config, env=KEYS, registry=CollectorRegistry(), config_path=str(path))
    return await aiohttp_client(app), path, sim_url


def provider_series(text: str, provider: str) -> list[str]:
    """Names of the probe and provider series carrying `provider`."""
    return [
        name
        for name, labels in samples(text)
        if name.startswith(("llm_probe", "llm_provider_")) and ("provider", provider) in labels
    ]


async def metrics(client: Client) -> str:
    resp = await client.get("/metrics")
    assert resp.status == 200
    return await resp.text()


async def test_post_reload_applies_thresholds_and_drops_a_disabled_provider(setup) -> None:
    client, path, sim_url = setup
    text = await metrics(client)
    assert value(text, "llm_alert_threshold", name="error_rate") == 0.05
    assert provider_series(text, "anthropic")
    write(path, doc(sim_url, error_rate=0.2, anthropic=False))
    resp = await client.post("/-/reload")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "reloaded"
    text = await metrics(client)
    assert value(text, "llm_alert_threshold", name="error_rate") == 0.2
    assert value(text, "llm_exporter_config_last_reload_successful") == 1
    assert not provider_series(text, "anthropic")
    assert value(text, "llm_provider_api_key_configured", provider="openai") == 1

    async def openai_probed() -> bool:
        return total(await metrics(client), "llm_probes_total", provider="openai") > 0

    await wait_for(openai_probed)


async def test_bad_file_is_refused_with_paths_and_the_old_config_keeps_probing(setup) -> None:
    client, path, sim_url = setup
    good = path.read_text()
    bad = doc(sim_url, error_rate=7.0)
    bad["providers"]["openai"]["interval"] = "soon"
    bad["thresholds"]["eror_rate"] = 0.1
    write(path, bad)
    resp = await client.post("/-/reload")
    assert resp.status == 400
    body = await resp.json()
    problems = body["problems"]
    assert body["status"] == "error"
    assert any(p.startswith("thresholds.error_rate:") for p in problems), problems
    assert any(p.startswith("providers.openai.interval:") for p in problems), problems
    assert any(p.startswith("thresholds.eror_rate:") and "error_rate" in p for p in problems)
    text = await metrics(client)
    assert value(text, "llm_exporter_config_last_reload_successful") == 0
    assert value(text, "llm_alert_threshold", name="error_rate") == 0.05  # old config runs on

    before = total(text, "llm_probes_total", provider="anthropic")

    async def still_probing() -> bool:
        return total(await metrics(client), "llm_probes_total", provider="anthropic") > before

    await wait_for(still_probing)

    write(path, "providers: [not, a, mapping\n")  # not even YAML
    resp = await client.post("/-/reload")
    assert resp.status == 400
    (problem,) = (await resp.json())["problems"]
    assert "invalid YAML (line" in problem

    path.write_text(good)
    resp = await client.post("/-/reload")
    assert resp.status == 200
    text = await metrics(client)
    assert value(text, "llm_exporter_config_last_reload_successful") == 1


async def test_missing_file_is_refused(setup) -> None:
    client, path, _ = setup
    path.unlink()
    resp = await client.post("/-/reload")
    assert resp.status == 400
    assert "cannot read" in (await resp.json())["problems"][0]
    assert value(await metrics(client), "llm_exporter_config_last_reload_successful") == 0


def _poll(url: str, cond: Callable[[str], bool], limit: float = 10.0) -> str:
    deadline = time.monotonic() + limit
    while True:
        status, text = http_get(url)
        if status == 200 and cond(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {limit}s; last body:\n{text[-3000:]}")
        time.sleep(0.1)


def test_sighup_reloads_a_running_server(tmp_path: Path) -> None:
    sim_port, port = free_port(), free_port()
    sim = cli(["simulate", "--listen", f"127.0.0.1:{sim_port}"])
    exporter = None
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/_sim", sim)
        path = tmp_path / "exporter.yml"
        write(path, doc(f"http://127.0.0.1:{sim_port}"))
        exporter = cli(["serve", "--config", str(path), "--listen", f"127.0.0.1:{port}"], env=KEYS)
        url = f"http://127.0.0.1:{port}/metrics"
        wait_http(f"http://127.0.0.1:{port}/-/ready", exporter)
        _poll(url, lambda t: total(t, "llm_probes_total", provider="anthropic") > 0)

        write(path, doc(f"http://127.0.0.1:{sim_port}", error_rate=0.3, anthropic=False))
        exporter.send_signal(signal.SIGHUP)
        text = _poll(url, lambda t: value(t, "llm_alert_threshold", name="error_rate") == 0.3)
        assert not provider_series(text, "anthropic")
        assert provider_series(text, "openai")

        write(path, "thresholds: {error_rate: -1}\n")
        exporter.send_signal(signal.SIGHUP)
        text = _poll(url, lambda t: value(t, "llm_exporter_config_last_reload_successful") == 0)
        assert value(text, "llm_alert_threshold", name="error_rate") == 0.3
        assert exporter.poll() is None
        assert stop(exporter) == 0
        log = exporter.stderr.read().decode() if exporter.stderr else ""
        assert "reload refused: thresholds.error_rate:" in log
        assert all(k not in log for k in KEYS.values())
    finally:
        if exporter is not None:
            stop(exporter)
        stop(sim)
