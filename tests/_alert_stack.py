"""Real Prometheus and Alertmanager on loopback, running test copies of the shipped configs.

The copies keep the rules, routes, receivers, inhibitions and templates as shipped and change only
addresses, file locations and timings: scrape/evaluation every second, every alert `for:` and
every route `group_wait`/`group_interval`/`repeat_interval` multiplied by the same factor.
Alertmanager is started through alertmanager/entrypoint.sh, as in docker compose.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests._alert_sinks import HOST, Sink, slack_sink, smtp_sink, webhook_sink
from tests._net import free_port

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "prometheus"
ALERTMANAGER_DIR = ROOT / "alertmanager"
RULE_FILES = (
    PROMETHEUS_DIR / "rules" / "llm-exporter.rules.yml",
    PROMETHEUS_DIR / "rules" / "llm-exporter.alerts.yml",
)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def require_binary(name: str) -> str:
    """Path of a Debian Prometheus tool; fail (not skip) the test when it is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: `make system-deps` installs Debian's prometheus and "
            "prometheus-alertmanager packages, which these tests need.",
            pytrace=False,
        )
    return path



def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as "1h30m" or "500ms"."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def scale_duration(text: str, factor: float, floor: float = 0.0) -> str:
    """`text` multiplied by `factor` (at least `floor` seconds), in milliseconds."""
    seconds = parse_duration(text)
    if seconds == 0:
        return "0s"
    return f"{max(round(seconds * factor * 1000), round(floor * 1000), 1)}ms"


def write_rule_files(dest: Path, factor: float) -> list[Path]:
    """Copy the shipped rule files with every alert's `for:` multiplied by `factor`."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for source in RULE_FILES:
        doc = yaml.safe_load(source.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule:
                    rule["for"] = scale_duration(rule["for"], factor)
        path = dest / source.name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(path)
    return written


def write_prometheus_config(
    dest: Path,
    *,
    exporter: str,
    alertmanager: str,
    prometheus: str,
    rule_files: list[Path],
    interval: str = "1s",
) -> Path:
    """The shipped prometheus.yml with loopback targets, local rule files and a short interval."""
    doc = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    doc["global"].update(
        scrape_interval=interval, evaluation_interval=interval, scrape_timeout=interval
    )
    doc["rule_files"] = [str(p) for p in rule_files]
    doc["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    targets = {"llm-exporter": exporter, "prometheus": prometheus, "alertmanager": alertmanager}
    jobs = [job["job_name"] for job in doc["scrape_configs"]]
    assert sorted(jobs) == sorted(targets), f"prometheus.yml jobs changed: {jobs}"
    for job in doc["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _scale_route(route: dict[str, Any], factor: float, floor: float) -> None:
    for key in ("group_wait", "group_interval", "repeat_interval"):
        if key in route:
            route[key] = scale_duration(route[key], factor, floor)
    for child in route.get("routes", []):
        _scale_route(child, factor, floor)


def write_alertmanager_config(dest: Path, *, factor: float, floor: float = 1.0) -> Path:
    """The shipped alertmanager.yml with scaled grouping timings and an absolute template path.

    Addresses stay as shipped: entrypoint.sh substitutes them from the environment, as in compose.
    """
    doc = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text())
    doc["templates"] = [
        str(ALERTMANAGER_DIR / t) if not t.startswith("/") else t for t in doc["templates"]
    ]
    _scale_route(doc["route"], factor, floor)
    path = dest / "alertmanager.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, poll: float = 0.1
) -> float:
    """Poll `check` until it is true; return the seconds it took, fail after `within` seconds."""
    start = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(poll)


@dataclass
class Service:
    """A started binary: its base URL and log file."""

    name: str
    url: str
    process: asyncio.subprocess.Process
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@asynccontextmanager
async def run_service(
    name: str,
    argv: list[str],
    url: str,
    workdir: Path,
    session: aiohttp.ClientSession,
    env: dict[str, str] | None = None,
    ready_within: float = 20.0,
) -> AsyncIterator[Service]:
    """Start `argv`, wait for GET {url}/-/ready, and terminate it (then kill) on exit."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, **(env or {})},
        )
    service = Service(name, url, process, log)
    try:

        async def ready() -> bool:
            if process.returncode is not None:
                raise AssertionError(
                    f"{name} exited with {process.returncode}:\n{service.log_tail()}"
                )
            try:
                async with session.get(f"{url}/-/ready") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, ready_within, f"{name} to be ready")
        yield service
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@dataclass
class AlertingStack:
    """Prometheus + Alertmanager + the three sinks, all on loopback."""

    prometheus: Service | None
    alertmanager: Service
    webhook: Sink
    slack: Sink
    smtp: Sink
    session: aiohttp.ClientSession

    async def prometheus_query(self, expr: str) -> list[dict[str, Any]]:
        assert self.prometheus is not None, "this stack runs without Prometheus"
        async with self.session.get(
            f"{self.prometheus.url}/api/v1/query", params={"query": expr}
        ) as response:
            body = await response.json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    async def alertmanager_alerts(self, **labels: str) -> list[dict[str, Any]]:
        filters = [f'{k}="{v}"' for k, v in labels.items()]
        async with self.session.get(
            f"{self.alertmanager.url}/api/v2/alerts", params=[("filter", f) for f in filters]
        ) as response:
            assert response.status == 200, await response.text()
            return list(await response.json())

    async def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        async with self.session.post(
            f"{self.alertmanager.url}/api/v2/alerts", json=alerts
        ) as response:
            assert response.status == 200, await response.text()


