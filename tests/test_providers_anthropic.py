"""The Anthropic Messages prober against a scripted local server, over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from _probe_helpers import (
    KEY,
    closed_port,
    reply_bytes,
    reply_hang,
    reply_json,
    reply_reset,
    reply_sse,
    sse,
    target,
)

from exporter.providers import PROBERS
from exporter.providers.anthropic import probe
from exporter.providers.base import Usage
from exporter.vocab import Check, Reason


def anthropic(**kw) -> object:
    return target(kw.pop("url"), "anthropic", **kw)


MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "P"}],
    "stop_reason": "max_tokens",
    "usage": {
        "input_tokens": 12,
        "output_tokens": 1,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
        "output_tokens_details": {"thinking_tokens": 0},
    },
}


def error(type_: str, message: str = "nope", **details) -> dict:
    body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": "r"}
    if details:
        body["error"]["details"] = details
    return body


def test_registered_under_its_family() -> None:
    assert PROBERS["anthropic"] is probe


async def test_models_uses_x_api_key_and_version(fake, session) -> None:
    """GET /models?limit=1000 with x-api-key and anthropic-version, never a Bearer header."""
    fake.handler = reply_json({"data": [{"id": "claude-a", "type": "model"}], "has_more": False})
    result = await probe(session, anthropic(url=fake.url), Check.MODELS)
    assert result.success and result.models == frozenset({"claude-a"})
    seen = fake.seen[0]
    assert (seen.path, seen.query) == ("/v1/models", {"limit": "1000"})
    assert seen.headers["x-api-key"] == KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in seen.headers


async def test_completion_usage_and_ratelimits(fake, session) -> None:
    """Cache reads/writes are their own token types; RFC 3339 resets become seconds from now."""
    soon = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    past = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": soon,
        "anthropic-ratelimit-tokens-limit": "100000",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": past,
        "anthropic-ratelimit-input-tokens-limit": "80000",
        "anthropic-ratelimit-input-tokens-remaining": "79000",
        "anthropic-ratelimit-output-tokens-limit": "16000",
        "anthropic-ratelimit-output-tokens-reset": "garbage",
    }
    fake.handler = reply_json(MESSAGE, headers=headers)
    result = await probe(session, anthropic(url=fake.url), Check.COMPLETION)
    assert result.success
    assert result.usage == Usage(input=12, output=1, cached_input=100, cache_write=20)
    limits = result.ratelimits
    assert set(limits) == {"requests", "tokens", "input_tokens", "output_tokens"}
    assert limits["requests"].limit == 50 and 28 < limits["requests"].reset_seconds <= 30
    assert limits["tokens"].remaining == 0 and limits["tokens"].reset_seconds == 0
    assert limits["input_tokens"].reset_seconds is None
    assert limits["output_tokens"].limit == 16000 and limits["output_tokens"].remaining is None
    assert limits["output_tokens"].reset_seconds is None
    body = fake.seen[0].body
    assert body == {"model": "probe-model", "max_tokens": 1,
                    "messages": [{"role": "user", "content": "ping"}]}


def stream_events(*middle: str) -> list[str]:
    start = {"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "content": [],
        "usage": {"input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 5,
                  "cache_creation_input_tokens": 0}}}
    return [
        sse(start, "message_start"),
        sse({"type": "content_block_start", "index": 0,
             "content_block": {"type": "text", "text": ""}}, "content_block_start"),
        *middle,
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
             "usage": {"output_tokens": 3}}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]


def text_delta(text: str, kind: str = "text_delta", field: str = "text") -> str:
    return sse({"type": "content_block_delta", "index": 0, "delta": {"type": kind, field: text}},
               "content_block_delta")


async def test_stream_ttft_after_pings(fake, session) -> None:
    """Pings and empty deltas do not start TTFT; usage is message_start + cumulative delta."""
    ping = sse({"type": "ping"}, "ping")
    fake.handler = reply_sse(*stream_events(
        ping, 0.1, ping, 0.1, text_delta(""), 0.05, text_delta("Po"), 0.1, text_delta("ng")))
    result = await probe(session, anthropic(url=fake.url), Check.STREAM)
    assert result.success, result.error
    assert 0.25 <= result.phases["first_token"] < result.phases["total"]
    assert result.phases["total"] - result.phases["first_token"] >= 0.1
    assert result.usage == Usage(input=10, output=3, cached_input=5)
    assert fake.seen[0].body["stream"] is True


async def test_stream_thinking_delta_is_a_first_token(fake, session) -> None:
    """A thinking_delta counts as the first token, like reasoning_content elsewhere."""
    fake.handler = reply_sse(*stream_events(
        text_delta("hm", "thinking_delta", "thinking"), 0.2, text_delta("x")))
    result = await probe(session, anthropic(url=fake.url), Check.STREAM)
    assert result.success and result.phases["first_token"] < 0.2


async def test_stream_overloaded_error_event(fake, session) -> None:
    """A mid-stream `event: error` with overloaded_error after a 200 is overloaded."""
    fake.handler = reply_sse(
        *stream_events(text_delta("x"))[:3], sse(error("overloaded_error", "Overloaded"), "error"))
    result = await probe(session, anthropic(url=fake.url), Check.STREAM)
    assert result.reason is Reason.OVERLOADED and result.status == 200
    assert "overloaded_error" in result.error


async def test_stream_without_content_is_invalid(fake, session) -> None:
    """message_start .. message_stop with no content delta is an invalid response."""
    fake.handler = reply_sse(*stream_events(sse({"type": "ping"}, "ping")))
    result = await probe(session, anthropic(url=fake.url), Check.STREAM)
    assert result.reason is Reason.INVALID_RESPONSE


async def test_stream_reset_is_network(fake, session) -> None:
    """A stream cut off before message_stop by a dropped connection is network."""
    fake.handler = reply_reset("".join(stream_events(text_delta("x"))[:3]).encode(),
                               "text/event-stream")
    result = await probe(session, anthropic(url=fake.url), Check.STREAM)
    assert result.reason is Reason.NETWORK


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (529, error("overloaded_error", "Overloaded"), Reason.OVERLOADED),
        (402, error("billing_error"), Reason.BILLING),
        (429, error("rate_limit_error", error_code="enforced_spend_limit_reached"),
         Reason.BILLING),
        (429, error("rate_limit_error"), Reason.RATE_LIMIT),
        (401, error("authentication_error"), Reason.AUTH),
        (403, error("permission_error"), Reason.AUTH),
        (404, error("not_found_error"), Reason.NOT_FOUND),
        (400, error("invalid_request_error"), Reason.BAD_REQUEST),
        (413, error("request_too_large"), Reason.BAD_REQUEST),
        (500, error("api_error"), Reason.SERVER_ERROR),
        (504, error("timeout_error"), Reason.TIMEOUT),
    ],
)
async def test_http_errors_are_classified(fake, session, status, body, reason) -> None:
    """Anthropic's statuses and error types map onto the closed reason set."""
    fake.handler = reply_json(body, status=status)
    result = await probe(session, anthropic(url=fake.url), Check.COMPLETION)
    assert result.reason is reason and result.status == status
    assert result.error.startswith(f"HTTP {status} {body['error']['type']}")


