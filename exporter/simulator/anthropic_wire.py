"""Anthropic Messages API wire format: models, messages, count_tokens and named SSE events."""

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

SAMPLING_REMOVED = ("temperature", "top_p", "top_k")  # 400 under anthropic-version 2026-10-21
_CREATED_AT = "2025-10-01T00:00:00Z"


def _card(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": catalog.display_name(model),
        "created_at": _CREATED_AT,
        "lifecycle": "active",
        "max_input_tokens": 200_000,
        "max_tokens": 64_000,
    }


async def list_models(call: Call) -> web.StreamResponse:
    """`GET /v1/models` with limit/after_id/before_id paging."""
    ids = catalog.models(call.provider)
    raw_limit = call.request.query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        return call.error("bad_request", detail="limit: must be an integer between 1 and 1000")
    limit = int(raw_limit)
    after, before = call.request.query.get("after_id"), call.request.query.get("before_id")
    start, stop = 0, len(ids)
    if after in ids:
        start = ids.index(after) + 1
    if before in ids:
        stop = ids.index(before)
        start = max(start, stop - limit)
    page = ids[start : min(stop, start + limit)]
    has_more = (start + len(page) < stop) if before is None else start > 0
    return call.json(
        {
            "data": [_card(m) for m in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }
    )


async def get_model(call: Call) -> web.StreamResponse:
    """`GET /v1/models/{model}`."""
    model = call.request.match_info["model"]
    if not catalog.serves(call.provider, model):
        return call.error("not_found", model=model)
    return call.json(_card(model))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _texts(body: dict[str, Any]) -> list[str]:
    system = [_text(body["system"])] if body.get("system") else []
    return system + [_text(m.get("content")) for m in body["messages"] if isinstance(m, dict)]


def _check(call: Call, *, counting: bool = False) -> web.Response | None:
    """The 400/404 this body earns, if any."""
    body: dict[str, Any] = call.body or {}
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        return call.error("bad_request", detail="model: Field required")
    if not isinstance(messages, list) or not messages:
        return call.error("bad_request", detail="messages: Field required")
    if not catalog.serves(call.provider, model):
        return call.error("not_found", model=model)
    budget = body.get("max_tokens")
    if not counting and (budget is None or bad_budget(budget)):
        return call.error("bad_request", detail="max_tokens: Field required (positive integer)")
    if call.request.headers.get("anthropic-version") == "2026-10-21":
        for name in SAMPLING_REMOVED:
            if name in body:
                detail = f"{name}: not supported with anthropic-version 2026-10-21"
                return call.error("bad_request", detail=detail)
    return None


async def count_tokens(call: Call) -> web.StreamResponse:
    """`POST /v1/messages/count_tokens`: checks key and model, generates nothing."""
    problem = _check(call, counting=True)
    return problem or call.json({"input_tokens": prompt_tokens(_texts(call.body))})


def _plan(call: Call) -> Turn:
    body: dict[str, Any] = call.body
    texts = _texts(body)
    prompt = prompt_tokens(texts)
    cached = write = 0
    if "cache_control" in repr(body):  # explicit caching anywhere in system or messages
        hit = call.state.cache.lookup(call.provider, texts)
        cached, write = (cacheable(prompt), 0) if hit else (0, cacheable(prompt))
    thinking = mapping(body.get("thinking"))
    reasons = thinking.get("type") in ("enabled", "adaptive")
    rng, budget, model = call.state.rng, body["max_tokens"], body["model"]
    return plan_turn(
        rng, model, prompt, budget=budget, reasoning=reasons, cached=cached, cache_write=write
    )


def usage(turn: Turn, *, output_tokens: int | None = None) -> dict[str, Any]:
    """Anthropic usage: `input_tokens` excludes cache reads and writes."""
    out = turn.output_tokens + turn.reasoning_tokens if output_tokens is None else output_tokens
    return {
        "input_tokens": turn.uncached_tokens,
        "cache_creation_input_tokens": turn.cache_write_tokens,
        "cache_read_input_tokens": turn.cached_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": turn.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": out,
        "output_tokens_details": {"thinking_tokens": min(out, turn.reasoning_tokens)},
        "service_tier": "standard",
    }


async def messages(call: Call) -> web.StreamResponse:
    """`POST /v1/messages`, streamed as named events when `stream: true`."""
    problem = _check(call)
    if problem is not None:
        return problem
    turn = _plan(call)
    headers = call.usage_headers(turn.prompt_tokens, turn.output_tokens + turn.reasoning_tokens)
    if call.body.get("stream") is True:
        return await sse.send(call, headers, _frames(call, turn))
    content: list[dict[str, Any]] = []
    if turn.thoughts:
        thought = "".join(turn.thoughts)
        content.append({"type": "thinking", "thinking": thought, "signature": "c2ltdWxhdGVk"})
    content.append({"type": "text", "text": turn.text})
    message = _message(call, turn) | {"content": content, "stop_reason": _stop(turn)}
    return call.json(message | {"usage": usage(turn)}, headers=headers)


def _stop(turn: Turn) -> str:
    return "max_tokens" if turn.truncated else "end_turn"


def _message(call: Call, turn: Turn) -> dict[str, Any]:
    return {
        "id": "msg_" + call.request_id.removeprefix("req_"),
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }


def _frames(call: Call, turn: Turn) -> list[str | None]:
    """message_start, ping, one block per thinking/text, message_delta, message_stop."""

    def ev(name: str, **data: Any) -> str:
        return sse.event({"type": name, **data}, name)

    start = _message(call, turn) | {"usage": usage(turn, output_tokens=1)}
    frames: list[str | None] = [ev("message_start", message=start)]
    blocks: list[tuple[str, str, list[str]]] = []
    if turn.thoughts:
        blocks.append(("thinking", "thinking_delta", turn.thoughts))
    blocks.append(("text", "text_delta", turn.pieces))
    for index, (kind, delta_type, pieces) in enumerate(blocks):
        block = {"type": kind, kind: ""}
        frames.append(ev("content_block_start", index=index, content_block=block))
        if index == 0:
            frames.append(ev("ping"))
        if call.malformed:
            broken = '{"type":"content_block_delta","index":0,"delta":{"type":"text_del'
            return [*frames, sse.TICK, sse.event(broken, "content_block_delta"), ev("message_stop")]
        for piece in pieces:
            delta = {"type": delta_type, kind: piece}
            frames += [sse.TICK, ev("content_block_delta", index=index, delta=delta)]
        if kind == "thinking":
            sig = {"type": "signature_delta", "signature": "c2ltdWxhdGVk"}
            frames.append(ev("content_block_delta", index=index, delta=sig))
        frames.append(ev("content_block_stop", index=index))
    delta = {"stop_reason": _stop(turn), "stop_sequence": None}
    frames += [sse.TICK, ev("message_delta", delta=delta, usage=usage(turn)), ev("message_stop")]
    return frames
