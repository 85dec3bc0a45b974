"""A synthetic orchestrator for the demo: real calls to the simulator, reported via exporter.client.

Sessions stick to a primary provider, sometimes route a turn elsewhere or fail over after an
error (provider switches), get summarized when long, and mostly end; some are abandoned and left
to expire. About half the calls stream (time to first token); now and then a model outside the
allow-list is used. Usage comes from the providers' own response fields, made disjoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from exporter.client import Reporter
from exporter.config import Config
from exporter.defaults import SIMULATOR_ROOTS
from exporter.providers.base import Usage

log = logging.getLogger(__name__)

# Real model ids outside the default allow-lists, to exercise the `other` label.
OFF_LIST = {
    "openai": "gpt-5.4-pro", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-flash-latest",
    "mistral": "codestral-latest", "grok": "grok-build-0.1", "qwen": "qwen-turbo",
    "deepseek": "deepseek-v4-flash", "kimi_k2": "kimi-k2.5",
}  # fmt: skip
SYSTEM = "You are the platform's assistant. Answer briefly and cite sources. " * 70  # >1K tokens
FAQ = "What are your opening hours?"  # asked again and again, so providers cache the prompt
QUALITY = {"openai": 0.86, "anthropic": 0.9, "gemini": 0.84, "mistral": 0.78, "grok": 0.8,
           "qwen": 0.76, "deepseek": 0.8, "kimi_k2": 0.79}  # fmt: skip


@dataclass
class Measured:
    """What one call looked like from the caller's side."""

    outcome: str
    duration: float
    ttft: float | None = None
    usage: Usage | None = None


def status_reason(status: int) -> str:
    """A coarse HTTP status -> contract reason map (the probers classify finer)."""
    if status in (401, 403):
        return "auth"
    fixed = {402: "billing", 404: "not_found", 408: "timeout", 429: "rate_limit",
             504: "timeout", 503: "overloaded", 529: "overloaded"}  # fmt: skip
    if status in fixed:
        return fixed[status]
    return "server_error" if status >= 500 else "bad_request"


def _n(d: dict[str, Any], key: str) -> int:
    return int(d.get(key) or 0)


def usage_from(provider: str, api: str, u: dict[str, Any]) -> Usage:
    """Disjoint Usage from a provider's usage object (input excludes cache, output reasoning)."""
    if api == "anthropic":
        thinking = _n(u.get("output_tokens_details") or {}, "thinking_tokens")
        return Usage(
            _n(u, "input_tokens"), _n(u, "output_tokens") - thinking,
            _n(u, "cache_read_input_tokens"), _n(u, "cache_creation_input_tokens"), thinking,
        )  # fmt: skip
    if api == "gemini":
        cached = _n(u, "cachedContentTokenCount")
        return Usage(
            _n(u, "promptTokenCount") - cached, _n(u, "candidatesTokenCount"), cached, 0,
            _n(u, "thoughtsTokenCount"),
        )  # fmt: skip
    cached = _n(u.get("prompt_tokens_details") or {}, "cached_tokens")
    reasoning = _n(u.get("completion_tokens_details") or {}, "reasoning_tokens")
    completion = _n(u, "completion_tokens")
    output = completion if provider == "grok" else completion - reasoning  # xAI excludes it
    return Usage(_n(u, "prompt_tokens") - cached, max(0, output), cached, 0, reasoning)


