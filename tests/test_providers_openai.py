"""The OpenAI-compatible prober against a scripted local server, over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc

import aiohttp
import pytest
from _probe_helpers import (
    KEY,
    closed_port,
    reply_big,
    reply_bytes,
    reply_hang,
    reply_json,
    reply_reset,
    reply_sse,
    sse,
    target,
)

from exporter.providers import PROBERS
from exporter.providers.base import RateLimit, Usage
from exporter.providers.openai import probe
from exporter.vocab import Check, Reason


def chunk(delta: dict | None = None, usage: dict | None = None, **extra) -> dict:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return {"object": "chat.completion.chunk", "choices": choices, "usage": usage, **extra}


COMPLETION = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "p"}}],
    "usage": {
        "prompt_tokens": 100,
        "completion_tokens": 7,
        "total_tokens": 107,
        "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 10},
        "completion_tokens_details": {"reasoning_tokens": 5},
    },
}


def test_registry_maps_every_family() -> None:
    """PROBERS is keyed by the wire family, and the openai entry is this module's probe."""
    assert set(PROBERS) == {"openai", "anthropic", "gemini"}
    assert PROBERS["openai"] is probe


async def test_models_lists_ids_with_bearer_auth(fake, session) -> None:
    """GET {root}/models with a Bearer key and our User-Agent; ids land in `models`."""
    fake.handler = reply_json({"object": "list", "data": [{"id": "m-1"}, {"id": "m-2"}]})
    result = await probe(session, target(fake.url, "openai"), Check.MODELS)
    assert result.success and result.reason is None and result.status == 200
    assert result.models == frozenset({"m-1", "m-2"})
    seen = fake.seen[0]
    assert (seen.method, seen.path) == ("GET", "/v1/models")
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["User-Agent"].startswith("llm-exporter/")
    phases = result.phases
    assert {"dns", "connect", "first_byte", "total"} <= set(phases) and "tls" not in phases
    assert "first_token" not in phases
    assert 0 < phases["first_byte"] <= phases["total"] == result.duration


async def test_completion_parses_usage_and_ratelimits(fake, session) -> None:
    """Usage is split into the contract's token types; OpenAI rate-limit headers are parsed."""
    headers = {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "6m0s",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29990",
        "x-ratelimit-reset-tokens": "1m30.5s",
    }
    fake.handler = reply_json(COMPLETION, headers=headers)
    result = await probe(session, target(fake.url, "openai", probe_model="gpt-x"), Check.COMPLETION)
    assert result.success
    # completion_tokens (7) includes the 5 reasoning tokens: output is the other 2
    assert result.usage == Usage(input=30, output=2, cached_input=60, cache_write=10, reasoning=5)
    assert result.ratelimits == {
        "requests": RateLimit(limit=500, remaining=0, reset_seconds=360),
        "tokens": RateLimit(limit=30000, remaining=29990, reset_seconds=90.5),
    }
    assert result.retry_after is None
    assert fake.seen[0].path == "/v1/chat/completions"
    assert fake.seen[0].body["model"] == "gpt-x"


@pytest.mark.parametrize(
    ("provider", "fields"),
    [
        ("openai", {"max_completion_tokens": 1, "reasoning_effort": "none"}),
        ("deepseek", {"max_tokens": 1, "thinking": {"type": "disabled"}}),
        ("qwen", {"max_tokens": 1, "enable_thinking": False}),
        ("mistral", {"max_tokens": 1}),
        ("grok", {"max_tokens": 1}),
        ("kimi_k2", {"max_tokens": 1}),
    ],
)
async def test_completion_body_is_the_cheapest_per_provider(fake, session, provider, fields):
    """Each provider gets one output token and its own thinking switch, nothing else."""
    fake.handler = reply_json(COMPLETION)
    result = await probe(session, target(fake.url, "openai", provider), Check.COMPLETION)
    assert result.success
    body = fake.seen[0].body
    assert body == {"model": "probe-model", "messages": [{"role": "user", "content": "ping"}],
                    **fields}


