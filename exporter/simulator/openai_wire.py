"""OpenAI-compatible wire format (OpenAI, Mistral, xAI, Qwen, DeepSeek, Kimi) with their quirks."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from exporter.simulator import catalog, sse
from exporter.simulator.call import Call
from exporter.simulator.openai_usage import usage
from exporter.simulator.turns import (
    Turn,
    bad_budget,
    cacheable,
    mapping,
    plan_turn,
    prompt_tokens,
)

SHOWS_REASONING = frozenset({"deepseek", "qwen", "kimi_k2", "grok"})  # as delta.reasoning_content
USAGE_ON_LAST_CHUNK = frozenset({"kimi_k2", "mistral"})


def _model_card(provider: str, model: str) -> dict[str, Any]:
    card: dict[str, Any] = {
        "id": model,
        "object": "model",
        "created": catalog.CREATED,
        "owned_by": catalog.OWNERS.get(provider, "system"),
    }
    if provider == "mistral":
        card |= {
            "name": model,
            "description": f"{catalog.display_name(model)} (simulated)",
            "capabilities": {"completion_chat": True, "function_calling": True, "vision": False},
            "max_context_length": 131072,
            "aliases": [],
            "deprecation": None,
            "type": "base",
        }
    return card


async def list_models(call: Call) -> web.StreamResponse:
    """`GET {root}/models` in the OpenAI list shape."""
    data = [_model_card(call.provider, m) for m in catalog.models(call.provider)]
    return call.json({"object": "list", "data": data})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _reasons(provider: str, model: str, body: dict[str, Any]) -> bool:
    """Whether the simulated model thinks before answering, given the request's switches."""
    thinking = mapping(body.get("thinking"))
    if provider == "openai":
        return body.get("reasoning_effort", "medium") != "none"
    if provider == "grok":
        return "non-reasoning" not in model
    if provider in ("deepseek", "kimi_k2"):
        return thinking.get("type") != "disabled" and body.get("reasoning_effort") != "none"
    if provider == "qwen":
        return body.get("enable_thinking") is True
    return False


def _plan(call: Call) -> Turn | web.Response:
    """The turn this request asks for, or the provider's 400/404 answer."""
    body: dict[str, Any] = call.body or {}
    model, messages = body.get("model"), body.get("messages")
    if not isinstance(model, str) or not model:
        return call.error("bad_request", detail="you must provide a model parameter")
    if not isinstance(messages, list) or not messages:
        return call.error("bad_request", detail="messages: must be a non-empty array")
    if not catalog.serves(call.provider, model):
        return call.error("not_found", model=model)
    budget = body.get("max_completion_tokens", body.get("max_tokens"))
    if bad_budget(budget):
        return call.error("bad_request", detail="max_tokens must be a positive integer")
    texts = [_text(m.get("content")) for m in messages if isinstance(m, dict)]
    prompt = prompt_tokens(texts)
    cached = cacheable(prompt) if call.state.cache.lookup(call.provider, texts) else 0
    reasoning = _reasons(call.provider, model, body)
    rng = call.state.rng
    return plan_turn(rng, model, prompt, budget=budget, reasoning=reasoning, cached=cached)


async def chat(call: Call) -> web.StreamResponse:
    """`POST {root}/chat/completions`, streamed when the body says `stream: true`."""
    turn = _plan(call)
    if isinstance(turn, web.Response):
        return turn
    billed = turn.output_tokens + turn.reasoning_tokens
    headers = call.usage_headers(turn.prompt_tokens, billed)
    if (call.body or {}).get("stream") is True:
        return await sse.send(call, headers, _frames(call, turn))
    message: dict[str, Any] = {"role": "assistant", "content": turn.text, "refusal": None}
    if call.provider in SHOWS_REASONING and turn.thoughts:
        message["reasoning_content"] = "".join(turn.thoughts)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish(turn)}
    body = _envelope(call, turn, "chat.completion") | {
        "choices": [choice],
        "usage": usage(call.provider, turn),
    }
    return call.json(body, headers=headers)


def _finish(turn: Turn) -> str:
    return "length" if turn.truncated else "stop"


def _envelope(call: Call, turn: Turn, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{call.request_id}",
        "object": kind,
        "created": int(time.time()),
        "model": turn.model,
        "system_fingerprint": "fp_simulator",
    }


def _frames(call: Call, turn: Turn) -> list[str | None]:
    """The SSE frames of a streamed answer, with the provider's usage placement."""
    body: dict[str, Any] = call.body or {}
    options = mapping(body.get("stream_options"))
    with_usage = options.get("include_usage") is True
    base = _envelope(call, turn, "chat.completion.chunk")
    if with_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return base | {"choices": [choice]}

    frames: list[str | None] = []
    if call.provider == "deepseek":  # queued: keep-alive comments before anything else
        frames += [sse.comment("keep-alive"), sse.TICK, sse.comment("keep-alive"), sse.TICK]
    frames.append(sse.event(chunk({"role": "assistant", "content": ""})))
    if call.malformed:
        broken = '{"id":"' + base["id"] + '","choices":[{"delta":{"content":"bro'
        return [*frames, sse.TICK, sse.event(broken), sse.event("[DONE]")]
    if call.provider in SHOWS_REASONING:
        for piece in turn.thoughts:
            frames += [sse.TICK, sse.event(chunk({"reasoning_content": piece}))]
    for piece in turn.pieces:
        frames += [sse.TICK, sse.event(chunk({"content": piece}))]
    last = chunk({}, _finish(turn))
    if call.provider == "kimi_k2":
        last["choices"][0]["usage"] = usage(call.provider, turn)
    elif call.provider == "mistral":
        last["usage"] = usage(call.provider, turn)
    frames += [sse.TICK, sse.event(last)]
    if with_usage and call.provider not in USAGE_ON_LAST_CHUNK:
        frames.append(sse.event(base | {"choices": [], "usage": usage(call.provider, turn)}))
    frames.append(sse.event("[DONE]"))
    return frames
