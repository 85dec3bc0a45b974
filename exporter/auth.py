"""Optional credentials for `GET /metrics`: a bearer token or HTTP basic auth (`metrics_auth`).

The secret comes only from the environment variable the config names. Only the `/metrics` route
is guarded: `/-/healthy` and `/-/ready` stay open for probes, and the events API has its own
token (`ingest.token_env`). Credentials are compared as SHA-256 digests with
`hmac.compare_digest`, so neither their content nor their length shows in the timing.
A reload (`SIGHUP`, `POST /-/reload`) applies a changed `metrics_auth`, reading the variables
from the environment the process started with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter import keys
from exporter.config import Config, MetricsAuthConfig

REALM = "llm-exporter"
GUARDED = frozenset({"/metrics"})


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class MetricsGuard:
    """Decides whether a request's `Authorization` header carries the configured credentials."""

    def __init__(self, settings: MetricsAuthConfig | None, env: Mapping[str, str]) -> None:
        self.configure(settings, env)

    def configure(self, settings: MetricsAuthConfig | None, env: Mapping[str, str]) -> None:
        """Take new settings; ValueError when the secret's variable is unset (config checks it)."""
        if settings is None:
            self.scheme, self.challenge, self._expected = "", "", b""
            return
        secret = env.get(settings.secret_env, "").strip()
        if not secret:
            msg = f"environment variable {settings.secret_env} is not set or empty"
            raise ValueError(msg)
        if settings.bearer_token_env is not None:
            self.scheme, expected = "bearer", secret
            self.challenge = f'Bearer realm="{REALM}"'
        else:
            self.scheme, expected = "basic", f"{settings.basic_username}:{secret}"
            self.challenge = f'Basic realm="{REALM}", charset="UTF-8"'
        self._expected = _digest(expected.encode())

    @property
    def enabled(self) -> bool:
        return bool(self.scheme)

    def allows(self, header: str | None) -> bool:
        """True when auth is off or `header` holds the right credentials."""
        if not self.scheme:
            return True
        scheme, _, credentials = (header or "").strip().partition(" ")
        if scheme.lower() != self.scheme:
            return False
        given = credentials.strip().encode("utf-8", "surrogateescape")
        if self.scheme == "basic":
            try:
                given = base64.b64decode(given, validate=True)
            except (binascii.Error, ValueError):
                return False
        return hmac.compare_digest(_digest(given), self._expected)


METRICS_GUARD = web.AppKey("metrics_guard", MetricsGuard)


def _guarded(request: web.Request) -> bool:
    resource = request.match_info.route.resource  # None for 404/405 answers
    return resource is not None and resource.canonical in GUARDED


def metrics_auth_middleware(guard: MetricsGuard) -> Middleware:
    """A middleware answering 401 on guarded routes unless `guard` allows the request."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            guard.scheme
            and _guarded(request)
            and not guard.allows(request.headers.get("Authorization"))
        ):
            return web.Response(
                status=401,
                text="Unauthorized: /metrics needs the credentials set in metrics_auth.\n",
                headers={"WWW-Authenticate": guard.challenge, "Cache-Control": "no-store"},
            )
        return await handler(request)

    return middleware


def setup_metrics_auth(app: web.Application, config: Config, env: Mapping[str, str]) -> None:
    """Guard `/metrics` with `config.metrics_auth` (if any) and follow config reloads."""
    app[METRICS_GUARD] = guard = MetricsGuard(config.metrics_auth, env)
    app.middlewares.append(metrics_auth_middleware(guard))

    def register(settings: MetricsAuthConfig | None) -> None:  # so logs can redact it
        if settings is not None and keys.SECRETS in app:
            app[keys.SECRETS].add(env.get(settings.secret_env, "").strip())

    async def reload(app: web.Application, new: Config) -> None:
        guard.configure(new.metrics_auth, env)
        register(new.metrics_auth)

    register(config.metrics_auth)
    if keys.RELOAD_HOOKS in app:
        app[keys.RELOAD_HOOKS].append(reload)