@pytest.mark.parametrize(
    ("provider", "usage", "expected"),
    [
        ("deepseek",
         {"prompt_tokens": 50, "completion_tokens": 1, "prompt_cache_hit_tokens": 40,
          "prompt_cache_miss_tokens": 10},
         Usage(input=10, output=1, cached_input=40)),
        ("grok",  # xAI reports reasoning beside completion_tokens, not inside it
         {"prompt_tokens": 9, "completion_tokens": 1,
          "completion_tokens_details": {"reasoning_tokens": 30}},
         Usage(input=9, output=1, reasoning=30)),
        ("kimi_k2", {"prompt_tokens": 9, "completion_tokens": 1, "cached_tokens": 4},
         Usage(input=5, output=1, cached_input=4)),
    ],
)
async def test_provider_usage_quirks(fake, session, provider, usage, expected) -> None:
    """DeepSeek cache fields, xAI's separate reasoning and Kimi's top-level cached_tokens."""
    fake.handler = reply_json({**COMPLETION, "usage": usage})
    result = await probe(session, target(fake.url, "openai", provider), Check.COMPLETION)
    assert result.success and result.usage == expected


async def test_stream_ttft_skips_keepalives_and_role_chunks(fake, session) -> None:
    """TTFT starts at the first content delta, not at keep-alives or the role-only chunk."""
    usage = {"prompt_tokens": 8, "completion_tokens": 1}
    fake.handler = reply_sse(
        sse(chunk({"role": "assistant", "content": ""})),
        *[p for _ in range(4) for p in (": keep-alive\n\n", 0.06)],
        "\n\n",
        sse(chunk({"content": "Po"})),
        0.1,
        sse(chunk({"content": "ng"})),
        sse(chunk(None, usage)),
        "data: [DONE]\n\n",
    )
    result = await probe(session, target(fake.url, "openai"), Check.STREAM)
    assert result.success, result.error
    phases = result.phases
    assert phases["first_token"] >= 0.24
    assert phases["first_byte"] < phases["first_token"] < phases["total"]
    assert phases["total"] - phases["first_token"] >= 0.1  # read to the end, not to the token
    assert result.usage == Usage(input=8, output=1)
    body = fake.seen[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True, "include_obfuscation": False}
    assert fake.seen[0].headers["Accept"] == "text/event-stream"


@pytest.mark.parametrize(("provider", "options"), [("mistral", None), ("deepseek", True)])
async def test_stream_options_per_provider(fake, session, provider, options) -> None:
    """Mistral is not sent stream_options (it reports usage unasked); others ask for usage."""
    fake.handler = reply_sse(sse(chunk({"content": "x"})), "data: [DONE]\n\n")
    result = await probe(session, target(fake.url, "openai", provider), Check.STREAM)
    assert result.success
    body = fake.seen[0].body
    assert body.get("stream_options") == ({"include_usage": True} if options else None)


async def test_stream_reasoning_delta_counts_and_kimi_usage_in_choice(fake, session) -> None:
    """`reasoning_content` is a first token; Kimi's usage inside choices[0] is read."""
    last = {"index": 0, "delta": {}, "finish_reason": "length",
            "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    fake.handler = reply_sse(
        sse(chunk({"role": "assistant"})),
        0.15,
        sse(chunk({"reasoning_content": "hmm"})),
        sse({"object": "chat.completion.chunk", "choices": [last]}),
        "data: [DONE]\n\n",
    )
    result = await probe(session, target(fake.url, "openai", "kimi_k2"), Check.STREAM)
    assert result.success
    assert result.phases["first_token"] >= 0.15
    assert result.usage == Usage(input=3, output=1)


@pytest.mark.parametrize(
    "parts",
    [
        (sse(chunk({"role": "assistant"})), sse(chunk({"content": ""})), "data: [DONE]\n\n"),
        (": keep-alive\n\n", "\n\n"),
        ("",),
    ],
    ids=["role-only", "keepalive-only", "empty"],
)
async def test_stream_without_content_is_invalid(fake, session, parts) -> None:
    """A stream that ends without any content delta is an invalid response."""
    fake.handler = reply_sse(*parts)
    result = await probe(session, target(fake.url, "openai"), Check.STREAM)
    assert not result.success and result.reason is Reason.INVALID_RESPONSE
    assert "first_token" not in result.phases


