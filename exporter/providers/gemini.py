"""Google Gemini Developer API (generateContent): x-goog-api-key, data-only SSE with alt=sse."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from exporter.providers.base import ProbeResult, ProbeTarget, Usage
from exporter.providers.classify import classify_stream_error
from exporter.providers.http import Exchange, ProbeFailure, base_headers, decode_json, run
from exporter.providers.shapes import ShapeError, gemini_usage, model_ids
from exporter.providers.sse import SseEvent
from exporter.vocab import Check, Reason


def thinking_config(model: str) -> dict[str, Any] | None:
    """Keep a 1-token probe cheap: 2.5 Flash(-Lite) takes a budget of 0, 3.x a "low" level."""
    if not model.startswith("gemini-") or model.startswith(("gemini-1.", "gemini-2.0")):
        return None  # older or unknown models: no switch to send
    if model.startswith("gemini-2.5"):
        return {"thinkingBudget": 0} if "flash" in model else None  # 2.5 Pro cannot turn it off
    return {"thinkingLevel": "low"}


def _models(doc: Any) -> tuple[frozenset[str], None]:
    return model_ids(doc, "models", "name", prefix="models/"), None


def _content(doc: Any) -> tuple[None, Usage | None]:
    if not isinstance(doc, dict) or not (
        isinstance(doc.get("candidates"), list) or isinstance(doc.get("usageMetadata"), dict)
    ):
        raise ShapeError("neither candidates[] nor usageMetadata in the response")
    meta = doc.get("usageMetadata")
    return None, None if meta is None else gemini_usage(meta)


def _has_text(chunk: dict[str, Any]) -> bool:
    candidates = chunk.get("candidates") or []
    if not isinstance(candidates, list):
        raise ShapeError("candidates is not a list")
    for candidate in candidates:
        content = candidate.get("content") if isinstance(candidate, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str) and part["text"]:
                return True  # thought parts (thought: true) count, like reasoning deltas
    return False


class ContentStream:
    """Each event is a whole GenerateContentResponse; no end marker; the last usage wins."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: Usage | None = None

    def feed(self, event: SseEvent) -> bool:
        chunk = decode_json(event.data)
        if not isinstance(chunk, dict):
            raise ShapeError("a stream chunk is not an object")
        if chunk.get("error") is not None:
            reason, info = classify_stream_error(self.provider, chunk)
            raise ProbeFailure(reason, f"stream error {info.label}".rstrip())
        if chunk.get("usageMetadata") is not None:
            self.usage = gemini_usage(chunk["usageMetadata"])
        return _has_text(chunk)


def exchange(target: ProbeTarget, check: Check) -> Exchange:
    """The request for one check against a Gemini API root (…/v1beta). The key is a header,
    never a `?key=` query parameter, so it cannot leak through URLs in logs or errors."""
    root = target.base_url.rstrip("/")
    headers = base_headers(stream=check == Check.STREAM)
    if target.api_key:
        headers["x-goog-api-key"] = target.api_key
    if check == Check.MODELS:
        return Exchange("GET", f"{root}/models?pageSize=1000", headers, parse=_models)
    model = target.probe_model.removeprefix("models/")
    config: dict[str, Any] = {"maxOutputTokens": 1}
    if (thinking := thinking_config(model)) is not None:
        config["thinkingConfig"] = thinking
    body = {"contents": [{"role": "user", "parts": [{"text": "ping"}]}], "generationConfig": config}
    path = f"{root}/models/{quote(model, safe='-._~')}"
    if check == Check.COMPLETION:
        return Exchange("POST", f"{path}:generateContent", headers, body, parse=_content)
    return Exchange(
        "POST",
        f"{path}:streamGenerateContent?alt=sse",
        headers,
        body,
        stream=lambda: ContentStream(target.provider),
    )


async def probe(session: aiohttp.ClientSession, target: ProbeTarget, check: Check) -> ProbeResult:
    """Run one check; every failure comes back as a ProbeResult with a reason."""
    if check not in set(Check):
        return ProbeResult(success=False, reason=Reason.OTHER, error=f"unknown check {check!r}")
    return await run(session, target, exchange(target, check))
