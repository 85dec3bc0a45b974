"""The provider simulator over real HTTP: wire shapes, rate-limit headers, faults, control API."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest
from _sim_helpers import (
    ANTHROPIC_HEADERS,
    KEY,
    OPENAI_FAMILY,
    auth_headers,
    completion_request,
    json_events,
    model,
    models_path,
    parse_sse,
)

from exporter.defaults import PROVIDER_DEFAULTS
from exporter.simulator import SIM_STATE, create_app
from exporter.vocab import PROVIDERS

LONG_PROMPT = "lorem ipsum dolor sit amet " * 300  # ~2000 tokens: long enough to be cached


@pytest.fixture
async def sim(aiohttp_client):
    """A simulator client with no added latency, so tests stay fast."""
    app = create_app(seed=7)
    for provider in PROVIDERS:
        app[SIM_STATE].set_mode(provider, "ok", latency_ms=0, token_delay_ms=0)
    return await aiohttp_client(app)


async def post(sim, provider: str, text: str = "ping", **extra):
    path, body = completion_request(provider, text, **extra)
    return await sim.post(path, json=body, headers=auth_headers(provider))


# --- model lists -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", OPENAI_FAMILY)
async def test_openai_family_model_list(sim, provider):
    resp = await sim.get(models_path(provider), headers=auth_headers(provider))
    assert resp.status == 200
    body = await resp.json()
    assert body["object"] == "list"
    ids = [m["id"] for m in body["data"]]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])
    allowed = set(PROVIDER_DEFAULTS[provider]["models"])
    assert allowed <= set(ids)
    assert len(set(ids) - allowed) >= 2  # ids outside the allow-list are visible too


async def test_anthropic_model_list_pages_with_after_id(sim):
    resp = await sim.get("/anthropic/v1/models?limit=2", headers=ANTHROPIC_HEADERS)
    first = await resp.json()
    assert resp.status == 200 and len(first["data"]) == 2 and first["has_more"] is True
    assert first["first_id"] == first["data"][0]["id"] and first["data"][0]["type"] == "model"
    seen = [m["id"] for m in first["data"]]
    after = first["last_id"]
    while True:
        url = f"/anthropic/v1/models?limit=2&after_id={after}"
        resp = await sim.get(url, headers=ANTHROPIC_HEADERS)
        page = await resp.json()
        seen += [m["id"] for m in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert set(PROVIDER_DEFAULTS["anthropic"]["models"]) <= set(seen)
    assert len(seen) == len(set(seen))
    bad = await sim.get("/anthropic/v1/models?limit=0", headers=ANTHROPIC_HEADERS)
    assert bad.status == 400


async def test_gemini_model_list_names_and_paging(sim):
    resp = await sim.get("/gemini/v1beta/models?pageSize=3", headers=auth_headers("gemini"))
    body = await resp.json()
    assert resp.status == 200 and len(body["models"]) == 3 and body["nextPageToken"]
    assert all(m["name"].startswith("models/") for m in body["models"])
    resp = await sim.get(f"/gemini/v1beta/models?pageToken={body['nextPageToken']}&key={KEY}")
    rest = await resp.json()
    names = {m["name"] for m in body["models"] + rest["models"]}
    assert {f"models/{m}" for m in PROVIDER_DEFAULTS["gemini"]["models"]} <= names
    assert "nextPageToken" not in rest


# --- completions and usage -----------------------------------------------------------------


@pytest.mark.parametrize("provider", OPENAI_FAMILY)
async def test_openai_family_completion_usage_follows_request(sim, provider):
    short = await (await post(sim, provider, "hi")).json()
    long = await (await post(sim, provider, "hello there " * 200)).json()
    assert short["object"] == "chat.completion" and short["model"] == model(provider)
    assert short["choices"][0]["message"]["role"] == "assistant"
    assert short["choices"][0]["message"]["content"]
    assert long["usage"]["prompt_tokens"] > short["usage"]["prompt_tokens"] + 400
    usage = short["usage"]
    reasoning = usage.get("completion_tokens_details", {}).get("reasoning_tokens", 0)
    visible = usage["prompt_tokens"] + usage["completion_tokens"]
    if provider == "grok":  # xAI counts reasoning outside completion_tokens
        assert usage["total_tokens"] == visible + reasoning
    else:
        assert usage["total_tokens"] == visible
    if provider == "deepseek":
        assert (
            usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"]
            == usage["prompt_tokens"]
        )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_max_tokens_caps_output(sim, provider):
    api = PROVIDER_DEFAULTS[provider]["api"]
    if api == "anthropic":
        resp = await post(sim, provider, max_tokens=2)
        body = await resp.json()
        assert body["usage"]["output_tokens"] == 2 and body["stop_reason"] == "max_tokens"
    elif api == "gemini":
        resp = await post(sim, provider, generationConfig={"maxOutputTokens": 2})
        body = await resp.json()
        assert body["usageMetadata"]["candidatesTokenCount"] == 2
        assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    else:
        resp = await post(sim, provider, max_tokens=2)
        body = await resp.json()
        assert body["usage"]["completion_tokens"] == 2
        assert body["choices"][0]["finish_reason"] == "length"


async def test_repeated_long_prompt_reports_cached_tokens(sim):
    first = await (await post(sim, "openai", LONG_PROMPT)).json()
    second = await (await post(sim, "openai", LONG_PROMPT)).json()
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    cached = second["usage"]["prompt_tokens_details"]["cached_tokens"]
    assert 0 < cached < second["usage"]["prompt_tokens"] and cached % 128 == 0
    await post(sim, "deepseek", LONG_PROMPT)
    again = await (await post(sim, "deepseek", LONG_PROMPT)).json()
    assert again["usage"]["prompt_cache_hit_tokens"] > 0


async def test_xai_reasoning_tokens_are_separate(sim):
    path, body = completion_request("grok", model="grok-4.7")
    data = await (await sim.post(path, json=body, headers=auth_headers("grok"))).json()
    usage, content = data["usage"], data["choices"][0]["message"]["content"]
    reasoning = usage["completion_tokens_details"]["reasoning_tokens"]
    assert reasoning > 0 and data["choices"][0]["message"]["reasoning_content"]
    assert usage["completion_tokens"] == len(content.split())  # one word per token
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] + reasoning


async def test_anthropic_message_usage_and_prompt_caching(sim):
    resp = await post(sim, "anthropic")
    body = await resp.json()
    assert body["type"] == "message" and body["content"][0]["type"] == "text"
    assert body["stop_reason"] == "end_turn" and body["id"].startswith("msg_")
    usage = body["usage"]
    assert usage["output_tokens"] == len(body["content"][0]["text"].split())
    assert usage["cache_read_input_tokens"] == usage["cache_creation_input_tokens"] == 0
    system = [{"type": "text", "text": LONG_PROMPT, "cache_control": {"type": "ephemeral"}}]
    first = await (await post(sim, "anthropic", system=system)).json()
    second = await (await post(sim, "anthropic", system=system)).json()
    written = first["usage"]["cache_creation_input_tokens"]
    assert written > 1000 and first["usage"]["cache_read_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] == written
    assert second["usage"]["input_tokens"] == first["usage"]["input_tokens"]  # excludes cache


async def test_anthropic_thinking_counts_in_output(sim):
    resp = await post(sim, "anthropic", thinking={"type": "enabled", "budget_tokens": 32})
    body = await resp.json()
    kinds = [b["type"] for b in body["content"]]
    assert kinds == ["thinking", "text"]
    thinking = body["usage"]["output_tokens_details"]["thinking_tokens"]
    assert thinking > 0
    assert body["usage"]["output_tokens"] == thinking + len(body["content"][1]["text"].split())


async def test_anthropic_requires_version_max_tokens_and_no_sampling_on_new_version(sim):
    path, body = completion_request("anthropic")
    resp = await sim.post(path, json=body, headers={"x-api-key": KEY})
    err = await resp.json()
    assert resp.status == 400 and err["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in err["error"]["message"]
    del body["max_tokens"]
    resp = await sim.post(path, json=body, headers=ANTHROPIC_HEADERS)
    assert resp.status == 400
    new = {"x-api-key": KEY, "anthropic-version": "2026-10-21"}
    resp = await sim.post(path, json=body | {"max_tokens": 5, "temperature": 0.5}, headers=new)
    assert resp.status == 400 and "temperature" in (await resp.json())["error"]["message"]
    resp = await sim.post(path, json=body | {"max_tokens": 5}, headers=new)
    assert resp.status == 200


async def test_anthropic_bearer_auth_and_count_tokens(sim):
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"}
    body = {"model": model("anthropic"), "messages": [{"role": "user", "content": "x" * 400}]}
    resp = await sim.post("/anthropic/v1/messages/count_tokens", json=body, headers=headers)
    assert resp.status == 200 and (await resp.json())["input_tokens"] >= 100


async def test_gemini_generate_content_usage_metadata(sim):
    config = {"thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}
    body = await (await post(sim, "gemini", generationConfig=config)).json()
    parts = body["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and parts[1]["text"]
    meta = body["usageMetadata"]
    assert meta["thoughtsTokenCount"] > 0
    assert meta["candidatesTokenCount"] == len(parts[1]["text"].split())
    assert meta["totalTokenCount"] == (
        meta["promptTokenCount"] + meta["candidatesTokenCount"] + meta["thoughtsTokenCount"]
    )
    await post(sim, "gemini", LONG_PROMPT)
    cached = await (await post(sim, "gemini", LONG_PROMPT)).json()
    assert (
        0
        < cached["usageMetadata"]["cachedContentTokenCount"]
        < cached["usageMetadata"]["promptTokenCount"]
    )


async def test_not_found_model_and_route_per_family(sim):
    for provider in ("openai", "anthropic", "kimi_k2"):
        resp = await post(sim, provider, model="no-such-model")
        assert resp.status == 404
    resp = await sim.post(
        "/gemini/v1beta/models/no-such-model:generateContent",
        json={"contents": [{"parts": [{"text": "x"}]}]},
        headers=auth_headers("gemini"),
    )
    assert resp.status == 404 and (await resp.json())["error"]["status"] == "NOT_FOUND"
    resp = await sim.get("/openai/v1/nope", headers=auth_headers("openai"))
    assert resp.status == 404 and "Invalid URL" in (await resp.json())["error"]["message"]
    resp = await post(sim, "mistral", model="no-such-model")
    assert resp.status == 400 and (await resp.json())["code"] == "unknown_model"


async def test_invalid_json_body_is_bad_request(sim):
    resp = await sim.post(
        "/openai/v1/chat/completions", data=b"{nope", headers=auth_headers("openai")
    )
    body = await resp.json()
    assert resp.status == 400 and "not valid JSON" in body["error"]["message"]


# --- streaming ---------------------------------------------------------------------------


async def stream_text(sim, provider: str, **extra) -> str:
    resp = await post(sim, provider, stream=True, **extra)
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return await resp.text()


@pytest.mark.parametrize("provider", ["openai", "grok", "qwen", "deepseek"])
async def test_openai_style_stream_with_include_usage(sim, provider):
    text = await stream_text(sim, provider, stream_options={"include_usage": True})
    events, _ = parse_sse(text)
    assert all(name is None for name, _ in events)  # data-only SSE
    assert events[-1][1] == "[DONE]"
    chunks = json_events(text)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    if provider != "grok":
        reasoning = last["usage"].get("completion_tokens_details", {}).get("reasoning_tokens", 0)
        assert last["usage"]["completion_tokens"] == len(content.split()) + reasoning


async def test_openai_stream_without_include_usage_has_no_usage_chunk(sim):
    chunks = json_events(await stream_text(sim, "openai"))
    assert all(c["choices"] for c in chunks)
    assert all("usage" not in c for c in chunks)


async def test_deepseek_stream_keep_alive_comments_come_first(sim):
    text = await stream_text(sim, "deepseek")
    assert text.startswith(": keep-alive\n\n")
    _, comments = parse_sse(text)
    assert comments == ["keep-alive", "keep-alive"]
    chunks = json_events(text)
    thinking = [c for c in chunks if c["choices"][0]["delta"].get("reasoning_content")]
    answer = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert thinking and answer and chunks.index(thinking[-1]) < chunks.index(answer[0])


async def test_kimi_stream_usage_sits_in_the_last_choice(sim):
    chunks = json_events(await stream_text(sim, "kimi_k2"))
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "stop" and last["usage"]["total_tokens"] > 0
    assert all("usage" not in c["choices"][0] for c in chunks[:-1])


async def test_mistral_stream_usage_on_final_chunk_without_stream_options(sim):
    chunks = json_events(await stream_text(sim, "mistral"))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


async def test_anthropic_stream_event_sequence(sim):
    events, _ = parse_sse(await stream_text(sim, "anthropic"))
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    end = ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert names[-4:] == end
    payloads = [json.loads(data) for _, data in events]
    assert all(p["type"] == name for name, p in zip(names, payloads, strict=True))
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    start, delta = payloads[0]["message"]["usage"], payloads[-2]["usage"]
    assert start["input_tokens"] > 0 and start["output_tokens"] == 1
    assert delta["output_tokens"] == len(text.split())
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"


async def test_gemini_stream_is_data_only_without_done(sim):
    path, body = completion_request("gemini")
    path = path.replace(":generateContent", ":streamGenerateContent") + "?alt=sse"
    resp = await sim.post(path, json=body, headers=auth_headers("gemini"))
    text = await resp.text()
    events, _ = parse_sse(text)
    assert resp.status == 200 and all(name is None for name, _ in events)
    assert "[DONE]" not in text
    chunks = [json.loads(data) for _, data in events]
    words = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == len(words.split())
    resp = await sim.post(path.removesuffix("?alt=sse"), json=body, headers=auth_headers("gemini"))
    assert isinstance(await resp.json(), list)  # without alt=sse: one JSON array


# --- rate-limit headers --------------------------------------------------------------------

RATELIMIT_HEADERS = {
    "openai": ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"),
    "anthropic": ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-tokens-remaining"),
    "mistral": ("x-ratelimit-remaining-req-minute", "x-ratelimit-remaining-tokens-minute"),
    "kimi_k2": ("X-RateLimit-Remaining",),
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_ratelimit_headers_present_only_where_the_provider_sends_them(sim, provider):
    resp = await post(sim, provider)
    assert resp.status == 200
    sent = [h for h in resp.headers if "ratelimit" in h.lower()]
    if provider not in RATELIMIT_HEADERS:
        assert sent == []
        return
    names = RATELIMIT_HEADERS[provider]
    first = [int(resp.headers[h]) for h in names]
    second_resp = await post(sim, provider, "a longer prompt this time " * 10)
    second = [int(second_resp.headers[h]) for h in names]
    assert second[0] == first[0] - 1  # requests remaining drop by one per call
    if provider in ("openai", "mistral"):
        assert second[1] < first[1]


async def test_ratelimit_reset_formats():
    from exporter.simulator.ratelimits import go_duration

    assert [go_duration(s) for s in (0.012, 1, 1.5, 360, 3661)] == [
        "12ms",
        "1s",
        "1.5s",
        "6m0s",
        "1h1m1s",
    ]


async def test_reset_headers_are_go_durations_and_rfc3339(sim):
    resp = await post(sim, "openai")
    assert re.fullmatch(r"(\d+h)?(\d+m)?[\d.]+(ms|s)", resp.headers["x-ratelimit-reset-requests"])
    resp = await post(sim, "anthropic")
    reset = datetime.fromisoformat(resp.headers["anthropic-ratelimit-tokens-reset"])
    assert 0 < reset.timestamp() - time.time() <= 61
    assert int(resp.headers["anthropic-ratelimit-tokens-remaining"]) % 1000 == 0
