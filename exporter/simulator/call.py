"""One request to a simulated provider: its key, body, pacing and the responses it may get."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from exporter.simulator import catalog
from exporter.simulator.errors import error_body
from exporter.simulator.ratelimits import ratelimit_headers, retry_headers
from exporter.simulator.state import SimState

_POLL_S = 0.05
_TIMER_SLACK_S = 0.001  # asyncio's selector rounds timeouts up to whole milliseconds
ECHO_HEADER = "x-sim-echo-key"


def client_gone(request: web.Request) -> bool:
    """True once the client closed the connection."""
    transport = request.transport
    return transport is None or transport.is_closing()


def drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; the returned response is never sent."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


@dataclass
class Call:
    """What a wire module needs to answer one request."""

    request: web.Request
    provider: str
    state: SimState
    key: str = ""
    body: Any = None
    request_id: str = ""
    echo: bool = False
    started: float = field(default_factory=time.monotonic)

    @property
    def family(self) -> str:
        return catalog.family(self.provider)

    @property
    def malformed(self) -> bool:
        """True when this provider is set to answer 200 with broken JSON."""
        return self.state.faults[self.provider].mode == "malformed"

    async def pause(self, seconds: float, *, precise: bool = False) -> bool:
        """Sleep up to `seconds`; False early if the client left or the simulator is stopping.

        A timer wakes up to 1 ms late; `precise` sleeps to 1 ms short and yields to the loop
        for the rest, so a fixed latency is kept to a few hundredths of a millisecond.
        """
        deadline = time.monotonic() + seconds
        slack = _TIMER_SLACK_S if precise else 0.0
        while True:
            if client_gone(self.request) or self.state.closing:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(0.0 if left <= slack else min(_POLL_S, left - slack))

    def headers(self) -> dict[str, str]:
        """Request-id and similar headers every answer from this provider carries."""
        elapsed = str(round((time.monotonic() - self.started) * 1000))
        out = {"x-request-id": self.request_id}
        if self.provider == "openai":
            out["openai-processing-ms"] = elapsed
            out["openai-version"] = "2020-10-01"
        elif self.provider == "anthropic":
            out = {"request-id": self.request_id, "anthropic-organization-id": "org-simulator"}
        if self.echo:
            out[ECHO_HEADER] = self.key
        return out

    def usage_headers(self, input_tokens: int, output_tokens: int) -> dict[str, str]:
        """Count an inference against the rate window and return every header to send."""
        window = self.state.windows[self.provider]
        now = time.monotonic()
        window.consume(now, input_tokens, output_tokens)
        limits = ratelimit_headers(self.provider, window, now, time.time())
        return {**self.headers(), **limits}

    def json(self, data: Any, *, headers: dict[str, str] | None = None) -> web.Response:
        """A 200 JSON answer (or, in malformed mode, a truncated one)."""
        text = json.dumps(data, separators=(",", ":"))
        if self.malformed:
            text = text[: max(1, len(text) // 2)] + '"<<truncated'
        hdrs = headers if headers is not None else self.headers()
        return web.Response(text=text, content_type="application/json", headers=hdrs)

    def error(
        self, kind: str, *, model: str = "", detail: str = "", message: str | None = None
    ) -> web.Response:
        """The provider's error of `kind`, with rate-limit headers on 429s."""
        window = self.state.windows[self.provider]
        now = time.monotonic()
        retry = min(window.reset_after(now), 20.0)
        status, body = error_body(
            self.provider,
            kind,
            request_id=self.request_id,
            model=model,
            detail=detail,
            retry_s=retry,
            echo=self.key if self.echo else None,
            message=message,
        )
        headers = self.headers()
        if kind == "rate_limit":
            headers |= ratelimit_headers(self.provider, window, now, time.time(), exhausted=True)
            headers |= retry_headers(self.provider, retry)
        return web.Response(
            text=json.dumps(body), status=status, content_type="application/json", headers=headers
        )
