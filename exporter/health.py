"""`GET /api/health`: the original spec's JSON shape, built from in-memory state."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from exporter.host import HostSample
from exporter.probestate import ProbeStore, ProviderState
from exporter.vocab import Check

DAY = 86400.0


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def provider_status(ps: ProviderState, now: float) -> dict[str, Any]:
    """One entry of `providers_status`."""
    checks = [c for c in ps.checks.values() if c.last is not None]
    last_check = max((c.last_run or 0.0 for c in checks), default=None)
    last_success = max((c.last_success or 0.0 for c in checks), default=0.0) or None
    history = [ok for c in ps.checks.values() for ts, ok in c.history if now - ts <= DAY]
    durations = [c.last.duration for c in checks if c.last is not None and c.last.success]
    requests = ps.ratelimits.get("requests")
    entry: dict[str, Any] = {
        "healthy": bool(ps.up()),
        "last_check": _iso(last_check),
        "response_time": round(max(durations), 4) if durations else None,
        "api_key_configured": ps.key_configured,
        "models_available": sorted(m for m in ps.allowed_models if m in (ps.models_seen or ())),
        "rate_limit_remaining": requests.remaining if requests else None,
        "error_rate_24h": round(1 - sum(history) / len(history), 4) if history else None,
        "last_success": _iso(last_success),
    }
    if not ps.key_configured:
        entry["error"] = "not configured: API key env var is not set"
    elif (err := ps.last_error()) and not entry["healthy"]:
        entry["error"] = err
    entry["checks"] = {
        str(check): {
            "success": cs.last.success if cs.last else None,
            "reason": str(cs.last.reason) if cs.last and cs.last.reason else None,
            "duration": round(cs.last.duration, 4) if cs.last else None,
        }
        for check, cs in ps.checks.items()
        if isinstance(check, Check)
    }
    return entry


def overall_status(statuses: dict[str, dict[str, Any]]) -> str:
    """healthy: every configured provider up; unhealthy: none up; degraded otherwise."""
    configured = [s for s in statuses.values() if s["api_key_configured"]]
    if not configured:
        return "healthy"
    up = sum(1 for s in configured if s["healthy"])
    if up == len(configured):
        return "healthy"
    return "unhealthy" if up == 0 else "degraded"


def health_document(
    store: ProbeStore,
    *,
    version: str,
    started: float,
    host: HostSample,
    active_sessions: int = 0,
    requests_per_minute: float = 0.0,
    now: float | None = None,
) -> dict[str, Any]:
    now = time.time() if now is None else now
    statuses = {pid: provider_status(ps, now) for pid, ps in store.providers.items()}
    return {
        "status": overall_status(statuses),
        "timestamp": _iso(now),
        "version": version,
        "uptime": round(now - started, 3),
        "providers_status": statuses,
        "system_metrics": {
            "cpu_usage": host.cpu,
            "memory_usage": host.memory,
            "disk_usage": host.disk,
            "active_sessions": active_sessions,
            "requests_per_minute": round(requests_per_minute, 3),
        },
    }
