"""Deliver a report to Slack, a generic webhook and email; each destination comes from env.

`SLACK_WEBHOOK_URL` (Slack incoming webhook), `REPORT_WEBHOOK_URL` (JSON POST), and email to
`ALERT_EMAIL` (comma-separated) through `SMTP_HOST`:`SMTP_PORT` (optional `SMTP_USERNAME`,
`SMTP_PASSWORD`, `SMTP_FROM`, `SMTP_STARTTLS=true`). Webhook URLs hold secrets: they are never
logged or included in errors; a failed destination is reported by name.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

import aiohttp

from exporter import __version__
from exporter.webapi.render import title, to_chat, to_html, to_markdown

log = logging.getLogger("exporter.report")
TIMEOUT = 15.0


def destinations(env: Mapping[str, str]) -> list[str]:
    """Names of the destinations the environment configures."""
    out = []
    if env.get("SLACK_WEBHOOK_URL", "").strip():
        out.append("slack")
    if env.get("REPORT_WEBHOOK_URL", "").strip():
        out.append("webhook")
    if env.get("ALERT_EMAIL", "").strip() and env.get("SMTP_HOST", "").strip():
        out.append("email")
    return out


async def _post(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> None:
    async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(TIMEOUT)) as resp:
        if resp.status >= 300:
            raise RuntimeError(f"HTTP {resp.status}")


def _slack_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _send_email(env: Mapping[str, str], subject: str, text: str, html: str) -> None:
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = env.get("SMTP_FROM", "").strip() or "llm-exporter@localhost"
    msg["To"] = ", ".join(a.strip() for a in env["ALERT_EMAIL"].split(",") if a.strip())
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    host, port = env["SMTP_HOST"].strip(), int(env.get("SMTP_PORT", "").strip() or 25)
    smtp_cls = smtplib.SMTP_SSL if port == 465 else smtplib.SMTP
    with smtp_cls(host, port, timeout=TIMEOUT) as smtp:
        if port != 465 and env.get("SMTP_STARTTLS", "").strip().lower() in ("1", "true", "yes"):
            smtp.starttls()
        if env.get("SMTP_USERNAME", "").strip():
            smtp.login(env["SMTP_USERNAME"].strip(), env.get("SMTP_PASSWORD", ""))
        smtp.send_message(msg)


async def deliver_report(
    doc: dict[str, Any], alerts: dict[str, Any] | None, env: Mapping[str, str]
) -> dict[str, str]:
    """Send the report everywhere configured; `{destination: "sent" | "failed: <why>"}`."""
    results: dict[str, str] = {}
    wanted = destinations(env)
    async with aiohttp.ClientSession(headers={"User-Agent": f"llm-exporter/{__version__}"}) as s:
        for name in wanted:
            try:
                if name == "slack":
                    text = _slack_text(to_chat(doc, alerts))
                    await _post(s, env["SLACK_WEBHOOK_URL"].strip(), {"text": text})
                elif name == "webhook":
                    payload = {
                        "type": "llm_exporter_report",
                        "title": title(doc),
                        "markdown": to_markdown(doc, alerts),
                        "report": {**doc, "alerts": alerts},
                    }
                    await _post(s, env["REPORT_WEBHOOK_URL"].strip(), payload)
                else:
                    await asyncio.to_thread(
                        _send_email, env, title(doc), to_markdown(doc, alerts), to_html(doc, alerts)
                    )
                results[name] = "sent"
            except (aiohttp.ClientError, TimeoutError, OSError, RuntimeError, ValueError) as exc:
                why = type(exc).__name__ if not isinstance(exc, RuntimeError) else str(exc)
                results[name] = f"failed: {why}"
                log.warning("report delivery to %s failed (%s)", name, why)
    return results
