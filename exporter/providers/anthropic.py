"""Anthropic Messages API: x-api-key + anthropic-version, named SSE events."""

from __future__ import annotations

from typing import Any

import aiohttp

from exporter.providers.base import ProbeResult, ProbeTarget, Usage
from exporter.providers.classify import classify_stream_error
from exporter.providers.http import Exchange, ProbeFailure, base_headers, decode_json, run
from exporter.providers.shapes import ShapeError, anthropic_usage, model_ids
from exporter.providers.sse import SseEvent
from exporter.vocab import Check, Reason

# 2023-06-01 is valid everywhere; with no sampling parameters the same request is also valid
# under 2026-10-21 (which rejects temperature/top_p/top_k).
API_VERSION = "2023-06-01"
CONTENT_DELTAS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}


def _models(doc: Any) -> tuple[frozenset[str], None]:
    return model_ids(doc, "data", "id"), None


def _message(doc: Any) -> tuple[None, Usage | None]:
    if not isinstance(doc, dict) or not isinstance(doc.get("content"), list):
        raise ShapeError("no content[] in the message")
    usage = doc.get("usage")
    return None, None if usage is None else anthropic_usage(usage)


class MessageStream:
    """message_start .. message_stop. Usage: message_start's, updated by each message_delta
    (whose counts are cumulative). `ping` is ignored; an `error` event is a classified failure."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self._usage: dict[str, Any] = {}

    @property
    def usage(self) -> Usage | None:
        return anthropic_usage(self._usage) if self._usage else None

    def feed(self, event: SseEvent) -> bool:
        data = decode_json(event.data)
        if not isinstance(data, dict):
            raise ShapeError("an event is not an object")
        kind = data.get("type", event.event)
        if kind == "error" or event.event == "error":
            reason, info = classify_stream_error(self.provider, data)
            raise ProbeFailure(reason, f"stream error {info.label}".rstrip())
        if kind == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self._merge(usage)
        elif kind == "message_delta":
            self._merge(data.get("usage"))
        elif kind == "message_stop":
            self.done = True
        elif kind == "content_block_delta":
            delta = data.get("delta")
            field = CONTENT_DELTAS.get(delta.get("type")) if isinstance(delta, dict) else None
            return field is not None and isinstance(delta.get(field), str) and bool(delta[field])
        return False

    def _merge(self, usage: Any) -> None:
        if usage is None:
            return
        if not isinstance(usage, dict):
            raise ShapeError("usage is not an object")
        self._usage.update({k: v for k, v in usage.items() if v is not None})


def exchange(target: ProbeTarget, check: Check) -> Exchange:
    """The request for one check against an Anthropic API root (…/v1)."""
    root = target.base_url.rstrip("/")
    headers = base_headers(stream=check == Check.STREAM)
    headers["anthropic-version"] = API_VERSION
    if target.api_key:
        headers["x-api-key"] = target.api_key
    if check == Check.MODELS:
        return Exchange("GET", f"{root}/models?limit=1000", headers, parse=_models)
    body: dict[str, Any] = {
        "model": target.probe_model,
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "ping"}],
    }
    if check == Check.COMPLETION:
        return Exchange("POST", f"{root}/messages", headers, body, parse=_message)
    body["stream"] = True
    return Exchange(
        "POST", f"{root}/messages", headers, body, stream=lambda: MessageStream(target.provider)
    )


async def probe(session: aiohttp.ClientSession, target: ProbeTarget, check: Check) -> ProbeResult:
    """Run one check; every failure comes back as a ProbeResult with a reason."""
    if check not in set(Check):
        return ProbeResult(success=False, reason=Reason.OTHER, error=f"unknown check {check!r}")
    return await run(session, target, exchange(target, check))