async def test_stream_error_chunk_is_classified(fake, session) -> None:
    """An error object inside a 200 stream is classified by its type."""
    error = {"error": {"message": "busy", "type": "server_error", "code": None}}
    fake.handler = reply_sse(sse(chunk({"content": "x"})), sse(error))
    result = await probe(session, target(fake.url, "openai"), Check.STREAM)
    assert result.reason is Reason.SERVER_ERROR and "server_error" in result.error


def err(type_: str, code: str | None = None, message: str = "nope") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


ERROR_CASES = [
    ("openai", 429, err("insufficient_quota", "credit_balance_exhausted"), Reason.BILLING),
    ("openai", 429, err("insufficient_quota", "project_spend_limit_exceeded"), Reason.BILLING),
    ("openai", 429, err("requests", "rate_limit_exceeded"), Reason.RATE_LIMIT),
    ("openai", 401, err("invalid_request_error", "invalid_api_key"), Reason.AUTH),
    ("openai", 403, err("invalid_request_error", "unsupported_country_region_territory"),
     Reason.AUTH),
    ("openai", 404, err("invalid_request_error", "model_not_found"), Reason.NOT_FOUND),
    ("openai", 400, err("invalid_request_error", "invalid_value"), Reason.BAD_REQUEST),
    ("openai", 408, err("timeout"), Reason.TIMEOUT),
    ("openai", 500, err("server_error"), Reason.SERVER_ERROR),
    ("openai", 502, {"html": "bad gateway"}, Reason.SERVER_ERROR),
    ("openai", 503, err("service_unavailable_error", "server_is_overloaded"), Reason.OVERLOADED),
    ("openai", 504, err("timeout"), Reason.TIMEOUT),
    ("grok", 400, {"code": "Client specified an invalid argument",
                   "error": "Incorrect API key provided: xa***yz."}, Reason.AUTH),
    ("grok", 400, err("invalid_request_error", message="bad max_tokens"), Reason.BAD_REQUEST),
    ("deepseek", 402, err("invalid_request_error", message="Insufficient Balance"),
     Reason.BILLING),
    ("deepseek", 503, err("server_error", message="Server overloaded"), Reason.OVERLOADED),
    ("deepseek", 429, err("rate_limit_error"), Reason.RATE_LIMIT),
    ("kimi_k2", 429, err("engine_overloaded_error",
                         message="The engine is currently overloaded"), Reason.OVERLOADED),
    ("kimi_k2", 429, err("rate_limit_reached_error"), Reason.RATE_LIMIT),
    ("kimi_k2", 403, err("exceeded_current_quota_error",
                         message="Your account is suspended due to insufficient balance"),
     Reason.BILLING),
    ("kimi_k2", 403, err("permission_denied_error"), Reason.AUTH),
    ("mistral", 402, {"object": "error", "message": "payment required", "type": "billing",
                      "param": None, "code": "3505"}, Reason.BILLING),
    ("mistral", 429, {"object": "error", "message": "Requests rate limit exceeded",
                      "type": "rate_limit_error", "param": None, "code": "1300"},
     Reason.RATE_LIMIT),
    ("qwen", 429, err("insufficient_quota", "insufficient_quota",
                      "You exceeded your current quota"), Reason.RATE_LIMIT),
    ("qwen", 403, err("Arrearage", "Arrearage", "Access denied"), Reason.BILLING),
    ("qwen", 401, err("invalid_request_error", "invalid_api_key"), Reason.AUTH),
]


