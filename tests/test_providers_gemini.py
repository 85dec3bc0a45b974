"""The Gemini generateContent prober against a scripted local server, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from _probe_helpers import (
    KEY,
    FakeProvider,
    closed_port,
    reply_bytes,
    reply_hang,
    reply_json,
    reply_reset,
    reply_sse,
    sse,
    start_fake,
    target,
)

from exporter.providers import PROBERS
from exporter.providers.base import Usage
from exporter.providers.gemini import probe, thinking_config
from exporter.vocab import Check, Reason


@pytest.fixture
async def fake(aiohttp_server) -> AsyncIterator[FakeProvider]:
    provider = await start_fake(aiohttp_server, "/v1beta")
    yield provider
    provider.release.set()


def gemini(url: str, **kw) -> object:
    kw.setdefault("probe_model", "gemini-2.5-flash-lite")
    return target(url, "gemini", **kw)


def chunk(text: str | None, usage: dict | None = None, thought: bool = False) -> dict:
    parts = [] if text is None else [{"text": text, **({"thought": True} if thought else {})}]
    doc: dict = {"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}]}
    if usage:
        doc["usageMetadata"] = usage
    return doc


USAGE = {"promptTokenCount": 40, "cachedContentTokenCount": 30, "candidatesTokenCount": 1,
         "thoughtsTokenCount": 4, "totalTokenCount": 45}


def error(code: int, status: str, message: str = "nope", *details: dict) -> dict:
    return {"error": {"code": code, "message": message, "status": status,
                      "details": list(details)}}


def test_registered_under_its_family() -> None:
    assert PROBERS["gemini"] is probe


async def test_models_strip_prefix_and_key_in_header(fake, session) -> None:
    """GET /models?pageSize=1000 with x-goog-api-key; `models/` is stripped; no key in URL."""
    fake.handler = reply_json({"models": [{"name": "models/gemini-a"}, {"name": "models/g-b"}]})
    result = await probe(session, gemini(fake.url), Check.MODELS)
    assert result.success and result.models == frozenset({"gemini-a", "g-b"})
    seen = fake.seen[0]
    assert (seen.path, seen.query) == ("/v1beta/models", {"pageSize": "1000"})
    assert seen.headers["x-goog-api-key"] == KEY
    assert "key" not in seen.query and "Authorization" not in seen.headers
    assert result.ratelimits == {}  # Gemini sends no rate-limit headers


async def test_completion_usage_and_request(fake, session) -> None:
    """promptTokenCount includes cached tokens; thoughts are reasoning, beside output."""
    fake.handler = reply_json(chunk("P", USAGE))
    result = await probe(session, gemini(fake.url), Check.COMPLETION)
    assert result.success
    assert result.usage == Usage(input=10, output=1, cached_input=30, reasoning=4)
    seen = fake.seen[0]
    assert seen.path == "/v1beta/models/gemini-2.5-flash-lite:generateContent"
    assert seen.body == {
        "contents": [{"role": "user", "parts": [{"text": "ping"}]}],
        "generationConfig": {"maxOutputTokens": 1, "thinkingConfig": {"thinkingBudget": 0}},
    }


@pytest.mark.parametrize(
    ("model", "config"),
    [
        ("gemini-2.5-flash-lite", {"thinkingBudget": 0}),
        ("gemini-2.5-pro", None),
        ("gemini-2.0-flash", None),
        ("gemini-3.8-flash", {"thinkingLevel": "low"}),
        ("gemini-flash-latest", {"thinkingLevel": "low"}),
        ("gemma-3-27b-it", None),
    ],
)
def test_thinking_config_per_model(model, config) -> None:
    """Thinking is switched off (or down) in the way each model generation accepts."""
    assert thinking_config(model) == config


async def test_stream_ttft_and_last_usage(fake, session) -> None:
    """TTFT is the first chunk with non-empty text; the last usageMetadata wins."""
    fake.handler = reply_sse(
        ": keep-alive\n\n", 0.1,
        sse(chunk(None)), 0.1,
        sse(chunk("")), 0.05,
        sse(chunk("Po", {"promptTokenCount": 40, "candidatesTokenCount": 1})), 0.1,
        sse(chunk("ng", USAGE)),
    )
    result = await probe(session, gemini(fake.url, probe_model="models/gemini-3.8-flash"),
                         Check.STREAM)
    assert result.success, result.error
    assert 0.25 <= result.phases["first_token"] < result.phases["total"]
    assert result.phases["total"] - result.phases["first_token"] >= 0.1
    assert result.usage == Usage(input=10, output=1, cached_input=30, reasoning=4)
    seen = fake.seen[0]
    assert seen.path == "/v1beta/models/gemini-3.8-flash:streamGenerateContent"
    assert seen.query == {"alt": "sse"}


async def test_stream_thought_part_counts(fake, session) -> None:
    fake.handler = reply_sse(sse(chunk("thinking", thought=True)), 0.2, sse(chunk("x", USAGE)))
    result = await probe(session, gemini(fake.url), Check.STREAM)
    assert result.success and result.phases["first_token"] < 0.2


async def test_stream_without_text_is_invalid(fake, session) -> None:
    fake.handler = reply_sse(sse(chunk(None)), sse(chunk("", USAGE)))
    result = await probe(session, gemini(fake.url), Check.STREAM)
    assert result.reason is Reason.INVALID_RESPONSE


async def test_stream_error_chunk_uses_its_code(fake, session) -> None:
    fake.handler = reply_sse(sse(chunk("x")), sse(error(503, "UNAVAILABLE", "overloaded")))
    result = await probe(session, gemini(fake.url), Check.STREAM)
    assert result.reason is Reason.OVERLOADED and "UNAVAILABLE" in result.error


async def test_stream_reset_is_network(fake, session) -> None:
    fake.handler = reply_reset(sse(chunk("x")).encode(), "text/event-stream")
    result = await probe(session, gemini(fake.url), Check.STREAM)
    assert result.reason is Reason.NETWORK


KEY_INVALID = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
               "domain": "googleapis.com"}
RETRY = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, error(400, "INVALID_ARGUMENT", "API key not valid.", KEY_INVALID), Reason.AUTH),
        (400, error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
         Reason.AUTH),
        (400, error(400, "FAILED_PRECONDITION", "Gemini API free tier is not available in your "
                    "country. Please enable billing on your project."), Reason.BILLING),
        (400, error(400, "INVALID_ARGUMENT", "bad generationConfig"), Reason.BAD_REQUEST),
        (403, error(403, "PERMISSION_DENIED"), Reason.AUTH),
        (404, error(404, "NOT_FOUND", "models/x is not found"), Reason.NOT_FOUND),
        (429, error(429, "RESOURCE_EXHAUSTED", "quota", RETRY), Reason.RATE_LIMIT),
        (500, error(500, "INTERNAL"), Reason.SERVER_ERROR),
        (503, error(503, "UNAVAILABLE", "The model is overloaded."), Reason.OVERLOADED),
        (504, error(504, "DEADLINE_EXCEEDED"), Reason.TIMEOUT),
    ],
)
async def test_http_errors_are_classified(fake, session, status, body, reason) -> None:
    """Gemini's statuses, gRPC status names and ErrorInfo reasons map onto the reason set."""
    fake.handler = reply_json(body, status=status)
    result = await probe(session, gemini(fake.url), Check.COMPLETION)
    assert result.reason is reason and result.error.startswith(f"HTTP {status} ")


