"""Optional auth for `GET /metrics`: config validation, 401/200 over HTTP, reload, no leaks."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from exporter import keys
from exporter.app import create_app
from exporter.auth import MetricsGuard
from exporter.config import ConfigError, MetricsAuthConfig, build_config
from tests._net import free_port
from tests._prom_fixture import PROMETHEUS, Process, http_json, wait_until
from tests._reliability_helpers import cli, stop, wait_http

Client = TestClient[web.Request, web.Application]
TOKEN = "metrics-TOKEN-7f3a9c"
TOKEN_B = "metrics-TOKEN-B-0d41"
PASSWORD = "pässwörd-91e2"  # non-ASCII: sent as UTF-8, as the challenge's charset says
ENV = {"METRICS_TOKEN": TOKEN, "METRICS_TOKEN_B": TOKEN_B, "METRICS_PASSWORD": PASSWORD}
SECRETS = (TOKEN, TOKEN_B, PASSWORD)
BEARER = {"bearer_token_env": "METRICS_TOKEN"}
BASIC = {"basic_username": "prometheus", "basic_password_env": "METRICS_PASSWORD"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


def raw_config(metrics_auth: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "monitoring_enabled": False,
        "ingest": {"token_env": None},
        "metrics_auth": metrics_auth,
    }


# --- config ---------------------------------------------------------------------------------
INVALID = [
    (
        {},
        {},
        ["metrics_auth: give bearer_token_env, or both basic_username and basic_password_env"],
    ),
    (
        BEARER | BASIC,
        ENV,
        ["metrics_auth: give bearer_token_env or basic_username + basic_password_env, not both"],
    ),
    (
        {"basic_username": "prometheus"},
        ENV,
        ["metrics_auth: give bearer_token_env, or both basic_username and basic_password_env"],
    ),
    (
        {"basic_password_env": "METRICS_PASSWORD"},
        ENV,
        ["metrics_auth: give bearer_token_env, or both basic_username and basic_password_env"],
    ),
    (BEARER, {}, ["metrics_auth.bearer_token_env: environment variable METRICS_TOKEN is not set "
                  "or empty"]),
    (BEARER, {"METRICS_TOKEN": "  "}, ["metrics_auth.bearer_token_env: environment variable "
                                       "METRICS_TOKEN is not set or empty"]),
    (BASIC, {}, ["metrics_auth.basic_password_env: environment variable METRICS_PASSWORD is not "
                 "set or empty"]),
    (
        {"bearer_token_env": TOKEN.replace("-", " ")},  # the token pasted in by mistake
        ENV,
        ["metrics_auth.bearer_token_env: must be the name of an environment variable (the secret "
         "goes in that variable)"],
    ),
    (
        {"basic_username": "a:b", "basic_password_env": "METRICS_PASSWORD"},
        ENV,
        ["metrics_auth.basic_username: must be 1-128 visible ASCII characters without ':'"],
    ),
    (
        {"bearer_token_env": "METRICS_TOKEN", "token": TOKEN},
        ENV,
        ["metrics_auth.token: unknown key"],
    ),
    (
        {"bearer_token_env": 12},
        ENV,
        ["metrics_auth.bearer_token_env: must be a valid string, got 12"],
    ),
    ("bearer", ENV, ["metrics_auth: must be a valid dictionary or instance of MetricsAuthConfig, "
                     "got 'bearer'"]),
]  # fmt: skip


@pytest.mark.parametrize(("auth", "env", "expected"), INVALID)
def test_invalid_metrics_auth_is_reported_at_its_path(
    auth: Any, env: dict[str, str], expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        build_config(raw_config(auth), env=env)
    assert info.value.problems == expected
    assert not any(secret in str(info.value) for secret in SECRETS)


def test_valid_forms_and_no_auth() -> None:
    assert build_config(raw_config(None), env={}).metrics_auth is None
    bearer = build_config(raw_config(BEARER), env=ENV).metrics_auth
    assert bearer == MetricsAuthConfig(bearer_token_env="METRICS_TOKEN")
    assert bearer.secret_env == "METRICS_TOKEN"
    assert build_config(raw_config(BASIC), env=ENV).metrics_auth.secret_env == "METRICS_PASSWORD"


def test_check_config_names_the_unset_variable(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(raw_config(BEARER)))
    env = {k: v for k, v in os.environ.items() if k != "METRICS_TOKEN"}
    run = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert "metrics_auth.bearer_token_env: environment variable METRICS_TOKEN" in run.stderr


# --- the guard on its own -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (None, False),
        ("", False),
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),  # the scheme is case-insensitive (RFC 9110)
        (f"Bearer  {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (TOKEN, False),
        (f"Basic {TOKEN}", False),
        (basic("prometheus", TOKEN), False),
        ("Bearer \udcff", False),
    ],
)
def test_bearer_guard(header: str | None, ok: bool) -> None:
    guard = MetricsGuard(MetricsAuthConfig(bearer_token_env="METRICS_TOKEN"), ENV)
    assert guard.allows(header) is ok


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (basic("prometheus", PASSWORD), True),
        ("basic " + basic("prometheus", PASSWORD).split()[1], True),
        (basic("prometheus", PASSWORD + "x"), False),
        (basic("Prometheus", PASSWORD), False),
        (basic("prometheus:" + PASSWORD, ""), False),
        (basic("", PASSWORD), False),
        ("Basic " + base64.b64encode(PASSWORD.encode()).decode(), False),  # no user at all
        ("Basic !!!not-base64!!!", False),
        ("Basic ", False),
        (f"Bearer {PASSWORD}", False),
    ],
)
def test_basic_guard(header: str, ok: bool) -> None:
    guard = MetricsGuard(MetricsAuthConfig(**BASIC), ENV)
    assert guard.allows(header) is ok


def test_no_settings_allows_everything() -> None:
    guard = MetricsGuard(None, {})
    assert not guard.enabled and guard.allows(None)


# --- over HTTP ------------------------------------------------------------------------------
async def exporter(
    aiohttp_client: Callable[..., Awaitable[Client]],
    auth: dict[str, Any] | None,
    path: Path | None = None,
) -> Client:
    raw = raw_config(auth)
    if path is not None:
        write(path, raw)
    config = build_config(raw, env=ENV)
    app = create_app(
        config, env=ENV, registry=CollectorRegistry(), config_path=str(path) if path else None
    )
    return await aiohttp_client(app)


async def status(client: Client, path: str, authorization: str | None = None) -> int:
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = await client.get(path, headers=headers)
    body = await resp.text()
    assert not any(secret in body or secret in str(resp.headers) for secret in SECRETS)
    if resp.status == 200 and path == "/metrics":
        assert "llm_exporter_build_info" in body
    return resp.status


@pytest.mark.parametrize(
    ("auth", "right", "wrong", "challenge"),
    [
        (BEARER, f"Bearer {TOKEN}", f"Bearer {TOKEN_B}", 'Bearer realm="llm-exporter"'),
        (
            BASIC,
            basic("prometheus", PASSWORD),
            basic("prometheus", "guess"),
            'Basic realm="llm-exporter", charset="UTF-8"',
        ),
    ],
    ids=["bearer", "basic"],
)
async def test_metrics_needs_the_credentials_and_nothing_else_does(
    aiohttp_client, caplog: pytest.LogCaptureFixture, auth, right, wrong, challenge
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await exporter(aiohttp_client, auth)
    for header in (None, wrong, "Bearer", "Basic Og=="):
        resp = await client.get(
            "/metrics", headers={} if header is None else {"Authorization": header}
        )
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == challenge
        assert "llm_" not in await resp.text()
    resp = await client.head("/metrics")
    assert resp.status == 401
    assert await status(client, "/metrics", right) == 200
    resp = await client.get(
        "/metrics", headers={"Authorization": right, "Accept": "application/openmetrics-text"}
    )
    assert resp.status == 200 and (await resp.text()).endswith("# EOF\n")
    # open: liveness, readiness, the JSON health document; the events API keeps its own token
    assert await status(client, "/-/healthy") == 200
    assert await status(client, "/-/ready") == 200
    assert await status(client, "/api/health") == 200
    resp = await client.post("/api/v1/events", json=[])
    assert resp.status == 200
    assert await status(client, "/nope") == 404
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(secret in logged for secret in SECRETS)
    secret = TOKEN if auth is BEARER else PASSWORD  # registered, so any log line is scrubbed
    assert client.app[keys.SECRETS].redact(f"x {secret} y") == "x [REDACTED] y"


async def test_without_metrics_auth_metrics_stays_open(aiohttp_client) -> None:
    client = await exporter(aiohttp_client, None)
    assert await status(client, "/metrics") == 200
    assert await status(client, "/metrics", "Bearer anything") == 200


async def test_reload_switches_token_form_and_off(aiohttp_client, tmp_path: Path) -> None:
    path = tmp_path / "exporter.yml"
    client = await exporter(aiohttp_client, BEARER, path)
    assert await status(client, "/metrics", f"Bearer {TOKEN}") == 200

    async def reload(auth: dict[str, Any] | None) -> tuple[int, Any]:
        write(path, raw_config(auth))
        resp = await client.post("/-/reload")
        return resp.status, await resp.json()

    assert (await reload({"bearer_token_env": "METRICS_TOKEN_B"}))[0] == 200
    assert await status(client, "/metrics", f"Bearer {TOKEN}") == 401
    assert await status(client, "/metrics", f"Bearer {TOKEN_B}") == 200

    code, body = await reload({"bearer_token_env": "NOT_SET_ANYWHERE"})  # refused: old one stays
    assert code == 400
    assert body["problems"] == [
        "metrics_auth.bearer_token_env: environment variable NOT_SET_ANYWHERE is not set or empty"
    ]
    assert await status(client, "/metrics", f"Bearer {TOKEN_B}") == 200
    assert await status(client, "/metrics") == 401

    assert (await reload(BASIC))[0] == 200
    assert await status(client, "/metrics", f"Bearer {TOKEN_B}") == 401
    assert await status(client, "/metrics", basic("prometheus", PASSWORD)) == 200
    assert client.app[keys.SECRETS].redact(PASSWORD) == "[REDACTED]"

    assert (await reload(None))[0] == 200
    assert await status(client, "/metrics") == 200


# --- a real Prometheus scraping a real `llm-exporter serve` ---------------------------------
@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="needs /usr/bin/prometheus")
@pytest.mark.parametrize("form", ["bearer", "basic"])
def test_prometheus_scrapes_with_credentials_and_is_refused_without(
    tmp_path: Path, form: str
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text((TOKEN if form == "bearer" else PASSWORD) + "\n")
    port = free_port()
    config = tmp_path / "exporter.yml"
    config.write_text(yaml.safe_dump(raw_config(BEARER if form == "bearer" else BASIC)))
    proc = cli(["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"], env=ENV)
    prom = None
    try:
        wait_http(f"http://127.0.0.1:{port}/-/healthy", proc)
        if form == "bearer":
            creds: dict[str, Any] = {"authorization": {"credentials_file": str(secret_file)}}
        else:
            creds = {"basic_auth": {"username": "prometheus", "password_file": str(secret_file)}}
        target = {"static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        prom_port = free_port()
        scrape = {"scrape_interval": "1s", "scrape_timeout": "1s"}
        prom_config = {
            "scrape_configs": [
                {"job_name": "with", **scrape, **creds, **target},
                {"job_name": "without", **scrape, **target},
            ]
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        prom = Process(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            tmp_path / "prometheus.log",
        )

        def targets() -> dict[str, dict[str, Any]] | None:
            prom.check_alive()
            got = http_json(f"http://127.0.0.1:{prom_port}/api/v1/targets")["data"]
            by_job = {t["labels"]["job"]: t for t in got["activeTargets"]}
            return by_job if all(t["health"] != "unknown" for t in by_job.values()) else None

        by_job = wait_until(lambda: (t := targets()) and len(t) == 2 and t, 30, "two scrapes")
        assert by_job["with"]["health"] == "up", by_job["with"]["lastError"]
        assert by_job["without"]["health"] == "down"
        assert "401" in by_job["without"]["lastError"]
        query = f"http://127.0.0.1:{prom_port}/api/v1/query?query=llm_exporter_build_info"
        assert wait_until(lambda: http_json(query)["data"]["result"], 10, "a scraped series")
    finally:
        if prom is not None:
            prom.close()
        assert stop(proc) == 0
    logs = (proc.stderr.read() if proc.stderr else b"").decode()
    assert not any(secret in logs for secret in SECRETS)