@pytest.mark.parametrize(("provider", "status", "body", "reason"), ERROR_CASES)
async def test_http_errors_are_classified(fake, session, provider, status, body, reason):
    """Status and body decide the reason; the error names the status and codes, no message."""
    fake.handler = reply_json(body, status=status)
    result = await probe(session, target(fake.url, "openai", provider), Check.COMPLETION)
    assert not result.success and result.reason is reason and result.status == status
    assert result.error.startswith(f"HTTP {status}")
    assert "nope" not in result.error and "Incorrect" not in result.error


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({}, None),
    ],
)
async def test_rate_limit_retry_after(fake, session, headers, expected) -> None:
    """A 429's retry-after(-ms) is reported; without one it stays None."""
    fake.handler = reply_json(err("requests", "rate_limit_exceeded"), 429, headers)
    result = await probe(session, target(fake.url, "openai"), Check.MODELS)
    assert result.reason is Reason.RATE_LIMIT and result.retry_after == expected


async def test_hang_before_headers_times_out(fake, session) -> None:
    """A server that never answers is a timeout, reported within timeout + 1 s."""
    fake.handler = reply_hang(fake)
    started = time.perf_counter()
    result = await probe(session, target(fake.url, "openai", timeout=0.5), Check.COMPLETION)
    elapsed = time.perf_counter() - started
    assert result.reason is Reason.TIMEOUT and result.error == "timed out after 0.5s"
    assert 0.5 <= elapsed < 1.5
    assert 0.5 <= result.duration < 1.5 and "first_byte" not in result.phases


async def test_slow_stream_times_out_mid_body(fake, session) -> None:
    """The timeout covers the body too: a stream that stalls after its first token times out."""
    fake.handler = reply_sse(sse(chunk({"content": "x"})), 3.0, "data: [DONE]\n\n")
    result = await probe(session, target(fake.url, "openai", timeout=0.5), Check.STREAM)
    assert result.reason is Reason.TIMEOUT and result.duration < 1.5
    assert "first_token" in result.phases


async def test_connection_refused_is_network(session) -> None:
    """Nobody listening: network, with the exception class in the error."""
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = await probe(session, target(url, "openai"), Check.MODELS)
    assert result.reason is Reason.NETWORK and result.status is None
    assert result.error.startswith("ClientConnectorError")


@pytest.mark.parametrize("check", [Check.COMPLETION, Check.STREAM])
async def test_reset_mid_body_is_network(fake, session, check) -> None:
    """A body (JSON or SSE) cut off by a dropped connection is a network failure."""
    prefix = sse(chunk({"content": "x"})) if check is Check.STREAM else '{"choices": ['
    ctype = "text/event-stream" if check is Check.STREAM else "application/json"
    fake.handler = reply_reset(prefix.encode(), ctype)
    result = await probe(session, target(fake.url, "openai"), check)
    assert result.reason is Reason.NETWORK and result.status == 200, result.error


