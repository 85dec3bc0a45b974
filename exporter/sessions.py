"""Orchestrator sessions: a bounded store of active and recent sessions, and their metric families.

Active sessions are kept in least-recently-active order, so expiry and eviction look only at the
front. A session silent for longer than `sessions.ttl` ends as `expired`; when `max_active` are
open, starting another expires the oldest. Ended sessions stay in an LRU of `max_recent` for
`GET /api/sessions/{id}/metrics`. Times are Unix seconds (events' own timestamps when given).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric

from exporter.config import SessionsConfig
from exporter.events import LlmCall, SessionMessage
from exporter.exposition import counter, gauge, histogram
from exporter.histogram import SESSION_DURATION_BUCKETS, SESSION_MESSAGES_BUCKETS, Histogram


@dataclass(slots=True)
class SessionState:
    """One session's running totals; plain data so it can be serialised."""

    session_id: str
    started_at: float
    last_event_at: float  # event time of the latest event
    last_seen: float  # exporter time of the latest event (drives expiry)
    ended_at: float | None = None
    status: str = "active"  # active | completed | expired
    user_messages: int = 0
    assistant_messages: int = 0
    system_messages: int = 0
    user_chars: int = 0
    user_sized: int = 0  # user messages that carried content_length
    assistant_chars: int = 0
    assistant_sized: int = 0
    providers_used: list[str] = field(default_factory=list)
    last_assistant_provider: str | None = None
    provider_switches: int = 0
    summarizations: int = 0
    response_time_sum: float = 0.0
    response_times: int = 0
    quality_sum: float = 0.0
    qualities: int = 0
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0

    def used(self, provider: str) -> None:
        if provider not in self.providers_used:
            self.providers_used.append(provider)

    def view(self) -> dict[str, Any]:
        """The JSON body of `GET /api/sessions/{id}/metrics`."""
        messages = self.user_messages + self.assistant_messages + self.system_messages
        end = self.ended_at if self.ended_at is not None else self.last_event_at
        return {
            "session_id": self.session_id,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_seconds": max(0.0, end - self.started_at),
            "message_count": messages,
            "user_messages": self.user_messages,
            "assistant_messages": self.assistant_messages,
            "avg_user_message_length": _mean(self.user_chars, self.user_sized),
            "avg_assistant_message_length": _mean(self.assistant_chars, self.assistant_sized),
            "providers_used": list(self.providers_used),
            "provider_switches": self.provider_switches,
            "summarizations": self.summarizations,
            "mean_response_time_seconds": _mean(self.response_time_sum, self.response_times),
            "mean_quality_score": _mean(self.quality_sum, self.qualities),
            "calls": self.calls,
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
        }


def _mean(total: float, n: int) -> float | None:
    return total / n if n else None


