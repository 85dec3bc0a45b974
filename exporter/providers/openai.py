"""OpenAI Chat Completions, and the providers that speak it: Mistral, xAI, Qwen, DeepSeek, Kimi."""

from __future__ import annotations

from typing import Any

import aiohttp

from exporter.providers.base import ProbeResult, ProbeTarget, Usage
from exporter.providers.classify import classify_stream_error
from exporter.providers.http import Exchange, ProbeFailure, base_headers, decode_json, run
from exporter.providers.shapes import ShapeError, model_ids, openai_usage
from exporter.providers.sse import SseEvent
from exporter.vocab import Check, Reason

# The cheapest billable request per provider id: one output token, thinking switched off
# where the provider has a switch (providers.md "Minimal completion" per provider).
COMPLETION_FIELDS: dict[str, dict[str, Any]] = {
    "openai": {"max_completion_tokens": 1, "reasoning_effort": "none"},
    "qwen": {"max_tokens": 1, "enable_thinking": False},
    "deepseek": {"max_tokens": 1, "thinking": {"type": "disabled"}},
}
DEFAULT_FIELDS: dict[str, Any] = {"max_tokens": 1}

# What to ask for so a stream ends with usage; Mistral sends it unasked and may reject extras.
STREAM_OPTIONS: dict[str, dict[str, Any] | None] = {
    "openai": {"include_usage": True, "include_obfuscation": False},
    "mistral": None,
}
DEFAULT_STREAM_OPTIONS: dict[str, Any] = {"include_usage": True}

CONTENT_FIELDS = ("content", "reasoning_content", "reasoning")  # deltas that count as a token


def _models(doc: Any) -> tuple[frozenset[str], None]:
    return model_ids(doc, "data", "id"), None


def _completion(provider: str, doc: Any) -> tuple[None, Usage | None]:
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        raise ShapeError("no choices[] in the completion")
    usage = doc.get("usage")
    return None, None if usage is None else openai_usage(usage, provider)


class ChatStream:
    """`chat.completion.chunk` events up to `data: [DONE]`; usage from the last chunk with it."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SseEvent) -> bool:
        if event.data.strip() == "[DONE]":
            self.done = True
            return False
        chunk = decode_json(event.data)
        if not isinstance(chunk, dict):
            raise ShapeError("a stream chunk is not an object")
        if chunk.get("error") is not None:
            reason, info = classify_stream_error(self.provider, chunk)
            raise ProbeFailure(reason, f"stream error {info.label}".rstrip())
        choices = chunk.get("choices") or []
        if not isinstance(choices, list):
            raise ShapeError("choices is not a list")
        content = False
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(delta, dict):
                content |= any(isinstance(delta.get(k), str) and delta[k] for k in CONTENT_FIELDS)
                content |= bool(delta.get("tool_calls"))
            if isinstance(choice, dict) and isinstance(choice.get("usage"), dict):  # Kimi
                self.usage = openai_usage(choice["usage"], self.provider)
        if chunk.get("usage") is not None:
            self.usage = openai_usage(chunk["usage"], self.provider)
        return content


def exchange(target: ProbeTarget, check: Check) -> Exchange:
    """The request for one check against an OpenAI-compatible API root."""
    root = target.base_url.rstrip("/")
    headers = base_headers(stream=check == Check.STREAM)
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    if check == Check.MODELS:
        return Exchange("GET", f"{root}/models", headers, parse=_models)
    body: dict[str, Any] = {
        "model": target.probe_model,
        "messages": [{"role": "user", "content": "ping"}],
        **COMPLETION_FIELDS.get(target.provider, DEFAULT_FIELDS),
    }
    url = f"{root}/chat/completions"
    if check == Check.COMPLETION:
        return Exchange("POST", url, headers, body, parse=lambda d: _completion(target.provider, d))
    body["stream"] = True
    options = STREAM_OPTIONS.get(target.provider, DEFAULT_STREAM_OPTIONS)
    if options is not None:
        body["stream_options"] = options
    return Exchange("POST", url, headers, body, stream=lambda: ChatStream(target.provider))


async def probe(session: aiohttp.ClientSession, target: ProbeTarget, check: Check) -> ProbeResult:
    """Run one check; every failure comes back as a ProbeResult with a reason."""
    if check not in set(Check):
        return ProbeResult(success=False, reason=Reason.OTHER, error=f"unknown check {check!r}")
    return await run(session, target, exchange(target, check))
