"""Live documents: provider statuses, firing alerts and the mobile summary.

"Now" means the last `LIVE_WINDOW` of traffic, the last probe, and cost since UTC midnight.
Firing alerts come from Alertmanager's API v2 when it is configured, otherwise from
Prometheus's own `ALERTS` series; an alert source that fails leaves `alerts_count` null.
"""

from __future__ import annotations

import time
from typing import Any

from exporter.health import overall_status
from exporter.webapi.promql import (
    MAX_ALERTS,
    AlertmanagerClient,
    PromClient,
    SourceError,
    summarize_alert,
)
from exporter.webapi.values import Scope, by_provider, iso, ratio, rnd, scalar

LIVE_WINDOW = "5m"
DAY = 86400


def live_queries(today_seconds: int) -> dict[str, str]:
    """Named PromQL expressions for the live view."""
    w = LIVE_WINDOW
    dur = f"rate(llm_request_duration_seconds_bucket[{w}])"
    return {
        "up": "max by (provider) (llm_provider_up)",
        "key": "max by (provider) (llm_provider_api_key_configured)",
        "probe": 'max by (provider) (llm_probe_phase_seconds{phase="total"})',
        "p50": f"histogram_quantile(0.5, sum by (provider, le) ({dur}))",
        "p95": f"histogram_quantile(0.95, sum by (provider, le) ({dur}))",
        "rpm": f"sum by (provider) (rate(llm_requests_total[{w}])) * 60",
        "epm": f'sum by (provider) (rate(llm_requests_total{{outcome!="success"}}[{w}])) * 60',
        "cost_today": f"sum by (provider) (increase(llm_cost_usd_total[{today_seconds}s]))",
        "req_24h": "sum by (provider) (increase(llm_requests_total[24h]))",
        "sessions_active": "sum(llm_sessions_active)",
    }


def seconds_since_midnight(at: float) -> int:
    """Whole seconds since 00:00 UTC of `at`'s day, at least 1 (a PromQL range cannot be 0)."""
    return max(1, int(at - (at // DAY) * DAY))


def _status(up: float | None, key: float | None) -> str:
    if key is not None and key < 1:
        return "not_configured"
    if up is None:
        return "unknown"
    return "up" if up >= 1 else "down"


async def firing_alerts(
    am: AlertmanagerClient | None, prom: PromClient, at: float | None = None
) -> dict[str, Any]:
    """`{count, source, items, error?}`: Alertmanager when configured, else Prometheus `ALERTS`."""
    source = "alertmanager" if am is not None else "prometheus"
    try:
        if am is not None:
            items = await am.firing()
        else:
            samples = await prom.query('ALERTS{alertstate="firing"}', at)
            items = [summarize_alert(labels, {}) for labels, _ in samples]
    except SourceError as exc:
        return {"count": None, "source": source, "items": [], "error": exc.detail}
    return {"count": len(items), "source": source, "items": items[:MAX_ALERTS]}


async def live_document(
    prom: PromClient, am: AlertmanagerClient | None, scope: Scope, at: float | None = None
) -> dict[str, Any]:
    """Provider statuses, firing alerts and the mobile summary, all evaluated at `at`."""
    at = round(time.time() if at is None else at, 3)  # Prometheus evaluates at ms precision
    res = await prom.queries(live_queries(seconds_since_midnight(at)), at)
    alerts = await firing_alerts(am, prom, at)
    r = {name: by_provider(samples, scope) for name, samples in res.items()}
    providers: dict[str, Any] = {}
    for pid in scope.providers:
        up, key = r["up"].get(pid), r["key"].get(pid)
        rpm, epm = r["rpm"].get(pid, 0.0), r["epm"].get(pid, 0.0)
        providers[pid] = {
            "status": _status(up, key),
            "healthy": None if up is None else up >= 1,
            "api_key_configured": None if key is None else key >= 1,
            "probe_latency_seconds": rnd(r["probe"].get(pid), 4),
            "p50_latency_seconds": rnd(r["p50"].get(pid), 4),
            "p95_latency_seconds": rnd(r["p95"].get(pid), 4),
            "requests_per_minute": rnd(rpm, 3),
            "error_rate": ratio(epm, rpm),
            "cost_today_usd": rnd(r["cost_today"].get(pid, 0.0)),
        }
    known = {p: s for p, s in providers.items() if s["api_key_configured"] is not None}
    status = "unknown"
    if known:
        status = overall_status(
            {p: {"api_key_configured": s["api_key_configured"], "healthy": bool(s["healthy"])}
             for p, s in known.items()}
        )  # fmt: skip
    totals = r["req_24h"]
    top = max(totals, key=lambda p: totals[p]) if any(v > 0 for v in totals.values()) else None
    rpm_all, epm_all = sum(r["rpm"].values()), sum(r["epm"].values())
    mobile = {
        "status": status,
        "timestamp": iso(at),
        "evaluated_at": at,
        "active_sessions": rnd(scalar(res["sessions_active"]), 3),
        "requests_per_minute": rnd(rpm_all, 3),
        "error_rate": ratio(epm_all, rpm_all),
        "top_provider": top,
        "cost_today": rnd(sum(r["cost_today"].values())),
        "alerts_count": alerts["count"],
    }
    return {"timestamp": iso(at), "providers": providers, "alerts": alerts, "mobile": mobile}
