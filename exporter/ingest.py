"""`POST /api/v1/events` and `GET /api/sessions/{id}/metrics`: auth, limits, dedup and dispatch."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Callable
from typing import Any

import msgspec
from aiohttp import web

from exporter.config import IngestConfig
from exporter.dedup import Dedup
from exporter.events import (
    BodyError,
    LlmCall,
    SessionEnd,
    SessionMessage,
    SessionStart,
    SessionSummarized,
    decode_body,
    quoted,
)
from exporter.sessions import SessionStore
from exporter.traffic import TrafficState

_encode = msgspec.json.Encoder().encode
_JSON_TYPES = frozenset({"application/json", "application/octet-stream"})  # octet: no header
_REFUSAL_HEADERS = {401: {"WWW-Authenticate": "Bearer"}, 503: {"Retry-After": "1"}}


class TooLarge(ValueError):
    """The request is over a size limit (answered with 413)."""


class Ingestor:
    """Turns request bodies into counted events; the HTTP handlers are its methods."""

    def __init__(
        self,
        cfg: IngestConfig,
        traffic: TrafficState,
        sessions: SessionStore,
        *,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.traffic, self.sessions, self.clock = traffic, sessions, clock
        self.dedup = Dedup(cfg.dedup_window)
        self.in_flight = 0  # POSTs reading their body (the memory a burst can hold)
        self.reconfigure(cfg)
        self._auth = f"Bearer {token}".encode() if token else None
        self._minute = [0] * 60  # llm_call events per second of the last minute (a ring)
        self._minute_at = [0] * 60

    def reconfigure(self, cfg: IngestConfig) -> None:
        """New size and concurrency limits and dedup window (ids seen so far are kept)."""
        self.max_body, self.max_batch = cfg.max_body_bytes, cfg.max_batch
        self.max_in_flight = cfg.max_concurrent_requests
        self.dedup.resize(cfg.dedup_window)

    def ingest(self, body: bytes) -> dict[str, Any]:
        """Apply a body's valid, new events; raises BodyError or TooLarge for the whole body."""
        good, bad = decode_body(body)
        traffic, sessions, dedup = self.traffic, self.sessions, self.dedup
        if len(good) + len(bad) > self.max_batch:
            n = len(good) + len(bad)
            raise TooLarge(f"{n} events in one request, max_batch is {self.max_batch}")
        now = self.clock()
        allowed, counts = traffic.allowed, traffic.events
        rejected = [{"index": i, "error": err} for i, err in bad]
        traffic.rejected["invalid"] += len(bad)
        accepted = duplicates = 0
        calls_before = counts["llm_call"]
        for i, ev in good:
            kind = type(ev)
            provider = ev.provider if kind is LlmCall or kind is SessionMessage else None
            if provider is not None and provider not in allowed:
                traffic.rejected["unknown_provider"] += 1
                msg = f"provider {quoted(provider)} is not configured and enabled - at `$.provider`"
                rejected.append({"index": i, "error": msg})
                continue
            if ev.id is not None and dedup.seen(ev.id):
                duplicates += 1
                continue
            accepted += 1
            if kind is LlmCall:
                cost = traffic.record_call(ev, now)
                if ev.session_id is not None:
                    sessions.call(ev, now, cost)
                counts["llm_call"] += 1
            elif kind is SessionMessage:
                sessions.message(ev, now)
                counts["session_message"] += 1
            elif kind is SessionStart:
                sessions.start(ev.session_id, now, ev.timestamp)
                counts["session_start"] += 1
            elif kind is SessionEnd:
                sessions.end(ev.session_id, now, ev.timestamp)
                counts["session_end"] += 1
            elif kind is SessionSummarized:
                sessions.summarized(ev.session_id, now, ev.timestamp)
                counts["session_summarized"] += 1
        traffic.duplicates += duplicates
        if counts["llm_call"] != calls_before:
            self._tick(now, counts["llm_call"] - calls_before)
        if bad and len(rejected) > len(bad):
            rejected.sort(key=lambda r: r["index"])
        return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}

    def _tick(self, now: float, calls: int) -> None:
        sec = int(now)
        i = sec % 60
        if self._minute_at[i] != sec:
            self._minute_at[i], self._minute[i] = sec, 0
        self._minute[i] += calls

    def calls_last_minute(self) -> int:
        """llm_call events accepted in the last 60 seconds."""
        now = int(self.clock())
        return sum(n for n, at in zip(self._minute, self._minute_at, strict=True) if now - at < 60)

    def _refuse(self, status: int, reason: str, error: str) -> web.Response:
        self.traffic.rejected[reason] += 1
        headers = _REFUSAL_HEADERS.get(status)
        return web.Response(
            status=status, body=_encode({"error": error}), content_type="application/json",
            headers=headers,
        )  # fmt: skip

    async def post_events(self, request: web.Request) -> web.Response:
        """`POST /api/v1/events`."""
        if self._auth is not None:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, self._auth):
                return self._refuse(401, "unauthorized", "missing or wrong bearer token")
        ctype = request.content_type
        if ctype not in _JSON_TYPES and not ctype.endswith("+json"):
            msg = f"Content-Type must be application/json, got {quoted(ctype)}"
            return self._refuse(415, "malformed", msg)
        length = request.content_length
        if length is not None and length > self.max_body:
            return self._refuse(413, "too_large", f"body over max_body_bytes ({self.max_body})")
        if self.in_flight >= self.max_in_flight:
            return self._refuse(503, "busy", "too many requests in progress, retry shortly")
        self.in_flight += 1
        try:
            body = await self._read(request, length)
        except BodyError as exc:
            return self._refuse(400, "malformed", str(exc))
        finally:
            self.in_flight -= 1
        if body is None:
            return self._refuse(413, "too_large", f"body over max_body_bytes ({self.max_body})")
        try:
            result = self.ingest(body)
        except BodyError as exc:
            return self._refuse(400, "malformed", str(exc))
        except TooLarge as exc:
            return self._refuse(413, "too_large", str(exc))
        return web.Response(body=_encode(result), content_type="application/json")

    async def _read(self, request: web.Request, length: int | None) -> bytes | None:
        """The body, or None once it grows past max_body_bytes (chunked bodies included)."""
        if length == 0:
            return b""  # aiohttp's empty stream refuses even readexactly(0)
        if length is not None:
            try:
                return await request.content.readexactly(length)
            except asyncio.IncompleteReadError:
                raise BodyError("body shorter than Content-Length") from None
        buf = bytearray()
        async for chunk in request.content.iter_any():
            buf += chunk
            if len(buf) > self.max_body:
                return None
        return bytes(buf)

    async def get_session(self, request: web.Request) -> web.Response:
        """`GET /api/sessions/{id}/metrics`."""
        s = self.sessions.get(request.match_info["id"])
        if s is None:
            return web.Response(
                status=404, body=b'{"error":"unknown session"}', content_type="application/json"
            )
        return web.Response(body=_encode(s.view()), content_type="application/json")