@asynccontextmanager
async def alerting_stack(
    workdir: Path,
    *,
    exporter: str | None,
    factor: float,
    env: dict[str, str],
) -> AsyncIterator[AlertingStack]:
    """Start sinks, Alertmanager (via entrypoint.sh with `env`) and, given an exporter
    host:port to scrape, Prometheus with the scaled rules."""
    alertmanager_bin = require_binary("prometheus-alertmanager")
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        )
        webhook = await stack.enter_async_context(webhook_sink())
        slack = await stack.enter_async_context(slack_sink())
        smtp = await stack.enter_async_context(smtp_sink())

        am_port = free_port(HOST)
        am_dir = workdir / "alertmanager"
        am_dir.mkdir()
        runtime = am_dir / "runtime"
        am_config = write_alertmanager_config(am_dir, factor=factor)
        am = await stack.enter_async_context(
            run_service(
                "alertmanager",
                [
                    "/bin/sh",
                    str(ALERTMANAGER_DIR / "entrypoint.sh"),
                    f"--config.file={am_config}",
                    f"--storage.path={am_dir / 'data'}",
                    f"--web.listen-address={HOST}:{am_port}",
                    f"--web.external-url=http://{HOST}:{am_port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ],
                f"http://{HOST}:{am_port}",
                am_dir,
                session,
                env={
                    "ALERTMANAGER_BIN": alertmanager_bin,
                    "LLM_ALERTMANAGER_RUNTIME_DIR": str(runtime),
                    "SLACK_WEBHOOK_URL": slack.url,
                    "ALERT_WEBHOOK_URL": webhook.url,
                    "SMTP_SMARTHOST": smtp.url,
                    **env,
                },
            )
        )

        prometheus = None
        if exporter is not None:
            prometheus_bin = require_binary("prometheus")
            prom_port = free_port(HOST)
            prom_dir = workdir / "prometheus"
            prom_dir.mkdir()
            rules = write_rule_files(prom_dir / "rules", factor)
            prom_config = write_prometheus_config(
                prom_dir,
                exporter=exporter,
                alertmanager=f"{HOST}:{am_port}",
                prometheus=f"{HOST}:{prom_port}",
                rule_files=rules,
            )
            prometheus = await stack.enter_async_context(
                run_service(
                    "prometheus",
                    [
                        prometheus_bin,
                        f"--config.file={prom_config}",
                        f"--storage.tsdb.path={prom_dir / 'data'}",
                        f"--web.listen-address={HOST}:{prom_port}",
                        "--log.level=warn",
                    ],
                    f"http://{HOST}:{prom_port}",
                    prom_dir,
                    session,
                )
            )
        yield AlertingStack(
            prometheus=prometheus,
            alertmanager=am,
            webhook=webhook,
            slack=slack,
            smtp=smtp,
            session=session,
        )