def _request(api: str, root: str, model: str, text: str, stream: bool) -> tuple[str, dict, dict]:
    key = "sim-key"  # the simulator takes any non-empty key
    if api == "anthropic":
        body = {"model": model, "max_tokens": 256, "system": SYSTEM, "stream": stream,
                "messages": [{"role": "user", "content": text}]}  # fmt: skip
        return f"{root}/messages", body, {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if api == "gemini":
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        body = {"systemInstruction": {"parts": [{"text": SYSTEM}]},
                "contents": [{"role": "user", "parts": [{"text": text}]}]}  # fmt: skip
        return f"{root}/models/{model}:{action}", body, {"x-goog-api-key": key}
    body = {
        "model": model,
        "max_tokens": 256,
        "stream": stream,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return f"{root}/chat/completions", body, {"Authorization": f"Bearer {key}"}


async def _sse(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    async for raw in resp.content:
        line = raw.strip()
        if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
            yield json.loads(line[5:])


def _first_token(api: str, chunk: dict[str, Any]) -> bool:
    if api == "anthropic":
        return chunk.get("type") == "content_block_delta"
    if api == "gemini":
        parts = ((chunk.get("candidates") or [{}])[0].get("content") or {}).get("parts") or []
        return any(p.get("text") for p in parts)
    delta = ((chunk.get("choices") or [{}])[0]).get("delta") or {}
    return bool(delta.get("content") or delta.get("reasoning_content"))


def _usage_in(api: str, chunk: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    if api == "anthropic":
        inner = chunk.get("message", chunk) if chunk.get("type") == "message_start" else chunk
        return {**seen, **(inner.get("usage") or {})}
    if api == "gemini":
        return chunk.get("usageMetadata") or seen
    choice = (chunk.get("choices") or [{}])[0]
    return chunk.get("usage") or choice.get("usage") or seen


async def call_provider(
    http: aiohttp.ClientSession, base: str, provider: str, api: str, model: str, text: str,
    stream: bool,
) -> Measured:  # fmt: skip
    """One real call to the simulator, measured."""
    url, body, headers = _request(api, base + SIMULATOR_ROOTS[provider], model, text, stream)
    started = time.perf_counter()
    ttft = None
    try:
        async with http.post(url, json=body, headers=headers) as resp:
            if resp.status != 200:
                await resp.read()
                return Measured(status_reason(resp.status), time.perf_counter() - started)
            if not stream:
                data = await resp.json(content_type=None)
                u = data.get("usageMetadata" if api == "gemini" else "usage") or {}
            else:
                u = {}
                async for chunk in _sse(resp):
                    if ttft is None and _first_token(api, chunk):
                        ttft = time.perf_counter() - started
                    u = _usage_in(api, chunk, u)
        usage = usage_from(provider, api, u)
    except (ValueError, AttributeError, IndexError, TypeError):
        return Measured("invalid_response", time.perf_counter() - started)
    except TimeoutError:
        return Measured("timeout", time.perf_counter() - started)
    except aiohttp.ClientError:
        return Measured("network", time.perf_counter() - started)
    return Measured("success", time.perf_counter() - started, ttft, usage)


@dataclass
class _Session:
    sid: str
    primary: str
    turns_left: int
    messages: int = 0
    busy: bool = False


class _Orchestrator:
    """Paces turns across sessions and reports every call and message."""

    def __init__(self, config: Config, rep: Reporter, http: aiohttp.ClientSession, base: str,
                 rng: random.Random) -> None:  # fmt: skip
        self.enabled = {p: c for p, c in config.enabled_providers().items() if p in SIMULATOR_ROOTS}
        self.rep, self.http, self.base, self.rng = rep, http, base, rng
        self.sessions: list[_Session] = []

    def new_session(self) -> _Session:
        s = _Session(f"sim-{uuid.uuid4().hex[:12]}", self.rng.choice(list(self.enabled)),
                     self.rng.randint(2, 12))  # fmt: skip
        self.sessions.append(s)
        self.rep.session_start(s.sid)
        return s

    def pick_session(self) -> _Session:
        idle = [s for s in self.sessions if not s.busy]
        s = (
            self.new_session()
            if len(idle) < 4 or self.rng.random() < 0.15
            else self.rng.choice(idle)
        )
        s.busy = True
        return s

    async def ask(self, s: _Session, provider: str) -> Measured:
        pc, rng = self.enabled[provider], self.rng
        model = rng.choice(pc.models)
        if rng.random() < 0.03:
            model = OFF_LIST.get(provider, model)
        text = FAQ if rng.random() < 0.3 else f"Question {s.messages} of {s.sid}"  # FAQ: cached
        stream = rng.random() < 0.5
        m = await call_provider(self.http, self.base, provider, pc.api, model, text, stream)
        u = m.usage or Usage()
        quality = None
        if m.outcome == "success" and rng.random() < 0.6:
            quality = min(1.0, max(0.0, rng.gauss(QUALITY.get(provider, 0.8), 0.07)))
        self.rep.record_call(
            provider, model, outcome=m.outcome, duration_seconds=m.duration,
            time_to_first_token_seconds=m.ttft, input_tokens=u.input, output_tokens=u.output,
            cached_input_tokens=u.cached_input, cache_write_tokens=u.cache_write,
            reasoning_tokens=u.reasoning, session_id=s.sid, quality_score=quality,
        )  # fmt: skip
        return m

    async def turn(self, s: _Session) -> None:
        rng, rep = self.rng, self.rep
        try:
            rep.session_message(s.sid, "user", content_length=rng.randint(20, 800))
            others = [p for p in self.enabled if p != s.primary] or [s.primary]
            provider = s.primary if rng.random() < 0.8 else rng.choice(others)
            m = await self.ask(s, provider)
            if m.outcome != "success":  # fail over once to another provider
                provider = rng.choice(others)
                m = await self.ask(s, provider)
            if m.outcome == "success":
                chars = 4 * (m.usage.output if m.usage else 0) or rng.randint(50, 400)
                rep.session_message(s.sid, "assistant", provider=provider, content_length=chars,
                                    response_time_seconds=m.duration)  # fmt: skip
            s.messages += 2
            if s.messages >= 8 and rng.random() < 0.25:
                rep.session_summarized(s.sid)
            s.turns_left -= 1
            if s.turns_left <= 0:
                self.sessions.remove(s)
                if rng.random() < 0.85:  # the rest are abandoned and expire
                    rep.session_end(s.sid)
        except Exception:  # a bug here must not end the demo's traffic
            log.exception("synthetic turn failed")
        finally:
            s.busy = False


async def run_synthetic_orchestrator(
    config: Config,
    *,
    events_url: str,
    simulator_url: str,
    stop: asyncio.Event,
    rate_per_second: float = 4.0,
    token: str | None = None,
    seed: int | None = None,
) -> None:
    """Run until `stop` is set: about `rate_per_second` turns per second, reported via Reporter."""
    rng = random.Random(seed)
    rep = Reporter(events_url, token=token, flush_interval=0.5)
    tasks: set[asyncio.Task[None]] = set()
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            orch = _Orchestrator(config, rep, http, simulator_url.rstrip("/"), rng)
            if not orch.enabled:
                await stop.wait()
                return
            while not stop.is_set():
                if len(tasks) < 64:
                    task = asyncio.create_task(orch.turn(orch.pick_session()))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.expovariate(rate_per_second))
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await rep.aclose()
