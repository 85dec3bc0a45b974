"""`Reporter`: how an orchestrator sends usage and session events without ever waiting for them.

Recording only appends a tuple to a bounded queue (full queue: the event is dropped and counted).
One daemon thread per Reporter batches the queue (up to `batch_size` events or every
`flush_interval` s), POSTs with the standard library's http.client, and retries 5xx, 408, 429 and
connection errors with capped exponential backoff and full jitter for up to `max_retry_seconds`.
Each event carries an id made when it is recorded, so a retried batch is counted once by the
exporter. Other 4xx answers are not retried (counted in `failed`); a 413 batch is split.

The same object serves threads and asyncio: recording never blocks a loop, and
`aflush`/`aclose`, `async with reporter` and `async with reporter.timed_call(...)` exist for
async code. Token counts are disjoint: input excludes cached and cache-write tokens, output
excludes reasoning tokens.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from typing import Any, NamedTuple
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
_RETRY = frozenset({408, 429})
_CALL = "llm_call"
_CALL_FIELDS = (
    "provider", "model", "outcome", "duration_seconds", "time_to_first_token_seconds",
    "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
    "reasoning_tokens", "session_id", "quality_score", "cost_usd",
)  # fmt: skip


def _plain(value: Any) -> Any:
    """JSON for numbers of other types (numpy and the like)."""
    if hasattr(value, "__index__"):
        return int(value)
    return float(value) if hasattr(value, "__float__") else str(value)


class ReporterStats(NamedTuple):
    """What became of recorded events so far."""

    queued: int
    sent: int  # accepted by the exporter
    duplicates: int  # the exporter had them already (a retry after a lost answer)
    rejected: int  # refused one by one by the exporter (see its answer in the debug log)
    dropped: int  # never sent: the queue was full or the reporter closed
    failed: int  # sent but given up: a 4xx answer or retries exhausted
    retried: int  # retry attempts


class Reporter:
    """Non-blocking, batching, retrying event reporter; safe to call from any thread."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:9820",
        *,
        token: str | None = None,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.25,
        timeout: float = 5.0,
        max_retry_seconds: float = 300.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http(s)://host[:port][/path]")
        self._path = parts.path if parts.path not in ("", "/") else "/api/v1/events"
        self._conn_args = (parts.scheme, parts.hostname, parts.port, timeout)
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._queue: deque[tuple[Any, ...]] = deque()
        self._max, self._batch, self._interval = max_queue, batch_size, flush_interval
        self._retry_for, self._backoff = max_retry_seconds, backoff
        self._seq = itertools.count()
        self._prefix = uuid.uuid4().hex[:16] + "-"
        self._counts = dict.fromkeys(ReporterStats._fields[1:], 0)
        self._lock = threading.Lock()  # guards _counts
        self._idle = threading.Condition()
        self._busy = False
        self._wake, self._abort = threading.Event(), threading.Event()
        self._closed = False
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="llm-reporter", daemon=True)
        self._thread.start()

    # -- recording: the caller's side, kept to a tuple and a deque append ----------------------
    def record_call(
        self,
        provider: str,
        model: str,
        *,
        outcome: str = "success",
        duration_seconds: float | None = None,
        time_to_first_token_seconds: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        session_id: str | None = None,
        quality_score: float | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """Queue one provider call (outcome: success or a vocab.Reason value)."""
        q = self._queue
        if len(q) >= self._max or self._closed:
            self._count("dropped")
            return
        q.append((
            _CALL, next(self._seq), time.time(), provider, model, outcome, duration_seconds,
            time_to_first_token_seconds, input_tokens, output_tokens, cached_input_tokens,
            cache_write_tokens, reasoning_tokens, session_id, quality_score, cost_usd,
        ))  # fmt: skip

    def _session(self, kind: str, fields: dict[str, Any]) -> None:
        if len(self._queue) >= self._max or self._closed:
            self._count("dropped")
            return
        self._queue.append((kind, next(self._seq), time.time(), fields))

    def session_start(self, session_id: str) -> None:
        self._session("session_start", {"session_id": session_id})

    def session_message(
        self,
        session_id: str,
        role: str,
        *,
        provider: str | None = None,
        content_length: int | None = None,
        response_time_seconds: float | None = None,
    ) -> None:
        """Queue a message; role is user, assistant or system."""
        fields = {"session_id": session_id, "role": role, "provider": provider,
                  "content_length": content_length,
                  "response_time_seconds": response_time_seconds}  # fmt: skip
        self._session("session_message", {k: v for k, v in fields.items() if v is not None})

    def session_summarized(self, session_id: str) -> None:
        self._session("session_summarized", {"session_id": session_id})

    def session_end(self, session_id: str) -> None:
        self._session("session_end", {"session_id": session_id})

    def timed_call(self, provider: str, model: str, session_id: str | None = None) -> CallTimer:
        """`with`/`async with` block that times a call and records it on exit."""
        return CallTimer(self, provider, model, session_id)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    @property
    def stats(self) -> ReporterStats:
        with self._lock:
            return ReporterStats(len(self._queue), **self._counts)

    # -- flushing and closing ---------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Block until everything queued so far is delivered or given up; False on timeout."""
        self._wake.set()
        with self._idle:
            return self._idle.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the sender; later events are dropped. False if events were lost."""
        failed_before = self.stats.failed
        self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()  # stop retrying; what is left is dropped
            self._thread.join(1.0)
        lost = len(self._queue)
        if lost:
            self._queue.clear()
            self._count("dropped", lost)
        return not lost and self.stats.failed == failed_before and not self._thread.is_alive()

    async def aflush(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - a thread waits
        return await asyncio.to_thread(self.flush, timeout)

    async def aclose(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Reporter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the sender thread ----------------------------------------------------------------------
    def _run(self) -> None:
        q = self._queue
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            while q and not self._abort.is_set():
                self._busy = True
                batch = [q.popleft() for _ in range(min(self._batch, len(q)))]
                try:
                    self._deliver([self._as_dict(ev) for ev in batch])
                except Exception:  # never let one bad batch stop the sender
                    log.exception("could not send %d events", len(batch))
                    self._count("failed", len(batch))
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
            with self._idle:
                self._idle.notify_all()
            if self._closed and (not q or self._abort.is_set()):
                break
        if self._conn is not None:
            self._conn.close()

    def _as_dict(self, ev: tuple[Any, ...]) -> dict[str, Any]:
        kind, seq, ts = ev[0], ev[1], ev[2]
        out: dict[str, Any] = {"type": kind, "id": f"{self._prefix}{seq:x}", "timestamp": ts}
        if kind == _CALL:
            out.update((k, v) for k, v in zip(_CALL_FIELDS, ev[3:], strict=True) if v is not None)
        else:
            out.update(ev[3])
        return out

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        body = json.dumps(events, separators=(",", ":"), default=_plain).encode()
        deadline = time.monotonic() + self._retry_for
        for attempt in itertools.count():
            status, answer = self._post(body)
            if status == 200:
                self._count("sent", answer.get("accepted", 0))
                self._count("duplicates", answer.get("duplicates", 0))
                if answer.get("rejected"):
                    self._count("rejected", len(answer["rejected"]))
                    log.debug("exporter rejected events: %s", answer["rejected"][:5])
                return
            if status == 413 and len(events) > 1:
                half = len(events) // 2
                self._deliver(events[:half])
                self._deliver(events[half:])
                return
            if status is not None and 400 <= status < 500 and status not in _RETRY:
                log.warning("exporter refused %d events with HTTP %d", len(events), status)
                self._count("failed", len(events))
                return
            base, cap = self._backoff
            delay = random.uniform(0, min(cap, base * 2**attempt))
            if time.monotonic() + delay > deadline or self._abort.wait(delay):
                self._count("failed", len(events))
                return
            self._count("retried")

    def _post(self, body: bytes) -> tuple[int | None, dict[str, Any]]:
        """(status, answer); status None when no answer came."""
        for stale_ok in (self._conn is not None, False):
            if self._conn is None:
                scheme, host, port, timeout = self._conn_args
                https = scheme == "https"
                cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
                self._conn = cls(host, port, timeout=timeout)
            try:
                self._conn.request("POST", self._path, body, self._headers)
                resp = self._conn.getresponse()
                data = resp.read()
                break
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if not stale_ok:  # a kept-alive connection the server closed: one fresh try
                    return None, {}
        if resp.status != 200:
            return resp.status, {}
        try:
            return 200, json.loads(data)
        except ValueError:
            return 200, {}


class CallTimer:
    """Times one call; set tokens, `outcome` or `first_token()` inside the block.

    An exception leaving the block records `timeout` for TimeoutError, `network` for other
    connection errors and `other` otherwise, unless the block set a failure outcome itself.
    """

    def __init__(self, reporter: Reporter, provider: str, model: str, session_id: str | None):
        self._reporter, self._start = reporter, 0.0
        self.provider, self.model, self.session_id = provider, model, session_id
        self.outcome = "success"
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.cache_write_tokens = self.reasoning_tokens = 0
        self.time_to_first_token_seconds: float | None = None
        self.quality_score: float | None = None
        self.cost_usd: float | None = None

    def first_token(self) -> None:
        """Mark the first token now (streamed calls)."""
        if self.time_to_first_token_seconds is None:
            self.time_to_first_token_seconds = time.perf_counter() - self._start

    def __enter__(self) -> CallTimer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        duration = time.perf_counter() - self._start
        if exc_type is not None and self.outcome == "success":
            if issubclass(exc_type, TimeoutError):
                self.outcome = "timeout"
            elif issubclass(exc_type, ConnectionError):
                self.outcome = "network"
            else:
                self.outcome = "other"
        self._reporter.record_call(
            self.provider, self.model, outcome=self.outcome, duration_seconds=duration,
            time_to_first_token_seconds=self.time_to_first_token_seconds,
            input_tokens=self.input_tokens, output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens, reasoning_tokens=self.reasoning_tokens,
            session_id=self.session_id, quality_score=self.quality_score, cost_usd=self.cost_usd,
        )  # fmt: skip

    async def __aenter__(self) -> CallTimer:
        return self.__enter__()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)
