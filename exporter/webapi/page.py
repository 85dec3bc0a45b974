"""Server-side rendering of the status page from a live document (see `live.py`)."""

from __future__ import annotations

import string
from html import escape
from importlib import resources
from typing import Any

# Each card field: (key in the provider status, label, format). app.js uses the same keys.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("probe_latency_seconds", "Probe", "seconds"),
    ("p95_latency_seconds", "p95 (5m)", "seconds"),
    ("requests_per_minute", "Req/min", "number"),
    ("error_rate", "Errors (5m)", "percent"),
    ("cost_today_usd", "Cost today", "usd"),
)
DASH = "\u2013"


def fmt(value: Any, kind: str) -> str:
    """A value as the page shows it; app.js formats the same way."""
    if value is None:
        return DASH
    if kind == "seconds":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if kind == "percent":
        return f"{value * 100:.1f} %"
    if kind == "usd":
        return f"${value:.2f}" if value >= 1 or value == 0 else f"${value:.4f}"
    return f"{value:.1f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def _card(pid: str, status: dict[str, Any]) -> str:
    state = escape(str(status.get("status", "unknown")))
    rows = "".join(
        f'<dt>{label}</dt><dd data-field="{key}">{escape(fmt(status.get(key), kind))}</dd>'
        for key, label, kind in FIELDS
    )
    label = state.replace("_", " ")
    return (
        f'    <li class="card" data-provider="{escape(pid)}" data-status="{state}">'
        f'<h3>{escape(pid)} <span class="pill" data-status="{state}">{label}</span></h3>'
        f"<dl>{rows}</dl></li>"
    )


def _alert(alert: dict[str, Any]) -> str:
    parts = [alert.get("alertname") or "alert"]
    if alert.get("provider"):
        parts.append(alert["provider"])
    text = " \u00b7 ".join(escape(p) for p in parts)
    sev = escape(alert.get("severity") or "none")
    summary = f"<span>{escape(alert['summary'])}</span>" if alert.get("summary") else ""
    return f'    <li data-severity="{sev}"><strong>{text}</strong> {summary}</li>'


def render_page(
    doc: dict[str, Any] | None, error: str | None, *, providers: list[str], refresh: float = 5.0
) -> str:
    """The HTML page: current values when `doc` is given, else placeholders and `error`."""
    template = string.Template(
        resources.files("exporter").joinpath("static/index.html").read_text(encoding="utf-8")
    )
    statuses = (doc or {}).get("providers") or {p: {"status": "unknown"} for p in providers}
    mobile = (doc or {}).get("mobile") or {}
    alerts = (doc or {}).get("alerts") or {}
    items = [_alert(a) for a in alerts.get("items", [])]
    return template.substitute(
        refresh=escape(f"{refresh:g}"),
        status=escape(mobile.get("status", "unknown")),
        banner=escape(error or ""),
        banner_hidden="" if error else " hidden",
        cost_today=escape(fmt(mobile.get("cost_today"), "usd")),
        rpm=escape(fmt(mobile.get("requests_per_minute"), "number")),
        error_rate=escape(fmt(mobile.get("error_rate"), "percent")),
        sessions=escape(fmt(mobile.get("active_sessions"), "number")),
        alerts_count=escape(fmt(alerts.get("count"), "number")),
        provider_cards="\n".join(_card(p, s) for p, s in statuses.items()),
        alert_items="\n".join(items) or '    <li class="none">none</li>',
        updated=escape(mobile.get("timestamp", DASH)),
    )
