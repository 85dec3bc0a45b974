"""`llm-exporter report` against a real Prometheus, delivery to local sinks, the daily schedule."""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import logging
import time
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _net import free_port
from _prom_fixture import Prometheus, shared_fixture_stack
from aiohttp import web
from aiosmtpd.controller import Controller

from exporter.config import build_config
from exporter.report import (
    add_report_parser,
    build_report,
    cmd_report,
    next_run,
    parse_daily_at,
    run_report_schedule,
)

SECRET_PATH = "/services/T000/B000/s3cr3t-slack-token"


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Prometheus, float]:
    return shared_fixture_stack(request, tmp_path_factory)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("PROMETHEUS_URL", "ALERTMANAGER_URL", "LLM_EXPORTER_CONFIG", "SLACK_WEBHOOK_URL",
                "REPORT_WEBHOOK_URL", "ALERT_EMAIL", "SMTP_HOST", "REPORT_DAILY_AT"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)


def report(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_report_parser(parser.add_subparsers(dest="command"))
    return cmd_report(parser.parse_args(["report", *argv]))


@pytest.mark.e2e
def test_json_report(stack, tmp_path: Path) -> None:
    prom, at = stack
    out = tmp_path / "report.json"
    rc = report("--prometheus-url", prom.url, "--time", str(at), "--format", "json", "-o", str(out))
    doc = json.loads(out.read_text())
    assert rc == 0 and doc["period"] == "last_24h"
    assert doc["totals"]["requests"] == 165 and doc["totals"]["cost_usd"] == pytest.approx(2.5)
    assert doc["providers"]["openai"]["p95_latency"] == pytest.approx(3.5)
    assert doc["alerts"]["count"] == 1 and doc["alerts"]["source"] == "prometheus"


@pytest.mark.e2e
def test_markdown_report(stack, capsys: pytest.CaptureFixture[str]) -> None:
    prom, at = stack
    assert report("--prometheus-url", prom.url, "--time", str(at), "--period", "7d") == 0
    md = capsys.readouterr().out
    assert md.startswith("# LLM usage report, last 7d\n")
    assert "| Requests | 165 (15 failed) |" in md
    assert "| openai | up | 110 | 90.9 % | 750 ms / 3.50 s / 4.70 s | 17,000 | $1.75 |" in md
    assert "| anthropic | down | 55 |" in md and "| mistral |" not in md  # no key, no traffic
    assert "| rate_limit | 6 |" in md and "| other | 5 |" in md
    assert "| Projected daily / monthly | $0.3571 / $10.71 |" in md  # $2.50 over 7 days
    assert "- FixtureAlwaysFiring (openai) [warning]" in md


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.cells: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in ("meta", "br", "link"):
            self.stack.append(tag)
        self.tables += tag == "table"

    def handle_endtag(self, tag: str) -> None:
        assert self.stack.pop() == tag, f"</{tag}> closes something else"

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "td":
            self.cells.append(data)


@pytest.mark.e2e
def test_html_report(stack, tmp_path: Path) -> None:
    prom, at = stack
    out = tmp_path / "report.html"
    assert (
        report("--prometheus-url", prom.url, "--time", str(at), "--format", "html", "-o", str(out))
        == 0
    )
    parser = _Tags()
    parser.feed(out.read_text())
    assert parser.stack == [] and parser.tables == 5  # well nested; totals..cost tables
    assert "openai" in parser.cells and "$2.50" in parser.cells


def test_report_without_prometheus(capsys: pytest.CaptureFixture[str]) -> None:
    assert report() == 1
    assert "no Prometheus configured" in capsys.readouterr().err
    port = free_port()
    assert report("--prometheus-url", f"http://u:pw-s3cr3t@127.0.0.1:{port}") == 1
    err = capsys.readouterr().err
    assert "not reachable" in err and "pw-s3cr3t" not in err and "Traceback" not in err
    with pytest.raises(SystemExit):
        report("--period", "a while")


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
async def sinks(aiohttp_server) -> Any:
    """A webhook sink (Slack path + generic path, one failing path) and an SMTP sink."""
    received: dict[str, list[Any]] = {"slack": [], "hook": []}

    async def record(request: web.Request) -> web.Response:
        name = "slack" if request.path == SECRET_PATH else "hook"
        received[name].append(await request.json())
        return web.Response(text="ok")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post(SECRET_PATH, record)
    app.router.add_post("/hook", record)
    app.router.add_post("/broken", broken)
    server = await aiohttp_server(app, host="127.0.0.1")
    mailbox = _Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(smtp.start)
    env = {
        "SLACK_WEBHOOK_URL": str(server.make_url(SECRET_PATH)),
        "REPORT_WEBHOOK_URL": str(server.make_url("/hook")),
        "ALERT_EMAIL": "ops@example.test, oncall@example.test",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
    }
    yield env, received, mailbox, server
    await asyncio.to_thread(smtp.stop)


@pytest.mark.e2e
async def test_delivery_to_slack_webhook_and_email(stack, sinks) -> None:
    from exporter.webapi.deliver import deliver_report

    prom, at = stack
    env, received, mailbox, _ = sinks
    config = build_config({"prometheus_url": prom.url}, env={})
    doc, alerts = await build_report(config, at=at)
    assert await deliver_report(doc, alerts, env) == {
        "slack": "sent", "webhook": "sent", "email": "sent",
    }  # fmt: skip
    slack = received["slack"][0]["text"]
    assert slack.startswith("*LLM usage report, last 24h*") and "Requests 165" in slack
    hook = received["hook"][0]
    assert hook["type"] == "llm_exporter_report" and hook["report"]["totals"]["requests"] == 165
    assert "| Requests | 165 (15 failed) |" in hook["markdown"]
    [envelope] = mailbox.messages
    assert envelope.rcpt_tos == ["ops@example.test", "oncall@example.test"]
    msg = email.message_from_bytes(envelope.content)
    assert msg["Subject"] == "LLM usage report, last 24h"
    types = [part.get_content_type() for part in msg.walk()]
    assert "text/plain" in types and "text/html" in types


@pytest.mark.e2e
async def test_failed_destination_is_named_not_leaked(stack, sinks, caplog) -> None:
    from exporter.webapi.deliver import deliver_report

    prom, at = stack
    env, _, _, server = sinks
    env = {"SLACK_WEBHOOK_URL": str(server.make_url(SECRET_PATH)).replace("T000", "T404"),
           "REPORT_WEBHOOK_URL": str(server.make_url("/broken"))}  # fmt: skip
    doc, alerts = await build_report(build_config({"prometheus_url": prom.url}, env={}), at=at)
    with caplog.at_level(logging.WARNING):
        result = await deliver_report(doc, alerts, env)
    assert result == {"slack": "failed: HTTP 404", "webhook": "failed: HTTP 500"}
    assert "s3cr3t" not in caplog.text and "delivery to slack failed" in caplog.text


def test_daily_time_parsing_and_next_run() -> None:
    assert parse_daily_at("08:00") == 8 * 3600 and parse_daily_at("23:59:30") == 86370
    for bad in ("8", "24:00", "12:60", "ab:cd", "1:2:3:4"):
        with pytest.raises(ValueError):
            parse_daily_at(bad)
    noon = datetime(2026, 3, 1, 12, tzinfo=UTC).timestamp()
    assert next_run(noon, 13 * 3600) == noon + 3600
    assert next_run(noon, 12 * 3600) == noon + 86400  # exactly now: tomorrow, never twice
    assert next_run(noon, 8 * 3600) == noon + 20 * 3600


@pytest.mark.e2e
async def test_schedule_sends_once_at_the_daily_time(stack, sinks) -> None:
    prom, _ = stack
    env, received, mailbox, _ = sinks
    when = datetime.fromtimestamp(time.time() + 2, UTC).strftime("%H:%M:%S")
    stop = asyncio.Event()
    config = build_config({"prometheus_url": prom.url}, env={})
    task = asyncio.create_task(
        run_report_schedule(config, stop, env={**env, "REPORT_DAILY_AT": when})
    )
    for _ in range(100):  # up to 10 s
        if received["hook"] and received["slack"] and mailbox.messages:
            break
        await asyncio.sleep(0.1)
    assert len(received["hook"]) == len(received["slack"]) == len(mailbox.messages) == 1
    assert received["hook"][0]["report"]["period"] == "last_24h"
    stop.set()
    await asyncio.wait_for(task, 2)  # stops promptly; the next run would be tomorrow


async def test_schedule_without_destinations_returns() -> None:
    config = build_config({}, env={})
    await asyncio.wait_for(run_report_schedule(config, asyncio.Event(), env={}), 1)
