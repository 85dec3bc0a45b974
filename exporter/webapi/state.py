"""The web API's application state: config access, the shared HTTP session and the feed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from exporter.config import Config
from exporter.webapi.promql import AlertmanagerClient, PromClient, SourceError, public_url
from exporter.webapi.values import Scope
from exporter.webapi.ws import Feed

QUERY_TIMEOUT = 10.0  # seconds for one Prometheus or Alertmanager request


@dataclass
class WebApi:
    """What the handlers need; `config` is read on every use so a reload takes effect."""

    config: Callable[[], Config]
    feed: Feed
    session: aiohttp.ClientSession | None = None
    query_timeout: float = QUERY_TIMEOUT

    def prom(self) -> PromClient:
        url = self.config().prometheus_url
        if not url:
            raise SourceError(
                "prometheus",
                None,
                "no Prometheus configured (set prometheus_url or PROMETHEUS_URL)",
            )
        if self.session is None:
            raise SourceError("prometheus", url, "the web API is not running")
        return PromClient(self.session, url, timeout=self.query_timeout)

    def am(self) -> AlertmanagerClient | None:
        url = self.config().alertmanager_url
        if not url or self.session is None:
            return None
        return AlertmanagerClient(self.session, url, timeout=self.query_timeout)

    def scope(self) -> Scope:
        return Scope.from_config(self.config())


WEBAPI = web.AppKey("webapi", WebApi)


def unavailable_body(exc: SourceError) -> dict[str, Any]:
    """The 503 body: what went wrong and the Prometheus URL without credentials."""
    return {"error": str(exc), "prometheus_url": public_url(exc.url) if exc.url else None}
