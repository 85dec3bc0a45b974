"""One HTTP exchange -> one ProbeResult: timed, bounded, classified and redacted.

The family modules say what to send and how to read a 2xx body; everything that can go wrong
on the way (transport, status, size, encoding, JSON, shape, in-stream errors) ends here as a
ProbeResult with a `Reason`. Only cancellation propagates.

What is timed is the exchange alone: the clock starts after the body is encoded and stops when
the last byte arrives (a stream's end marker or EOF). Header parsing, JSON decoding, shape
checks and classification run after the mark, so they are not part of `duration`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any, Protocol

import aiohttp

from exporter import __version__
from exporter.providers.base import ProbeResult, ProbeTarget, Usage
from exporter.providers.classify import classify_exception, classify_status
from exporter.providers.ratelimit import parse_ratelimits, parse_retry_after, retry_delay_from_body
from exporter.providers.sse import SseEvent, SseParser
from exporter.providers.timing import CURRENT_TIMER, PhaseTimer
from exporter.redact import redact
from exporter.vocab import Reason

log = logging.getLogger(__name__)

USER_AGENT = f"llm-exporter/{__version__}"
JSON_CAP = 4 << 20  # bytes of a 2xx JSON body
STREAM_CAP = 1 << 20  # bytes of a whole event stream (a 1-token stream is a few KiB); a flood
# of tiny SSE lines up to the cap costs ~0.35 s of CPU to parse
ERROR_CAP = 64 << 10  # bytes of an error body read for classification; the rest is dropped
CHUNK = 64 << 10
DRAIN_CAP = 64 << 10  # bytes read after a stream's end marker so its connection can be reused
DRAIN_S = 0.25  # seconds allowed for that (usually just the chunked terminator, already here)
DRAIN_MARGIN = 0.05  # a drain ends this long before the probe's deadline
MAX_ERROR = 200  # characters of ProbeResult.error


class ProbeFailure(Exception):
    """A classified failure found while reading a response (too big, malformed, error event)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class StreamState(Protocol):
    """Reads one family's SSE events; `feed` says whether the event carried content."""

    done: bool  # the protocol's end marker was seen; stop reading
    usage: Usage | None

    def feed(self, event: SseEvent) -> bool: ...


Parsed = tuple[frozenset[str] | None, Usage | None]  # (models listed, usage)


@dataclass(frozen=True)
class Exchange:
    """What to send, and either `parse` (a JSON body) or `stream` (an SSE body) for a 2xx."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    parse: Callable[[Any], Parsed] | None = None
    stream: Callable[[], StreamState] | None = field(default=None)


def base_headers(stream: bool = False) -> dict[str, str]:
    accept = "text/event-stream" if stream else "application/json"
    return {"User-Agent": USER_AGENT, "Accept": accept}


def decode_json(raw: bytes | str) -> Any:
    """Strict UTF-8 JSON; any failure is an `invalid_response` ProbeFailure."""
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError as exc:
        raise ProbeFailure(Reason.INVALID_RESPONSE, "body is not valid UTF-8") from exc
    except (ValueError, RecursionError) as exc:
        raise ProbeFailure(Reason.INVALID_RESPONSE, "body is not valid JSON") from exc


async def read_bounded(resp: aiohttp.ClientResponse, cap: int, *, truncate: bool = False) -> bytes:
    """At most `cap` bytes of the body; more is a ProbeFailure unless `truncate`."""
    if not truncate and resp.content_length is not None and resp.content_length > cap:
        raise ProbeFailure(Reason.INVALID_RESPONSE, f"body of {resp.content_length} bytes > {cap}")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK):
        buf += chunk
        if len(buf) > cap:
            if truncate:
                return bytes(buf[:cap])
            raise ProbeFailure(Reason.INVALID_RESPONSE, f"body larger than {cap} bytes")
    return bytes(buf)


async def run(session: aiohttp.ClientSession, target: ProbeTarget, ex: Exchange) -> ProbeResult:
    """Make the request under `target.timeout` and turn whatever happens into a ProbeResult."""
    headers, data = ex.headers, None
    if ex.body is not None:  # encoded before the clock starts
        headers = {**ex.headers, "Content-Type": "application/json"}
        data = json.dumps(ex.body).encode()
    result = ProbeResult(success=False)
    timeout = aiohttp.ClientTimeout(total=target.timeout)
    timer = PhaseTimer(https=ex.url.startswith("https:"))
    token = CURRENT_TIMER.set(timer)
    try:
        async with asyncio.timeout(target.timeout) as deadline, session.request(
            ex.method,
            ex.url,
            headers=headers,
            data=data,
            timeout=timeout,
            allow_redirects=False,  # a redirect must not carry the key to another host
            trace_request_ctx=timer,
        ) as resp:
            timer.first_byte = perf_counter()
            result.status = resp.status
            try:
                if 200 <= resp.status < 300:
                    await _read_success(resp, ex, result, timer)
                    if ex.stream is not None:
                        when = deadline.when() or 0.0
                        left = when - asyncio.get_running_loop().time() - DRAIN_MARGIN
                        await _drain(resp, min(DRAIN_S, left))
                else:
                    await _read_failure(resp, target, result, timer)
            finally:  # after the last byte, so parsing headers is not part of the duration
                _read_headers(resp, result)
    except ProbeFailure as failure:
        result.reason, result.error = failure.reason, failure.detail
    except Exception as exc:  # transport and client errors; CancelledError is not an Exception
        result.reason = classify_exception(exc)
        if result.reason is Reason.TIMEOUT:
            result.error = f"timed out after {target.timeout:g}s"
        else:
            result.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
    finally:
        CURRENT_TIMER.reset(token)
        if timer.end is None:  # failed before the body was read
            timer.end = perf_counter()
    result.success = result.success and result.reason is None
    result.phases = timer.phases()
    result.duration = result.phases["total"]
    result.error = redact(result.error, [target.api_key])[:MAX_ERROR]  # redact, then cut
    log.debug(
        "probe %s %s -> success=%s reason=%s status=%s %s",
        target.provider, ex.url.rsplit("/", 1)[-1].split("?")[0], result.success,
        result.reason, result.status, result.error,
    )
    return result


def _read_headers(resp: aiohttp.ClientResponse, result: ProbeResult) -> None:
    """Rate-limit state and retry-after; a header's retry-after wins over one from the body."""
    result.ratelimits = parse_ratelimits(resp.headers)
    retry_after = parse_retry_after(resp.headers)
    if retry_after is not None:
        result.retry_after = retry_after


