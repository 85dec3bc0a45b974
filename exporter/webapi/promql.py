"""Small async clients for the Prometheus HTTP API (instant queries) and Alertmanager API v2."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

Sample = tuple[dict[str, str], float]
MAX_ALERTS = 50  # firing alerts listed in documents; the count is always complete
_TEXT_LIMIT = 200


class SourceError(Exception):
    """Prometheus or Alertmanager is not configured, not reachable, or answered with an error."""

    def __init__(self, source: str, url: str | None, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.url = public_url(url)
        self.detail = detail


def public_url(url: str | None) -> str | None:
    """`url` without credentials, query or fragment: safe to show in responses and logs."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def finite(value: float | None) -> float | None:
    """None for a missing, NaN or infinite value (JSON has no NaN)."""
    return value if value is not None and math.isfinite(value) else None


async def _get_json(
    session: aiohttp.ClientSession, source: str, base: str, method: str, path: str, **kw: Any
) -> Any:
    url = base.rstrip("/") + path
    try:
        async with session.request(method, url, **kw) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                error = body.get("error") if isinstance(body, dict) else None
                raise SourceError(source, base, f"HTTP {resp.status}: {error or resp.reason}")
            return body
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
        raise SourceError(source, base, f"not reachable ({kind})") from None


class PromClient:
    """Instant queries against one Prometheus; every failure is a `SourceError`."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, *, timeout: float = 10.0
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate `expr` at `at` (unix seconds; now when None): a list of (labels, value)."""
        form = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        body = await _get_json(
            self.session,
            "prometheus",
            self.base_url,
            "POST",
            "/api/v1/query",
            data=form,
            timeout=self.timeout,
        )
        if not isinstance(body, dict) or body.get("status") != "success":
            raise SourceError("prometheus", self.base_url, "unexpected answer to a query")
        data = body.get("data") or {}
        result = data.get("result")
        if data.get("resultType") == "scalar" and isinstance(result, list):
            return [({}, float(result[1]))]
        if data.get("resultType") != "vector" or not isinstance(result, list):
            raise SourceError("prometheus", self.base_url, "query did not return a vector")
        return [(dict(r.get("metric") or {}), float(r["value"][1])) for r in result]

    async def queries(
        self, exprs: Mapping[str, str], at: float | None = None
    ) -> dict[str, list[Sample]]:
        """Several named queries, concurrently, all at the same evaluation time."""
        names = list(exprs)
        results = await asyncio.gather(*(self.query(exprs[n], at) for n in names))
        return dict(zip(names, results, strict=True))

    async def ready(self) -> bool:
        """True when Prometheus answers a trivial query."""
        try:
            await self.query("vector(1)")
        except SourceError:
            return False
        return True


def _short(value: Any) -> str | None:
    return str(value)[:_TEXT_LIMIT] if value not in (None, "") else None


class AlertmanagerClient:
    """Reads alerts through Alertmanager's API v2."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, *, timeout: float = 10.0
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def firing(self) -> list[dict[str, Any]]:
        """Active alerts that are neither silenced nor inhibited, oldest first."""
        params = {"active": "true", "silenced": "false", "inhibited": "false"}
        body = await _get_json(
            self.session,
            "alertmanager",
            self.base_url,
            "GET",
            "/api/v2/alerts",
            params=params,
            timeout=self.timeout,
        )
        if not isinstance(body, list):
            raise SourceError("alertmanager", self.base_url, "unexpected answer to /api/v2/alerts")
        alerts = [
            a
            for a in body
            if isinstance(a, dict) and (a.get("status") or {}).get("state") == "active"
        ]
        alerts.sort(key=lambda a: str(a.get("startsAt", "")))
        return [
            summarize_alert(a.get("labels") or {}, a.get("annotations") or {}, a.get("startsAt"))
            for a in alerts
        ]


def summarize_alert(
    labels: Mapping[str, Any], annotations: Mapping[str, Any], starts_at: Any = None
) -> dict[str, Any]:
    """The few fields a status page shows, each cut short."""
    return {
        "alertname": _short(labels.get("alertname")),
        "severity": _short(labels.get("severity")),
        "provider": _short(labels.get("provider")),
        "summary": _short(annotations.get("summary") or annotations.get("description")),
        "starts_at": _short(starts_at),
    }
