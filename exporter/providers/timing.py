"""Per-request phase timing: aiohttp trace callbacks plus a TLS-handshake hook.

Phases (all from `time.perf_counter`, seconds; keys from vocab.PHASES):
- `dns`: host resolution; 0 on an IP literal, a DNS-cache hit or a reused connection.
- `connect`: TCP connect (and the TLS handshake when `tls` is not measured separately).
- `tls`: TLS handshake, only for https and only when the session's connector uses
  `make_ssl_context()` (aiohttp has no handshake trace hook); never present for plain http.
- `first_byte`: request start to response headers; `first_token`: request start to the first
  content delta of a stream; `total`: request start to the body's last byte (a stream's end
  marker), before any of it is parsed.
On a reused pooled connection `dns`, `connect` (and `tls` for https) are 0.0. Without
`make_trace_config()` on the session only `first_byte`, `first_token` and `total` appear.

"Request start" is aiohttp's `on_request_start`: the request is built and about to take a
connection (without tracing, the moment the prober calls aiohttp).

A request with a body leaves in two steps: aiohttp buffers the headers, then a task of its own
writes them together with the body (at once from Python 3.12; on 3.11 that task waits its turn
behind whatever else the event loop has ready, e.g. other probes started at the same moment).
Nothing is on the wire in between, so with tracing on that wait is left out of `first_byte`,
`first_token` and `total`: they time the provider, not our event loop's queue. (The probers
never ask for `Expect: 100-continue`, the one case where that gap would hold a round trip.)
"""

from __future__ import annotations

import ssl
from contextvars import ContextVar
from time import perf_counter
from types import SimpleNamespace
from typing import Any

import aiohttp

# The timer of the request being made in this task; read by the TLS hook, which runs inside
# loop.create_connection in the same task that opened the request.
CURRENT_TIMER: ContextVar[PhaseTimer | None] = ContextVar("llm_exporter_timer", default=None)


class PhaseTimer:
    """Monotonic marks for one HTTP exchange, filled in by the runner, trace callbacks and TLS."""

    def __init__(self, https: bool) -> None:
        self.https = https
        self.start = perf_counter()
        self.traced = self.reused = False
        self.dns_start: float | None = None
        self.dns_end: float | None = None
        self.conn_start: float | None = None
        self.conn_end: float | None = None
        self.tls_start: float | None = None
        self.headers_ready: float | None = None  # request headers buffered, not yet sent
        self.body_sent: float | None = None  # headers and the first body chunk handed to the socket
        self.first_byte: float | None = None
        self.first_token: float | None = None
        self.end: float | None = None

    def phases(self) -> dict[str, float]:
        """The measured phases; `total` always, the others when they happened."""
        out: dict[str, float] = {}
        if self.traced:
            out.update(self._connection_phases())
        start = self.start + self.send_lag()
        for name, mark in (("first_byte", self.first_byte), ("first_token", self.first_token)):
            if mark is not None:
                out[name] = mark - start
        out["total"] = (self.end if self.end is not None else perf_counter()) - start
        return out

    def send_lag(self) -> float:
        """Seconds a ready request waited in our event loop before its bytes were written."""
        if self.headers_ready is None or self.body_sent is None:
            return 0.0
        return max(0.0, self.body_sent - self.headers_ready)

    def _connection_phases(self) -> dict[str, float]:
        if self.reused:
            return {"dns": 0.0, "connect": 0.0, **({"tls": 0.0} if self.https else {})}
        dns = 0.0
        if self.dns_start is not None and self.dns_end is not None:
            dns = self.dns_end - self.dns_start
        if self.conn_start is None or self.conn_end is None:  # failed while connecting
            return {"dns": dns} if self.dns_end is not None else {}
        out = {"dns": dns}
        tls = 0.0
        if self.tls_start is not None:
            tls = out["tls"] = self.conn_end - self.tls_start
        out["connect"] = max(0.0, self.conn_end - self.conn_start - dns - tls)
        return out


def _timer(ctx: SimpleNamespace) -> PhaseTimer | None:
    timer = getattr(ctx, "trace_request_ctx", None)
    return timer if isinstance(timer, PhaseTimer) else None


async def _on_request_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None:
        timer.traced = True
        timer.start = perf_counter()  # building the request in Python is not the provider's time


async def _on_reuse(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None:
        timer.reused = True


async def _on_dns_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None and timer.dns_start is None:
        timer.dns_start = perf_counter()


async def _on_dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None:
        timer.dns_end = perf_counter()


async def _on_conn_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None:
        timer.conn_start = perf_counter()


async def _on_conn_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None:
        timer.conn_end = perf_counter()


async def _on_headers_ready(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None:
        timer.headers_ready = perf_counter()


async def _on_body_sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
    if (timer := _timer(ctx)) is not None and timer.body_sent is None:
        timer.body_sent = perf_counter()


def make_trace_config() -> aiohttp.TraceConfig:
    """The TraceConfig to pass to the shared ClientSession (`trace_configs=[...]`)."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_connection_reuseconn.append(_on_reuse)
    config.on_dns_resolvehost_start.append(_on_dns_start)
    config.on_dns_resolvehost_end.append(_on_dns_end)
    config.on_connection_create_start.append(_on_conn_start)
    config.on_connection_create_end.append(_on_conn_end)
    config.on_request_headers_sent.append(_on_headers_ready)  # fired as they are buffered
    config.on_request_chunk_sent.append(_on_body_sent)  # fired just before the socket write
    return config


class _TimedSSLContext(ssl.SSLContext):
    """An SSLContext noting when the handshake starts (wrap_bio runs right after TCP connect)."""

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:  # type: ignore[override]
        timer = CURRENT_TIMER.get()
        if timer is not None and timer.tls_start is None:
            timer.tls_start = perf_counter()
        return super().wrap_bio(*args, **kwargs)


def make_ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """A verifying client context that lets probes time the TLS handshake separately.

    Use it as `aiohttp.TCPConnector(ssl=make_ssl_context())`. It loads certificates from
    disk, so call it once at start-up (outside the event loop's hot path).
    """
    context = _TimedSSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certs and host names
    context.options |= ssl.OP_NO_COMPRESSION
    if cafile:
        context.load_verify_locations(cafile=cafile)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    context.set_alpn_protocols(["http/1.1"])
    return context
