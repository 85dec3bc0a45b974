"""Gemini Developer API wire format: models, generateContent, streamGenerateContent, countTokens."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from exporter.simulator import catalog, sse
from exporter.simulator.call import Call
from exporter.simulator.turns import (
    Turn,
    bad_budget,
    cacheable,
    mapping,
    plan_turn,
    prompt_tokens,
)

_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_THINKING_LEVELS = frozenset({"LOW", "MEDIUM", "HIGH", "XHIGH"})


def _card(model: str) -> dict[str, Any]:
    return {
        "name": f"models/{model}",
        "baseModelId": model,
        "version": "001",
        "displayName": catalog.display_name(model),
        "description": f"{catalog.display_name(model)} (simulated)",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": _METHODS,
        "thinking": True,
    }


async def list_models(call: Call) -> web.StreamResponse:
    """`GET /v1beta/models` with pageSize/pageToken paging."""
    ids = catalog.models(call.provider)
    size, token = call.request.query.get("pageSize", "50"), call.request.query.get("pageToken", "0")
    if not size.isdigit() or not token.isdigit() or int(token) > len(ids):
        return call.error("bad_request", detail="Invalid pageSize or pageToken")
    start, count = int(token), max(1, min(int(size) or 50, 1000))
    body: dict[str, Any] = {"models": [_card(m) for m in ids[start : start + count]]}
    if start + count < len(ids):
        body["nextPageToken"] = str(start + count)
    return call.json(body)


async def get_model(call: Call) -> web.StreamResponse:
    """`GET /v1beta/models/{model}`."""
    model = call.request.match_info["model"]
    if not catalog.serves(call.provider, model):
        return call.error("not_found", model=model)
    return call.json(_card(model))


def _texts(body: dict[str, Any]) -> list[str]:
    blocks = [body.get("systemInstruction") or {}, *body.get("contents", [])]
    out = []
    for block in blocks:
        parts = block.get("parts", []) if isinstance(block, dict) else []
        out.append("".join(str(p.get("text", "")) for p in parts if isinstance(p, dict)))
    return out


def _usage(turn: Turn, pieces: int | None = None) -> dict[str, Any]:
    """usageMetadata; zero-valued optional counts are left out, as Gemini does."""
    shown = turn.output_tokens if pieces is None else pieces
    meta: dict[str, Any] = {
        "promptTokenCount": turn.prompt_tokens,
        "candidatesTokenCount": shown,
        "totalTokenCount": turn.prompt_tokens + shown + turn.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": turn.prompt_tokens}],
    }
    if turn.cached_tokens:
        meta["cachedContentTokenCount"] = turn.cached_tokens
        meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": turn.cached_tokens}]
    if turn.reasoning_tokens:
        meta["thoughtsTokenCount"] = turn.reasoning_tokens
    return meta


def _candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"role": "model"}
    if parts:
        content["parts"] = parts
    cand: dict[str, Any] = {"content": content, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return cand


async def model_action(call: Call) -> web.StreamResponse:
    """`POST /v1beta/models/{model}:{action}` for the three actions the simulator knows."""
    model, action = call.request.match_info["model"], call.request.match_info["action"]
    if action not in ("generateContent", "streamGenerateContent", "countTokens"):
        return call.error("not_found", model=f"{model}:{action}")
    if not catalog.serves(call.provider, model):
        return call.error("not_found", model=model)
    body: dict[str, Any] = call.body or {}
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return call.error("bad_request", detail="* GenerateContentRequest.contents: required")
    texts = _texts(body)
    prompt = prompt_tokens(texts)
    if action == "countTokens":
        return call.json({"totalTokens": prompt})
    config = mapping(body.get("generationConfig"))
    thinking = mapping(config.get("thinkingConfig"))
    reasons = thinking.get("thinkingBudget") not in (None, 0) or (
        str(thinking.get("thinkingLevel", "")).upper() in _THINKING_LEVELS
    )
    budget = config.get("maxOutputTokens")
    if bad_budget(budget):
        return call.error("bad_request", detail="maxOutputTokens must be a positive integer")
    cached = cacheable(prompt) if call.state.cache.lookup(call.provider, texts) else 0
    turn = plan_turn(call.state.rng, model, prompt, budget=budget, reasoning=reasons, cached=cached)
    headers = call.usage_headers(prompt, turn.output_tokens + turn.reasoning_tokens)
    finish = "MAX_TOKENS" if turn.truncated else "STOP"
    envelope = {"modelVersion": model, "responseId": call.request_id[:22]}
    show_thoughts = thinking.get("includeThoughts") is True
    if action == "generateContent":
        parts = [{"text": turn.text}] if turn.pieces else []
        if show_thoughts and turn.thoughts:
            parts.insert(0, {"text": "".join(turn.thoughts), "thought": True})
        body = {"candidates": [_candidate(parts, finish)], "usageMetadata": _usage(turn)}
        return call.json(body | envelope, headers=headers)
    chunks: list[dict[str, Any]] = []
    if show_thoughts:
        for thought in turn.thoughts:
            chunks.append({"candidates": [_candidate([{"text": thought, "thought": True}])]})
    for i, piece in enumerate(turn.pieces, start=1):
        cand = _candidate([{"text": piece}], finish if i == len(turn.pieces) else None)
        chunks.append({"candidates": [cand], "usageMetadata": _usage(turn, i)})
    if not turn.pieces:
        chunks.append({"candidates": [_candidate([], finish)], "usageMetadata": _usage(turn)})
    chunks = [c | envelope for c in chunks]
    if call.request.query.get("alt") != "sse":  # without alt=sse Gemini streams one JSON array
        return call.json(chunks, headers=headers)
    frames: list[str | None] = []
    for chunk in chunks:
        frames += [sse.TICK, sse.event(chunk)]
        if call.malformed:
            return await sse.send(call, headers, [*frames, sse.event('{"candidates":[{"conte')])
    return await sse.send(call, headers, frames)
