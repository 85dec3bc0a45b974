"""Shared bits for the simulator tests: request bodies per wire family and an SSE parser."""

from __future__ import annotations

import json
from typing import Any

from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.vocab import PROVIDERS

OPENAI_FAMILY = tuple(p for p in PROVIDERS if PROVIDER_DEFAULTS[p]["api"] == "openai")
KEY = "sk-sim-test-0123456789"
ANTHROPIC_HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def model(provider: str) -> str:
    return str(PROVIDER_DEFAULTS[provider]["probe_model"])


def auth_headers(provider: str, key: str = KEY) -> dict[str, str]:
    """The headers a client of `provider` sends."""
    api = PROVIDER_DEFAULTS[provider]["api"]
    if api == "anthropic":
        return {"x-api-key": key, "anthropic-version": "2023-06-01"}
    if api == "gemini":
        return {"x-goog-api-key": key}
    return {"Authorization": f"Bearer {key}"}


def completion_request(provider: str, text: str = "ping", **extra: Any) -> tuple[str, dict]:
    """(path, JSON body) of the smallest non-streamed completion for `provider`."""
    root = SIMULATOR_ROOTS[provider]
    api = PROVIDER_DEFAULTS[provider]["api"]
    if api == "anthropic":
        body = {"model": model(provider), "max_tokens": 64, "messages": [_user(text)]}
        return f"{root}/messages", body | extra
    if api == "gemini":
        body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
        return f"{root}/models/{model(provider)}:generateContent", body | extra
    body = {"model": model(provider), "messages": [_user(text)]}
    return f"{root}/chat/completions", body | extra


def models_path(provider: str) -> str:
    return f"{SIMULATOR_ROOTS[provider]}/models"


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def parse_sse(text: str) -> tuple[list[tuple[str | None, str]], list[str]]:
    """(events as (name, data), comment lines) of an SSE body, in order."""
    events: list[tuple[str | None, str]] = []
    comments: list[str] = []
    for block in text.split("\n\n"):
        name, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, "\n".join(data)))
    return events, comments


def json_events(text: str) -> list[Any]:
    """The JSON payloads of an SSE body, skipping OpenAI's [DONE] sentinel."""
    events, _ = parse_sse(text)
    return [json.loads(data) for _, data in events if data != "[DONE]"]