class SessionStore:
    """Active sessions (least recently active first), recently ended ones, and the counters."""

    def __init__(self, cfg: SessionsConfig, clock: Callable[[], float] = time.time) -> None:
        self.reconfigure(cfg)
        self.clock = clock
        self.active: OrderedDict[str, SessionState] = OrderedDict()
        self.recent: OrderedDict[str, SessionState] = OrderedDict()
        self.started = 0
        self.ended = {"completed": 0, "expired": 0}
        self.evicted = 0
        self.summarizations = 0
        self.switches = 0
        self.duration = Histogram(SESSION_DURATION_BUCKETS)
        self.messages = Histogram(SESSION_MESSAGES_BUCKETS)

    def reconfigure(self, cfg: SessionsConfig) -> None:
        """New limits; they apply from the next event or expiry pass."""
        self.ttl, self.max_active, self.max_recent = cfg.ttl, cfg.max_active, cfg.max_recent

    def _live(self, sid: str, now: float) -> SessionState | None:
        s = self.active.get(sid)
        if s is not None and now - s.last_seen > self.ttl:
            self._end(s, "expired", s.last_event_at)
            return None
        return s

    def _find(self, sid: str, now: float, ts: float | None) -> SessionState | None:
        """The live session, marked active now; None when there is none."""
        s = self._live(sid, now)
        if s is not None:
            self.active.move_to_end(sid)
            s.last_seen = now
            s.last_event_at = max(s.last_event_at, now if ts is None else ts)
        return s

    def _open(self, sid: str, now: float, ts: float | None) -> SessionState:
        """The live session, or a new one (expiring the oldest when max_active are open)."""
        s = self._find(sid, now, ts)
        if s is None:
            if len(self.active) >= self.max_active:
                oldest = next(iter(self.active.values()))
                self.evicted += 1
                self._end(oldest, "expired", oldest.last_event_at)
            at = now if ts is None else ts
            s = self.active[sid] = SessionState(sid, at, at, now)
            self.recent.pop(sid, None)
            self.started += 1
        return s

    def _end(self, s: SessionState, outcome: str, at: float) -> None:
        del self.active[s.session_id]
        s.status = outcome
        s.ended_at = max(at, s.started_at)
        self.ended[outcome] += 1
        self.duration.observe(s.ended_at - s.started_at)
        self.messages.observe(s.user_messages + s.assistant_messages + s.system_messages)
        self.recent[s.session_id] = s
        while len(self.recent) > self.max_recent:
            self.recent.popitem(last=False)

    def start(self, sid: str, now: float, ts: float | None) -> None:
        self._open(sid, now, ts)  # a repeated start keeps the open session

    def message(self, ev: SessionMessage, now: float) -> None:
        s = self._open(ev.session_id, now, ev.timestamp)
        n = ev.content_length
        if ev.role == "user":
            s.user_messages += 1
            if n is not None:
                s.user_chars, s.user_sized = s.user_chars + n, s.user_sized + 1
        elif ev.role == "assistant":
            s.assistant_messages += 1
            if n is not None:
                s.assistant_chars, s.assistant_sized = s.assistant_chars + n, s.assistant_sized + 1
            if ev.provider is not None:
                s.used(ev.provider)
                if s.last_assistant_provider not in (None, ev.provider):
                    s.provider_switches += 1
                    self.switches += 1
                s.last_assistant_provider = ev.provider
            if ev.response_time_seconds is not None:
                s.response_time_sum += ev.response_time_seconds
                s.response_times += 1
        else:
            s.system_messages += 1

    def summarized(self, sid: str, now: float, ts: float | None) -> None:
        s = self._open(sid, now, ts)
        s.summarizations += 1
        self.summarizations += 1

    def end(self, sid: str, now: float, ts: float | None) -> None:
        s = self._find(sid, now, ts)  # ending an unknown session changes nothing
        if s is not None:
            self._end(s, "completed", now if ts is None else ts)

    def call(self, ev: LlmCall, now: float, cost: float | None) -> None:
        """Add a call to its session's totals; a call does not open a session by itself."""
        s = self._find(ev.session_id or "", now, ev.timestamp)
        if s is None:
            return
        s.calls += 1
        s.tokens += (
            ev.input_tokens + ev.output_tokens + ev.cached_input_tokens
            + ev.cache_write_tokens + ev.reasoning_tokens
        )  # fmt: skip
        if cost is not None:
            s.cost_usd += cost
        if ev.outcome == "success":
            s.used(ev.provider)
            if ev.duration_seconds is not None:
                s.response_time_sum += ev.duration_seconds
                s.response_times += 1
        if ev.quality_score is not None:
            s.quality_sum += ev.quality_score
            s.qualities += 1

    def expire(self, now: float | None = None) -> int:
        """End every session silent for longer than the TTL; returns how many."""
        now = self.clock() if now is None else now
        n = 0
        while self.active:
            s = next(iter(self.active.values()))
            if now - s.last_seen <= self.ttl:
                break
            self._end(s, "expired", s.last_event_at)
            n += 1
        return n

    def get(self, sid: str, now: float | None = None) -> SessionState | None:
        now = self.clock() if now is None else now
        return self._live(sid, now) or self.recent.get(sid)


class SessionCollector:
    """`llm_session*` families; reads the store only."""

    def __init__(self, store: SessionStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        st = self._store
        yield gauge("llm_sessions_active", "Open sessions.", value=len(st.active))
        yield counter("llm_sessions_started", "Sessions started.", value=st.started)
        ended = counter(
            "llm_sessions_ended", "Sessions ended: completed, or expired after going silent.",
            labels=["outcome"],
        )  # fmt: skip
        for outcome, n in st.ended.items():
            ended.add_metric([outcome], n)
        yield ended
        for name, h, what in (
            ("llm_session_duration_seconds", st.duration, "Duration of ended sessions."),
            ("llm_session_messages", st.messages, "Messages per ended session."),
        ):
            fam = histogram(name, what)
            fam.add_metric((), h)
            yield fam
        yield counter(
            "llm_session_summarizations", "Session summarizations.", value=st.summarizations
        )
        yield counter(
            "llm_session_provider_switches",
            "Consecutive assistant messages of a session served by different providers.",
            value=st.switches,
        )
        yield counter(
            "llm_exporter_sessions_evicted",
            "Sessions expired early because max_active sessions were open.",
            value=st.evicted,
        )