async def test_resource_exhausted_retry_delay_from_body(fake, session) -> None:
    """Without a retry-after header, RetryInfo.retryDelay from the error body is used."""
    fake.handler = reply_json(error(429, "RESOURCE_EXHAUSTED", "quota", RETRY), status=429)
    result = await probe(session, gemini(fake.url), Check.COMPLETION)
    assert (result.reason, result.retry_after) == (Reason.RATE_LIMIT, 37.0)
    fake.handler = reply_json(error(429, "RESOURCE_EXHAUSTED", "quota"), status=429)
    result = await probe(session, gemini(fake.url), Check.COMPLETION)
    assert (result.reason, result.retry_after) == (Reason.RATE_LIMIT, None)


async def test_hang_times_out(fake, session) -> None:
    fake.handler = reply_hang(fake)
    started = time.perf_counter()
    result = await probe(session, gemini(fake.url, timeout=0.5), Check.MODELS)
    assert result.reason is Reason.TIMEOUT and time.perf_counter() - started < 1.5


async def test_refused_is_network(session) -> None:
    result = await probe(session, gemini(f"http://127.0.0.1:{closed_port()}/v1beta"), Check.STREAM)
    assert result.reason is Reason.NETWORK


@pytest.mark.parametrize(
    ("body", "check"),
    [
        (b'{"models": [{"displayName": "x"}]}', Check.MODELS),
        (b'{"models": [{"name": "models/"}]}', Check.MODELS),
        (b"{}", Check.COMPLETION),
        (b'{"candidates": [], "usageMetadata": {"promptTokenCount": -1}}', Check.COMPLETION),
        (b'{"candidates": "\xfe"}', Check.COMPLETION),
    ],
)
async def test_wrong_shape_is_invalid(fake, session, body, check) -> None:
    fake.handler = reply_bytes(body)
    result = await probe(session, gemini(fake.url), check)
    assert result.reason is Reason.INVALID_RESPONSE
