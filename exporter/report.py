"""`llm-exporter report`: a usage report from Prometheus, and an optional daily schedule.

The report is the `/api/metrics` summary over `--period` plus the alerts firing now, rendered
as Markdown, JSON or HTML. `run_report_schedule` builds it once a day (at `REPORT_DAILY_AT`,
`HH:MM[:SS]` UTC, default 08:00) and sends it to the destinations the environment configures
(see `exporter.webapi.deliver`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from exporter import __version__
from exporter.config import Config, ConfigError, load_config
from exporter.durations import parse_duration
from exporter.webapi.deliver import deliver_report, destinations
from exporter.webapi.live import firing_alerts
from exporter.webapi.promql import AlertmanagerClient, PromClient, SourceError
from exporter.webapi.render import RENDERERS
from exporter.webapi.summary import build_summary
from exporter.webapi.values import Scope

log = logging.getLogger("exporter.report")
DEFAULT_DAILY_AT = "08:00"
DAY = 86400


def _period(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_report_parser(subparsers: Any) -> None:
    """Register `report` on the CLI's subparsers; `cmd_report` runs it."""
    p = subparsers.add_parser("report", help="a usage report from Prometheus")
    p.add_argument("--period", type=_period, default=86400.0, help="e.g. 24h, 7d (default 24h)")
    p.add_argument("--format", choices=sorted(RENDERERS), default="markdown")
    p.add_argument("--config", default=os.environ.get("LLM_EXPORTER_CONFIG"), help="YAML config")
    p.add_argument("--prometheus-url", help="default: prometheus_url from config or PROMETHEUS_URL")
    p.add_argument("--alertmanager-url", help="default: alertmanager_url or ALERTMANAGER_URL")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.add_argument("--time", type=float, help="evaluate at this unix time (default now)")
    p.add_argument("--send", action="store_true", help="also deliver to configured destinations")


async def build_report(
    config: Config,
    *,
    seconds: float = DAY,
    at: float | None = None,
    prometheus_url: str | None = None,
    alertmanager_url: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The summary document and the firing alerts; `SourceError` when Prometheus fails."""
    prom_url = prometheus_url or config.prometheus_url
    if not prom_url:
        raise SourceError("prometheus", None, "no Prometheus configured (use --prometheus-url)")
    am_url = alertmanager_url or config.alertmanager_url
    headers = {"User-Agent": f"llm-exporter/{__version__} report"}
    async with aiohttp.ClientSession(headers=headers) as session:
        prom = PromClient(session, prom_url)
        am = AlertmanagerClient(session, am_url) if am_url else None
        doc = await build_summary(prom, Scope.from_config(config), seconds=seconds, at=at)
        alerts = await firing_alerts(am, prom, doc["evaluated_at"])
    return doc, alerts


def cmd_report(args: argparse.Namespace) -> int:
    """Print or write the report; 1 when Prometheus fails or the config is invalid."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 1

    async def run() -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        doc, alerts = await build_report(
            config,
            seconds=args.period,
            at=args.time,
            prometheus_url=args.prometheus_url,
            alertmanager_url=args.alertmanager_url,
        )
        sent = await deliver_report(doc, alerts, os.environ) if args.send else {}
        return doc, alerts, sent

    try:
        doc, alerts, sent = asyncio.run(run())
    except SourceError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    text = RENDERERS[args.format](doc, alerts)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    for name, result in sent.items():
        print(f"report: {name}: {result}", file=sys.stderr)
    if args.send and not sent:
        print("report: --send: no destination configured", file=sys.stderr)
    return 1 if any(r != "sent" for r in sent.values()) else 0


def parse_daily_at(value: str) -> int:
    """`HH:MM` or `HH:MM:SS` (UTC) to seconds after midnight; ValueError otherwise."""
    parts = value.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"expected HH:MM or HH:MM:SS, got {value!r}")
    h, m, s = (int(p) for p in [*parts, "0"][:3])
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"not a time of day: {value!r}")
    return h * 3600 + m * 60 + s


def next_run(now: float, daily_at: int) -> float:
    """The first moment after `now` that is `daily_at` seconds past a UTC midnight."""
    midnight = now - now % DAY
    candidate = midnight + daily_at
    return candidate if candidate > now else candidate + DAY


async def run_report_schedule(
    config: Config, stop: asyncio.Event, *, env: Mapping[str, str] | None = None
) -> None:
    """Send the last 24 hours' report every day at `REPORT_DAILY_AT` until `stop` is set."""
    env = os.environ if env is None else env
    if not destinations(env):
        log.info("daily report: no destination configured (SLACK_WEBHOOK_URL, ...); not scheduled")
        return
    try:
        daily_at = parse_daily_at(env.get("REPORT_DAILY_AT", "").strip() or DEFAULT_DAILY_AT)
    except ValueError as exc:
        log.error("daily report: REPORT_DAILY_AT: %s; not scheduled", exc)
        return
    target = next_run(time.time(), daily_at)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(target - time.time(), 0))
            return
        try:
            doc, alerts = await build_report(config)
        except SourceError as exc:
            log.warning("daily report: %s", exc)
        else:
            results = await deliver_report(doc, alerts, env)
            log.info("daily report: %s", ", ".join(f"{k} {v}" for k, v in results.items()))
        target = next_run(max(time.time(), target), daily_at)  # never twice for one day