async def test_rate_limit_with_and_without_retry_after(fake, session) -> None:
    """retry-after is reported when sent, and absent otherwise (spend caps send none)."""
    fake.handler = reply_json(error("rate_limit_error"), 429, {"retry-after": "12"})
    first = await probe(session, anthropic(url=fake.url), Check.COMPLETION)
    fake.handler = reply_json(error("rate_limit_error"), 429)
    second = await probe(session, anthropic(url=fake.url), Check.COMPLETION)
    assert (first.reason, first.retry_after) == (Reason.RATE_LIMIT, 12.0)
    assert (second.reason, second.retry_after) == (Reason.RATE_LIMIT, None)


async def test_hang_times_out(fake, session) -> None:
    fake.handler = reply_hang(fake)
    started = time.perf_counter()
    result = await probe(session, anthropic(url=fake.url, timeout=0.5), Check.STREAM)
    assert result.reason is Reason.TIMEOUT and time.perf_counter() - started < 1.5


async def test_refused_is_network(session) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = await probe(session, anthropic(url=url), Check.COMPLETION)
    assert result.reason is Reason.NETWORK


@pytest.mark.parametrize(
    "body", [b'{"type": "message", "content": "P"}', b'{"content": [], "usage": [1]}', b"\xff"]
)
async def test_wrong_shape_is_invalid(fake, session, body) -> None:
    fake.handler = reply_bytes(body)
    result = await probe(session, anthropic(url=fake.url), Check.COMPLETION)
    assert result.reason is Reason.INVALID_RESPONSE


async def test_key_echoed_in_stream_error_is_redacted(fake, session) -> None:
    """A stream error whose type echoes the key cannot put it in `error`."""
    fake.handler = reply_sse(sse(error(KEY), "error"))
    result = await probe(session, anthropic(url=fake.url), Check.STREAM)
    assert result.reason is Reason.SERVER_ERROR
    assert KEY not in result.error and "[REDACTED]" in result.error