async def _read_success(
    resp: aiohttp.ClientResponse, ex: Exchange, result: ProbeResult, timer: PhaseTimer
) -> None:
    if ex.stream is not None:
        result.usage = await _read_stream(resp, ex.stream(), timer)
    else:
        assert ex.parse is not None
        raw = await read_bounded(resp, JSON_CAP)
        timer.end = perf_counter()
        doc = decode_json(raw)
        try:
            result.models, result.usage = ex.parse(doc)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ProbeFailure(Reason.INVALID_RESPONSE, f"unexpected body: {exc}") from exc
    result.success = True


async def _read_stream(
    resp: aiohttp.ClientResponse, state: StreamState, timer: PhaseTimer
) -> Usage | None:
    parser, size = SseParser(), 0
    async for chunk in resp.content.iter_any():
        arrived = perf_counter()
        size += len(chunk)
        if size > STREAM_CAP:
            raise ProbeFailure(Reason.INVALID_RESPONSE, f"stream larger than {STREAM_CAP} bytes")
        _consume(state, partial(parser.feed, chunk), timer, arrived)
        if state.done:
            timer.end = arrived  # the end marker's chunk is the last byte that matters
            break
    else:
        timer.end = perf_counter()
        _consume(state, parser.close, timer, timer.end)
    if timer.first_token is None:
        raise ProbeFailure(Reason.INVALID_RESPONSE, "stream ended without a content delta")
    return state.usage


async def _drain(resp: aiohttp.ClientResponse, budget: float) -> None:
    """Read what follows a stream's end marker (normally just the chunked terminator), so the
    pooled connection is kept instead of closed; bounded in bytes and time, never a failure."""
    if budget <= 0:
        return
    with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
        async with asyncio.timeout(budget):
            left = DRAIN_CAP
            while left > 0 and (chunk := await resp.content.readany()):
                left -= len(chunk)


def _consume(
    state: StreamState, events: Callable[[], list[SseEvent]], timer: PhaseTimer, at: float
) -> None:
    """Feed parsed events to the family's state; the first content event marks TTFT."""
    try:
        for event in events():
            if state.feed(event) and timer.first_token is None:
                timer.first_token = at
    except ProbeFailure:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # SseError, ShapeError...
        raise ProbeFailure(Reason.INVALID_RESPONSE, f"bad stream: {exc}") from exc


async def _read_failure(
    resp: aiohttp.ClientResponse, target: ProbeTarget, result: ProbeResult, timer: PhaseTimer
) -> None:
    raw = await read_bounded(resp, ERROR_CAP, truncate=True)
    timer.end = perf_counter()
    try:
        doc = json.loads(raw.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        doc = None
    result.reason, info = classify_status(target.provider, resp.status, doc)
    result.error = f"HTTP {resp.status} {info.label}".rstrip()
    result.retry_after = retry_delay_from_body(doc)  # a retry-after header overrides it