@pytest.mark.parametrize("content_length", [True, False])
async def test_huge_body_is_invalid_without_buffering(fake, session, content_length) -> None:
    """A 50 MB body is rejected after at most the cap, with or without Content-Length."""
    fake.handler = reply_big(50 << 20, content_length=content_length)
    tracemalloc.start()
    try:
        result = await probe(session, target(fake.url, "openai"), Check.MODELS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.reason is Reason.INVALID_RESPONSE and result.status == 200
    assert peak < 16 << 20


@pytest.mark.parametrize(
    ("body", "check"),
    [
        (b'{"object": "list", "data": [{"id": "m\xff"}]}', Check.MODELS),
        (b"<html>not json</html>", Check.MODELS),
        (b'{"object": "list", "data": {"id": "m"}}', Check.MODELS),
        (b'{"object": "list", "data": [{"name": "m"}]}', Check.MODELS),
        (b"[1, 2]", Check.COMPLETION),
        (b'{"choices": [], "usage": {"prompt_tokens": "many"}}', Check.COMPLETION),
        (b"[" * 100_000, Check.COMPLETION),
    ],
    ids=["utf8", "html", "data-dict", "no-id", "list", "usage-type", "deep"],
)
async def test_malformed_success_bodies_are_invalid(fake, session, body, check) -> None:
    """Invalid UTF-8, invalid JSON and JSON of the wrong shape are invalid responses."""
    fake.handler = reply_bytes(body)
    result = await probe(session, target(fake.url, "openai"), check)
    assert not result.success and result.reason is Reason.INVALID_RESPONSE


async def test_invalid_utf8_in_stream_is_invalid(fake, session) -> None:
    """A stream line that is not UTF-8 is an invalid response."""
    async def handler(request):
        resp = aiohttp.web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices": [{"delta": {"content": "\xff"}}]}\n\n')
        return resp

    fake.handler = handler
    result = await probe(session, target(fake.url, "openai"), Check.STREAM)
    assert result.reason is Reason.INVALID_RESPONSE


async def test_redirect_is_not_followed(fake, session) -> None:
    """A redirect is not followed (it would carry the key elsewhere) and is reported."""
    async def handler(_request):
        raise aiohttp.web.HTTPFound("http://127.0.0.1:9/steal")

    fake.handler = handler
    result = await probe(session, target(fake.url, "openai"), Check.MODELS)
    assert result.reason is Reason.OTHER and result.status == 302 and len(fake.seen) == 1


async def test_key_never_leaks_from_echoing_server(fake, session, caplog) -> None:
    """A provider echoing the key in body codes, message and a header cannot leak it."""
    body = {"error": {"message": f"bad key {KEY}", "type": KEY, "code": f"invalid {KEY}"}}
    fake.handler = reply_json(body, status=401, headers={"x-echo": KEY})
    with caplog.at_level(logging.DEBUG, logger="exporter"):
        result = await probe(session, target(fake.url, "openai"), Check.COMPLETION)
    assert result.reason is Reason.AUTH
    assert KEY not in result.error and "[REDACTED]" in result.error
    assert KEY not in repr(result)
    assert caplog.records and KEY not in caplog.text


@pytest.mark.parametrize("key", ["sk-" + "A1b2" * 30, "sk-live/abc+def=ghi 123"])
async def test_odd_keys_never_leak_through_codes(fake, session, key) -> None:
    """Long keys and keys with unsafe characters echoed as codes leak no part of themselves."""
    body = {"error": {"message": key, "type": key, "code": "invalid_api_key"}}
    fake.handler = reply_json(body, status=401)
    result = await probe(session, target(fake.url, "openai", api_key=key), Check.COMPLETION)
    assert result.reason is Reason.AUTH and result.error.endswith("invalid_api_key")
    assert "A1b2A1b2" not in result.error and "abc" not in result.error


@pytest.mark.parametrize("padding", [0, 120, 160, 190])
async def test_key_never_leaks_from_exception_text(session, padding) -> None:
    """An exception message holding the key (here in a bad URL) is scrubbed before it is cut."""
    url = f"http://[::1/{'x' * padding}{KEY}"
    result = await probe(session, target(url, "openai"), Check.MODELS)
    assert not result.success and result.reason in {Reason.OTHER, Reason.NETWORK}
    assert KEY[:10] not in result.error and len(result.error) <= 200


async def test_missing_key_sends_no_auth_header(fake, session) -> None:
    """With no key the request still goes out, without Authorization, and 401 is auth."""
    fake.handler = reply_json(err("invalid_request_error", "missing_api_key"), status=401)
    result = await probe(session, target(fake.url, "openai", api_key=None), Check.MODELS)
    assert result.reason is Reason.AUTH and "Authorization" not in fake.seen[0].headers


async def test_unknown_check_is_other(session) -> None:
    """A check outside the vocabulary is reported, not raised."""
    result = await probe(session, target("http://127.0.0.1:9/v1", "openai"), "embeddings")
    assert result.reason is Reason.OTHER and not result.success


async def test_cancellation_propagates(fake, session) -> None:
    """Only cancellation escapes the prober."""
    fake.handler = reply_hang(fake)
    task = asyncio.create_task(probe(session, target(fake.url, "openai"), Check.MODELS))
    await asyncio.wait_for(fake.arrived.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
