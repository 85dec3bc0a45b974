"""2xx bodies -> contract types: model ids and `Usage`; `ShapeError` when a body is not the
shape its protocol promises.

Usage conventions, the same for every family:
- `input` is prompt tokens billed at the plain input rate: it EXCLUDES cache reads
  (`cached_input`) and cache writes (`cache_write`), so input + cached_input + cache_write is
  the whole prompt.
- `output` EXCLUDES reasoning: token types are disjoint (as in the events API), so summing
  every `token_type` gives the total and `output + reasoning` is everything billed at the
  output rate. OpenAI, DeepSeek, Qwen, Mistral and Kimi count reasoning inside
  `completion_tokens`, so it is taken out; xAI (provider "grok") reports it beside
  `completion_tokens`, and Gemini's `thoughtsTokenCount` sits beside `candidatesTokenCount`.
A field of the wrong type raises `ShapeError`; a missing field counts 0.
"""

from __future__ import annotations

from typing import Any

from exporter.providers.base import Usage


class ShapeError(ValueError):
    """A 2xx body that is valid JSON but not the shape the protocol promises."""


def model_ids(doc: Any, list_key: str, id_key: str, prefix: str = "") -> frozenset[str]:
    """The ids in `doc[list_key][*][id_key]`, with `prefix` stripped; every entry must have one."""
    items = doc.get(list_key) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ShapeError(f"no {list_key}[] in the model list")
    ids = set()
    for item in items:
        value = item.get(id_key) if isinstance(item, dict) else None
        if not isinstance(value, str) or not value.removeprefix(prefix):
            raise ShapeError(f"a model without {id_key}")
        ids.add(value.removeprefix(prefix))
    return frozenset(ids)


REASONING_OUTSIDE_COMPLETION = frozenset({"grok"})  # providers whose completion_tokens omit it


def _obj(doc: Any, key: str) -> dict[str, Any]:
    value = doc.get(key) if isinstance(doc, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShapeError(f"{key} is not an object")
    return value


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ShapeError(f"{key} is not a token count")
    return int(value)


def _usage(prompt: int, cached: int, cache_write: int, billed_out: int, reasoning: int) -> Usage:
    """`billed_out` is every output-rate token, reasoning included; `output` is the rest."""
    return Usage(
        input=max(prompt - cached - cache_write, 0),
        output=max(billed_out - reasoning, 0),
        cached_input=cached,
        cache_write=cache_write,
        reasoning=reasoning,
    )


def openai_usage(usage: Any, provider: str) -> Usage:
    """Chat Completions `usage` (OpenAI-compatible providers, with DeepSeek/Kimi cache fields)."""
    if not isinstance(usage, dict):
        raise ShapeError("usage is not an object")
    prompt_details = _obj(usage, "prompt_tokens_details")
    completion_details = _obj(usage, "completion_tokens_details")
    cached = (
        _count(prompt_details, "cached_tokens")
        or _count(usage, "prompt_cache_hit_tokens")  # DeepSeek
        or _count(usage, "cached_tokens")  # Moonshot's older top-level field
    )
    reasoning = _count(completion_details, "reasoning_tokens")
    output = _count(usage, "completion_tokens")
    if provider in REASONING_OUTSIDE_COMPLETION:
        output += reasoning
    return _usage(
        _count(usage, "prompt_tokens"),
        cached,
        _count(prompt_details, "cache_write_tokens"),
        output,
        reasoning,
    )


def anthropic_usage(usage: Any) -> Usage:
    """Messages `usage`; Anthropic's `input_tokens` already excludes cache reads and writes."""
    if not isinstance(usage, dict):
        raise ShapeError("usage is not an object")
    cached = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    prompt = _count(usage, "input_tokens") + cached + written
    details = _obj(usage, "output_tokens_details")
    return _usage(
        prompt, cached, written, _count(usage, "output_tokens"), _count(details, "thinking_tokens")
    )


def gemini_usage(meta: Any) -> Usage:
    """generateContent `usageMetadata`; `promptTokenCount` includes cached content."""
    if not isinstance(meta, dict):
        raise ShapeError("usageMetadata is not an object")
    thoughts = _count(meta, "thoughtsTokenCount")
    prompt = _count(meta, "promptTokenCount") + _count(meta, "toolUsePromptTokenCount")
    return _usage(
        prompt,
        _count(meta, "cachedContentTokenCount"),
        0,
        _count(meta, "candidatesTokenCount") + thoughts,
        thoughts,
    )
