"""Reports as Markdown, HTML, JSON or a short chat message, from one summary document."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any

from exporter.webapi.page import DASH, fmt


@dataclass
class Section:
    """One titled table of a report (or a bullet list when `header` is empty)."""

    title: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


def count(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,.0f}" if abs(value - round(value)) < 0.05 else f"{value:,.1f}"


def _latencies(d: dict[str, Any], suffix: str = "_latency") -> str:
    return " / ".join(fmt(d.get(f"{q}{suffix}"), "seconds") for q in ("p50", "p95", "p99"))


def sections(doc: dict[str, Any], alerts: dict[str, Any] | None) -> list[Section]:
    """The report's content; every renderer shows the same sections."""
    t, cost, sess = doc["totals"], doc["cost_analytics"], doc["session_metrics"]
    tokens = ", ".join(f"{k} {count(v)}" for k, v in t["tokens"].items() if k != "total" and v)
    out = [
        Section(
            "Totals",
            ["Metric", "Value"],
            [
                ["Requests", f"{count(t['requests'])} ({count(t['failed_requests'])} failed)"],
                ["Success rate", fmt(t["success_rate"], "percent")],
                ["Average latency", fmt(t["avg_latency"], "seconds")],
                ["Latency p50 / p95 / p99", _latencies(t)],
                ["Tokens", f"{count(t['tokens']['total'])}" + (f" ({tokens})" if tokens else "")],
                ["Cost", fmt(t["cost_usd"], "usd")],
                ["Projected monthly cost", fmt(cost["projected_monthly_cost_usd"], "usd")],
                ["Active sessions", count(doc["system_metrics"]["active_sessions"])],
            ],
        )
    ]
    rows = []
    for pid, p in doc["providers"].items():
        if not p["requests"] and not p["api_key_configured"]:
            continue
        status = {True: "up", False: "down", None: DASH}[p["up"]]
        if p["api_key_configured"] is False:
            status = "not configured"
        rows.append(
            [pid, status, count(p["requests"]), fmt(p["success_rate"], "percent"),
             _latencies(p), count(p["tokens"]["total"]), fmt(p["cost_usd"], "usd"),
             ", ".join(p["models_used"]) or DASH]
        )  # fmt: skip
    header = ["Provider", "Status", "Requests", "Success", "p50 / p95 / p99", "Tokens", "Cost"]
    out.append(Section("Providers", [*header, "Models"], rows))
    errors = [[o, count(n)] for o, n in doc["error_breakdown"].items()]
    out.append(Section("Errors", ["Outcome", "Requests"], errors))
    ended = sess["sessions_ended"]
    out.append(
        Section(
            "Sessions",
            ["Metric", "Value"],
            [
                ["Started", count(sess["sessions_started"])],
                [
                    "Ended",
                    f"{count(ended['completed'])} completed, {count(ended['expired'])} expired",
                ],
                ["Average duration", fmt(sess["avg_duration"], "seconds")],
                ["Duration p50 / p95 / p99", _latencies(sess, "_duration")],
            ],
        )
    )
    change = cost["trend_change_ratio"]
    trend = cost["trend"] + (f" ({change * 100:+.1f} %)" if change is not None else "")
    out.append(
        Section(
            "Cost",
            ["Metric", "Value"],
            [[f"Cost {p}", fmt(v, "usd")] for p, v in cost["cost_by_provider"].items() if v]
            + [
                [
                    "Last hour / previous hour",
                    f"{fmt(cost['cost_last_hour_usd'], 'usd')} / "
                    f"{fmt(cost['cost_previous_hour_usd'], 'usd')}, {trend}",
                ],
                [
                    "Projected daily / monthly",
                    f"{fmt(cost['projected_daily_cost_usd'], 'usd')} / "
                    f"{fmt(cost['projected_monthly_cost_usd'], 'usd')}",
                ],
            ],
        )
    )
    items = (alerts or {}).get("items", [])
    lines = [[_alert_line(a)] for a in items] or [
        ["unknown: " + alerts["error"] if alerts and alerts.get("error") else "none"]
    ]
    out.append(Section("Firing alerts", [], lines))
    return out


def _alert_line(a: dict[str, Any]) -> str:
    where = f" ({a['provider']})" if a.get("provider") else ""
    sev = f" [{a['severity']}]" if a.get("severity") else ""
    summary = f": {a['summary']}" if a.get("summary") else ""
    return f"{a.get('alertname') or 'alert'}{where}{sev}{summary}"


def title(doc: dict[str, Any]) -> str:
    return f"LLM usage report, {doc['period'].replace('_', ' ')}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: dict[str, Any], alerts: dict[str, Any] | None) -> str:
    lines = [f"# {title(doc)}", "", f"Evaluated at {doc['timestamp']} from Prometheus.", ""]
    for s in sections(doc, alerts):
        lines += [f"## {s.title}", ""]
        if not s.header:
            lines += [f"- {_md_cell(r[0])}" for r in s.rows]
        elif not s.rows:
            lines.append("none")
        else:
            lines.append("| " + " | ".join(s.header) + " |")
            lines.append("|" + "---|" * len(s.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in s.rows]
        lines.append("")
    return "\n".join(lines)


def to_html(doc: dict[str, Any], alerts: dict[str, Any] | None) -> str:
    head = escape(title(doc))
    parts = [
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{head}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"><style>'
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
        "text-align:left}</style></head><body>",
        f"<h1>{head}</h1><p>Evaluated at {escape(doc['timestamp'])} from Prometheus.</p>",
    ]
    for s in sections(doc, alerts):
        parts.append(f"<h2>{escape(s.title)}</h2>")
        if not s.header:
            parts.append("<ul>" + "".join(f"<li>{escape(r[0])}</li>" for r in s.rows) + "</ul>")
        elif not s.rows:
            parts.append("<p>none</p>")
        else:
            th = "".join(f"<th>{escape(h)}</th>" for h in s.header)
            trs = "".join(
                "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in s.rows
            )
            parts.append(f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_json(doc: dict[str, Any], alerts: dict[str, Any] | None) -> str:
    return json.dumps({**doc, "alerts": alerts}, indent=2) + "\n"


def to_chat(doc: dict[str, Any], alerts: dict[str, Any] | None) -> str:
    """A few lines for Slack: the totals, then one line per provider with traffic."""
    t = doc["totals"]
    lines = [
        f"*{title(doc)}*",
        f"Requests {count(t['requests'])}, success {fmt(t['success_rate'], 'percent')}, "
        f"p95 {fmt(t['p95_latency'], 'seconds')}, cost {fmt(t['cost_usd'], 'usd')} "
        f"(projected monthly {fmt(doc['cost_analytics']['projected_monthly_cost_usd'], 'usd')})",
    ]
    for pid, p in doc["providers"].items():
        if p["requests"]:
            lines.append(
                f"- {pid}: {count(p['requests'])} requests, "
                f"{fmt(p['success_rate'], 'percent')} ok, cost {fmt(p['cost_usd'], 'usd')}"
            )
    count_alerts = (alerts or {}).get("count")
    lines.append(f"Firing alerts: {DASH if count_alerts is None else count_alerts}")
    return "\n".join(lines)


RENDERERS = {"markdown": to_markdown, "html": to_html, "json": to_json}
