"""The original spec's `/api/metrics` summary, computed by PromQL over a period (default 24h).

Every number comes from one set of instant queries evaluated at the same time against raw
metrics (no recording rules). Label values are mapped onto the configured providers, their
allow-listed models (else `other`) and the closed outcome set, so the document stays bounded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from exporter.durations import format_duration
from exporter.vocab import Reason, TokenType
from exporter.webapi.promql import PromClient, Sample
from exporter.webapi.values import OTHER, Scope, by_provider, iso, ratio, rnd, scalar

OUTCOMES = frozenset({"success", *(r.value for r in Reason)})
TOKEN_TYPES: tuple[str, ...] = tuple(t.value for t in TokenType)
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
MONTH_DAYS = 30
TREND_FLAT = 0.05  # a change of less than 5 % hour over hour is "flat"
PERIODS: dict[str, float] = {"last_1h": 3600, "last_24h": 86400, "last_7d": 7 * 86400}


def period_name(seconds: float) -> str:
    """`last_24h` style: a name from PERIODS, else the duration spelled out."""
    name = next((k for k, v in PERIODS.items() if v == seconds), None)
    return name or f"last_{format_duration(seconds)}"


def summary_queries(window: str, scope: Scope) -> dict[str, str]:
    """Named PromQL expressions over `window` (a PromQL duration such as `86400s`).

    Totals across providers are restricted to the configured ones, like the per-provider data.
    """
    inc = f"[{window}]"
    sel = scope.selector()
    q: dict[str, str] = {
        "req_outcome": f"sum by (provider, outcome) (increase(llm_requests_total{inc}))",
        "req_model": f"sum by (provider, model) (increase(llm_requests_total{inc}))",
        "lat_sum": f"sum by (provider) (increase(llm_request_duration_seconds_sum{inc}))",
        "lat_count": f"sum by (provider) (increase(llm_request_duration_seconds_count{inc}))",
        "tokens": f"sum by (provider, token_type) (increase(llm_tokens_total{inc}))",
        "cost": f"sum by (provider, model) (increase(llm_cost_usd_total{inc}))",
        "cost_1h": f"sum(increase(llm_cost_usd_total{sel}[1h]))",
        "cost_prev_1h": f"sum(increase(llm_cost_usd_total{sel}[1h] offset 1h))",
        "up": "max by (provider) (llm_provider_up)",
        "key": "max by (provider) (llm_provider_api_key_configured)",
        "sessions_active": "sum(llm_sessions_active)",
        "sessions_started": f"sum(increase(llm_sessions_started_total{inc}))",
        "sessions_ended": f"sum by (outcome) (increase(llm_sessions_ended_total{inc}))",
        "sess_sum": f"sum(increase(llm_session_duration_seconds_sum{inc}))",
        "sess_count": f"sum(increase(llm_session_duration_seconds_count{inc}))",
        "cpu": "max(llm_host_cpu_usage_ratio)",
        "memory": "max(llm_host_memory_usage_ratio)",
        "disk": "max(llm_host_disk_usage_ratio)",
        "rpm": "sum by (provider) (rate(llm_requests_total[5m])) * 60",
    }
    lat = f"increase(llm_request_duration_seconds_bucket{sel}{inc})"
    ttft = f"increase(llm_time_to_first_token_seconds_bucket{inc})"
    sess = f"increase(llm_session_duration_seconds_bucket{inc})"
    for name, qv in QUANTILES:
        q[f"lat_{name}"] = f"histogram_quantile({qv}, sum by (provider, le) ({lat}))"
        q[f"lat_all_{name}"] = f"histogram_quantile({qv}, sum by (le) ({lat}))"
        q[f"ttft_{name}"] = f"histogram_quantile({qv}, sum by (provider, le) ({ttft}))"
        q[f"sess_{name}"] = f"histogram_quantile({qv}, sum by (le) ({sess}))"
    return q


def _provider_entry(pid: str, r: Mapping[str, Any]) -> dict[str, Any]:
    outcomes = r["outcomes"].get(pid, {})
    total = sum(outcomes.values())
    ok = outcomes.get("success", 0.0)
    lat_count = r["lat_count"].get(pid, 0.0)
    tokens = {t: rnd(r["tokens"].get((pid, t), 0.0), 3) for t in TOKEN_TYPES}
    tokens["total"] = rnd(sum(r["tokens"].get((pid, t), 0.0) for t in TOKEN_TYPES), 3)
    up, key = r["up"].get(pid), r["key"].get(pid)
    entry: dict[str, Any] = {
        "up": None if up is None else up >= 1,
        "api_key_configured": None if key is None else key >= 1,
        "requests": rnd(total, 3),
        "successful_requests": rnd(ok, 3),
        "failed_requests": rnd(total - ok, 3),
        "success_rate": ratio(ok, total),
        "avg_latency": ratio(r["lat_sum"].get(pid, 0.0), lat_count),
    }
    for name, _ in QUANTILES:
        entry[f"{name}_latency"] = rnd(r[f"lat_{name}"].get(pid))
    entry["ttft_p50"] = rnd(r["ttft_p50"].get(pid))
    entry["ttft_p95"] = rnd(r["ttft_p95"].get(pid))
    entry["tokens"] = tokens
    entry["cost_usd"] = rnd(sum(v for (p, _), v in r["cost"].items() if p == pid))
    entry["models_used"] = sorted(m for (p, m), v in r["models"].items() if p == pid and v > 0)
    entry["errors"] = {o: rnd(v, 3) for o, v in sorted(outcomes.items()) if o != "success" and v}
    return entry


def _collect(res: Mapping[str, list[Sample]], scope: Scope) -> dict[str, Any]:
    """Raw query results folded into bounded dictionaries."""
    r: dict[str, Any] = {"outcomes": {}, "models": {}, "tokens": {}, "cost": {}}
    for labels, v in res["req_outcome"]:
        pid, outcome = labels.get("provider", ""), labels.get("outcome", "")
        if pid in scope.providers:
            key = outcome if outcome in OUTCOMES else OTHER
            slot = r["outcomes"].setdefault(pid, {})
            slot[key] = slot.get(key, 0.0) + v
    for name, label, target in (("req_model", "model", "models"), ("cost", "model", "cost")):
        for labels, v in res[name]:
            pid = labels.get("provider", "")
            if pid in scope.providers:
                k = (pid, scope.model(pid, labels.get(label, "")))
                r[target][k] = r[target].get(k, 0.0) + v
    for labels, v in res["tokens"]:
        pid, tt = labels.get("provider", ""), labels.get("token_type", "")
        if pid in scope.providers and tt in TOKEN_TYPES:
            r["tokens"][(pid, tt)] = r["tokens"].get((pid, tt), 0.0) + v
    for name in ("lat_sum", "lat_count", "up", "key", "ttft_p50", "ttft_p95"):
        r[name] = by_provider(res[name], scope)
    for name, _ in QUANTILES:
        r[f"lat_{name}"] = by_provider(res[f"lat_{name}"], scope)
    return r


def _trend(current: float, previous: float) -> tuple[str, float | None]:
    if previous <= 0:
        return ("flat" if current <= 0 else "rising"), None
    change = (current - previous) / previous
    word = "flat" if abs(change) < TREND_FLAT else ("rising" if change > 0 else "falling")
    return word, rnd(change, 4)


def _cost_analytics(
    r: Mapping[str, Any], res: Mapping[str, list[Sample]], seconds: float
) -> dict[str, Any]:
    total = sum(r["cost"].values())
    last, prev = scalar(res["cost_1h"]) or 0.0, scalar(res["cost_prev_1h"]) or 0.0
    trend, change = _trend(last, prev)
    by_prov: dict[str, float] = {}
    for (pid, _), v in r["cost"].items():
        by_prov[pid] = by_prov.get(pid, 0.0) + v
    daily = total / seconds * 86400
    return {
        "total_cost_usd": rnd(total),
        "cost_by_provider": {p: rnd(v) for p, v in sorted(by_prov.items())},
        "cost_by_model": [
            {"provider": p, "model": m, "cost_usd": rnd(v)}
            for (p, m), v in sorted(r["cost"].items(), key=lambda kv: -kv[1])
            if v > 0
        ],
        "average_hourly_cost_usd": rnd(total / seconds * 3600),
        "cost_last_hour_usd": rnd(last),
        "cost_previous_hour_usd": rnd(prev),
        "trend": trend,
        "trend_change_ratio": change,
        "projected_daily_cost_usd": rnd(daily),
        "projected_monthly_cost_usd": rnd(daily * MONTH_DAYS),
    }


async def build_summary(
    prom: PromClient, scope: Scope, *, seconds: float = 86400, at: float | None = None
) -> dict[str, Any]:
    """The summary over the `seconds` before `at` (now when None), all queries at one instant."""
    at = round(time.time() if at is None else at, 3)  # Prometheus evaluates at ms precision
    res = await prom.queries(summary_queries(f"{int(seconds)}s", scope), at)
    r = _collect(res, scope)
    providers = {pid: _provider_entry(pid, r) for pid in scope.providers}
    total = sum(p["requests"] for p in providers.values())
    ok = sum(p["successful_requests"] for p in providers.values())
    lat_count = sum(r["lat_count"].values())
    errors: dict[str, float] = {}
    for outcomes in r["outcomes"].values():
        for o, v in outcomes.items():
            if o != "success" and v:
                errors[o] = errors.get(o, 0.0) + v
    ended = {o: 0.0 for o in ("completed", "expired")}
    for labels, v in res["sessions_ended"]:
        if labels.get("outcome") in ended:
            ended[labels["outcome"]] += v
    active = scalar(res["sessions_active"])
    sess_count = scalar(res["sess_count"]) or 0.0
    totals: dict[str, Any] = {
        "requests": rnd(total, 3),
        "successful_requests": rnd(ok, 3),
        "failed_requests": rnd(total - ok, 3),
        "success_rate": ratio(ok, total),
        "avg_latency": ratio(sum(r["lat_sum"].values()), lat_count),
        **{f"{n}_latency": rnd(scalar(res[f"lat_all_{n}"])) for n, _ in QUANTILES},
        "tokens": {
            t: rnd(sum(v for (_, tt), v in r["tokens"].items() if tt == t), 3) for t in TOKEN_TYPES
        },
        "cost_usd": rnd(sum(r["cost"].values())),
    }
    totals["tokens"]["total"] = rnd(sum(r["tokens"].values()), 3)
    return {
        "period": period_name(seconds),
        "period_seconds": seconds,
        "timestamp": iso(at),
        "evaluated_at": at,
        "source": "prometheus",
        "system_metrics": {
            "cpu_usage": rnd(scalar(res["cpu"]), 4),
            "memory_usage": rnd(scalar(res["memory"]), 4),
            "disk_usage": rnd(scalar(res["disk"]), 4),
            "active_sessions": rnd(active, 3),
            "requests_per_minute": rnd(sum(by_provider(res["rpm"], scope).values()), 3),
        },
        "totals": totals,
        "providers": providers,
        "models_used": [
            {"provider": p, "model": m, "requests": rnd(v, 3)}
            for (p, m), v in sorted(r["models"].items(), key=lambda kv: -kv[1])
            if v > 0
        ],
        "error_breakdown": {o: rnd(v, 3) for o, v in sorted(errors.items())},
        "session_metrics": {
            "active_sessions": rnd(active, 3),
            "sessions_started": rnd(scalar(res["sessions_started"]) or 0.0, 3),
            "sessions_ended": {o: rnd(v, 3) for o, v in ended.items()},
            "avg_duration": ratio(scalar(res["sess_sum"]) or 0.0, sess_count),
            **{f"{n}_duration": rnd(scalar(res[f"sess_{n}"])) for n, _ in QUANTILES},
        },
        "cost_analytics": _cost_analytics(r, res, seconds),
    }
