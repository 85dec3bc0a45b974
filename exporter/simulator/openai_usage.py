"""The `usage` object of OpenAI-compatible answers, as each of the six providers fills it."""

from __future__ import annotations

from typing import Any

from exporter.simulator.turns import Turn


def _completion_details(turn: Turn) -> dict[str, int]:
    return {
        "reasoning_tokens": turn.reasoning_tokens,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }


def usage(provider: str, turn: Turn) -> dict[str, Any]:
    """Usage for `turn`; `prompt_tokens` always includes cached tokens.

    xAI counts reasoning outside `completion_tokens` (but inside `total_tokens`);
    DeepSeek reports its cache as hit/miss counts; Kimi adds a top-level `cached_tokens`.
    """
    prompt, cached, reasoning = turn.prompt_tokens, turn.cached_tokens, turn.reasoning_tokens
    completion = turn.output_tokens + reasoning
    if provider == "grok":
        return {
            "prompt_tokens": prompt,
            "completion_tokens": turn.output_tokens,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {
                "text_tokens": prompt,
                "audio_tokens": 0,
                "image_tokens": 0,
                "cached_tokens": cached,
            },
            "completion_tokens_details": _completion_details(turn),
            "num_sources_used": 0,
        }
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if provider == "mistral":
        return out | {"prompt_tokens_details": {"cached_tokens": cached}}
    if provider == "deepseek":
        return out | {
            "prompt_tokens_details": {"cached_tokens": cached},
            "prompt_cache_hit_tokens": cached,
            "prompt_cache_miss_tokens": prompt - cached,
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
    if provider == "kimi_k2":
        return out | {
            "cached_tokens": cached,
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
    if provider == "qwen":
        return out | {
            "prompt_tokens_details": {"cached_tokens": cached},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
    return out | {
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": _completion_details(turn),
    }
