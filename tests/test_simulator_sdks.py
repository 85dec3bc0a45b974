"""The official provider SDKs (openai, anthropic, google-genai) parse the simulator's answers."""

from __future__ import annotations

import asyncio
import json
import socket

import anthropic
import openai
import pytest
from _sim_helpers import KEY, OPENAI_FAMILY, model
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.simulator import SIM_STATE, create_app
from exporter.vocab import PROVIDERS

_ENV = (
    *("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"),
    *("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_PROFILE"),
    *("ANTHROPIC_CUSTOM_HEADERS", "GOOGLE_API_KEY", "GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"),
    *("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_CLOUD_PROJECT"),
    *("GOOGLE_CLOUD_LOCATION", "GOOGLE_GENAI_API_VERSION", "GOOGLE_GENAI_HTTP_CLIENT"),
    *("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"),
)
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
# google-genai's own aiohttp subclass trips an aiohttp deprecation warning; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch, tmp_path):
    """No SDK setting from the environment, and no socket may connect beyond loopback."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))  # no profile from the home dir
    real_connect = socket.socket.connect

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise OSError(f"test tried to reach {address[0]}: loopback only")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def test_the_guard_refuses_anything_but_loopback():
    with socket.socket() as sock, pytest.raises(OSError, match="loopback only"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed


@pytest.fixture
async def sim(aiohttp_server):
    """A simulator without added latency; yields (base URL, state)."""
    app = create_app(seed=3)
    for provider in PROVIDERS:
        app[SIM_STATE].set_mode(provider, "ok", latency_ms=0, token_delay_ms=0)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), app[SIM_STATE]


def openai_client(sim, provider: str = "openai", timeout: float = 5.0) -> openai.AsyncOpenAI:
    base, _ = sim
    url = base + SIMULATOR_ROOTS[provider]
    return openai.AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0, timeout=timeout)


def anthropic_client(sim) -> anthropic.AsyncAnthropic:
    base, _ = sim  # the SDK appends /v1/...
    url = base + SIMULATOR_ROOTS["anthropic"].removesuffix("/v1")
    return anthropic.AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0, timeout=5.0)


def gemini_client(sim) -> genai.Client:
    base, _ = sim
    options = genai_types.HttpOptions(
        base_url=base + SIMULATOR_ROOTS["gemini"].removesuffix("/v1beta"),
        api_version="v1beta",
        timeout=5000,
        retry_options=genai_types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=KEY, http_options=options)


PING = [{"role": "user", "content": "ping"}]


# --- openai -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", OPENAI_FAMILY)
async def test_openai_sdk_models_and_completion(sim, provider):
    async with openai_client(sim, provider) as client:
        page = await client.models.list()
        ids = {m.id for m in page.data}
        assert set(PROVIDER_DEFAULTS[provider]["models"]) <= ids
        reply = await client.chat.completions.create(
            model=model(provider), messages=PING, max_tokens=16
        )
    assert reply.choices[0].message.content
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    if provider == "deepseek":
        extra = reply.usage.model_extra or {}
        assert extra["prompt_cache_miss_tokens"] == reply.usage.prompt_tokens


@pytest.mark.parametrize("provider", OPENAI_FAMILY)
async def test_openai_sdk_stream_with_usage(sim, provider):
    async with openai_client(sim, provider) as client:
        stream = await client.chat.completions.create(
            model=model(provider),
            messages=PING,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    if provider == "kimi_k2":  # Kimi: usage inside the last choice
        usage = (chunks[-1].choices[0].model_extra or {})["usage"]
        assert usage["total_tokens"] > 0
    else:
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("provider", "mode", "exc"),
    [
        ("openai", "rate_limit", openai.RateLimitError),
        ("openai", "auth", openai.AuthenticationError),
        ("openai", "billing", openai.RateLimitError),
        ("openai", "overloaded", openai.InternalServerError),
        ("grok", "auth", openai.BadRequestError),
        ("mistral", "auth", openai.AuthenticationError),
        ("deepseek", "billing", openai.APIStatusError),
        ("kimi_k2", "overloaded", openai.RateLimitError),
        ("qwen", "server_error", openai.InternalServerError),
        ("openai", "down", openai.APIConnectionError),
    ],
)
async def test_openai_sdk_error_classes(sim, provider, mode, exc):
    sim[1].set_mode(provider, mode, latency_ms=0)
    async with openai_client(sim, provider) as client:
        with pytest.raises(exc) as caught:
            await client.chat.completions.create(model=model(provider), messages=PING)
    if isinstance(caught.value, openai.APIStatusError):
        assert caught.value.message  # the SDK found the message in the provider's shape
    if mode == "billing" and provider == "openai":
        assert caught.value.type == "insufficient_quota"


async def test_openai_sdk_timeout_on_hang(sim):
    sim[1].set_mode("openai", "hang", latency_ms=0)
    async with openai_client(sim, timeout=0.5) as client:
        with pytest.raises(openai.APITimeoutError):
            await client.models.list()


async def test_openai_sdk_rejects_malformed_json(sim):
    sim[1].set_mode("openai", "malformed", latency_ms=0)
    async with openai_client(sim) as client:
        with pytest.raises(json.JSONDecodeError):
            await client.chat.completions.create(model=model("openai"), messages=PING)
        stream = await client.chat.completions.create(
            model=model("openai"), messages=PING, stream=True
        )
        with pytest.raises(json.JSONDecodeError):
            async for _ in stream:
                pass


# --- anthropic ----------------------------------------------------------------------------


async def test_anthropic_sdk_messages_and_models(sim):
    async with anthropic_client(sim) as client:
        message = await client.messages.create(
            model=model("anthropic"), max_tokens=32, messages=PING
        )
        listed = [m.id async for m in client.models.list(limit=2)]  # pages via after_id
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert message.usage.cache_read_input_tokens == 0
    assert set(PROVIDER_DEFAULTS["anthropic"]["models"]) <= set(listed)
    assert len(listed) == len(set(listed))


async def test_anthropic_sdk_stream_with_thinking(sim):
    async with (
        anthropic_client(sim) as client,
        client.messages.stream(
            model=model("anthropic"),
            max_tokens=64,
            messages=PING,
            thinking={"type": "enabled", "budget_tokens": 32},
        ) as stream,
    ):
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.content[-1].text == text
    assert final.content[0].type == "thinking" and final.content[0].signature
    details = final.usage.output_tokens_details
    assert details is not None and 0 < details.thinking_tokens < final.usage.output_tokens


@pytest.mark.parametrize(
    ("mode", "exc", "status"),
    [
        ("overloaded", anthropic.OverloadedError, 529),
        ("rate_limit", anthropic.RateLimitError, 429),
        ("auth", anthropic.AuthenticationError, 401),
        ("billing", anthropic.APIStatusError, 402),
        ("server_error", anthropic.InternalServerError, 500),
    ],
)
async def test_anthropic_sdk_error_classes(sim, mode, exc, status):
    sim[1].set_mode("anthropic", mode, latency_ms=0)
    async with anthropic_client(sim) as client:
        with pytest.raises(exc) as caught:
            await client.messages.create(model=model("anthropic"), max_tokens=8, messages=PING)
    assert caught.value.status_code == status
    assert caught.value.request_id


# --- google-genai -------------------------------------------------------------------------


async def test_genai_sdk_generate_stream_and_list(sim):
    client = gemini_client(sim)
    name = model("gemini")
    # The sync client first, from a thread so this loop keeps serving.
    sync_reply = await asyncio.to_thread(client.models.generate_content, model=name, contents="x")
    assert sync_reply.text
    await asyncio.to_thread(client.close)
    async with gemini_client(sim).aio as aclient:
        await _genai_async_calls(aclient, name)


async def _genai_async_calls(client, name: str) -> None:
    reply = await client.models.generate_content(model=name, contents="ping")
    assert reply.text
    meta = reply.usage_metadata
    assert meta is not None and meta.prompt_token_count and meta.candidates_token_count
    chunks = [
        c async for c in await client.models.generate_content_stream(model=name, contents="ping")
    ]
    assert "".join(c.text or "" for c in chunks)
    assert chunks[-1].usage_metadata.total_token_count > 0
    names = [m.name async for m in await client.models.list()]
    assert f"models/{name}" in names


@pytest.mark.parametrize(
    ("mode", "exc", "status"),
    [
        ("auth", genai_errors.ClientError, "INVALID_ARGUMENT"),
        ("overloaded", genai_errors.ServerError, "UNAVAILABLE"),
        ("rate_limit", genai_errors.ClientError, "RESOURCE_EXHAUSTED"),
    ],
)
async def test_genai_sdk_errors(sim, mode, exc, status):
    sim[1].set_mode("gemini", mode, latency_ms=0)
    async with gemini_client(sim).aio as client:
        with pytest.raises(exc) as caught:
            await client.models.generate_content(model=model("gemini"), contents="ping")
    assert isinstance(caught.value, genai_errors.APIError)
    assert caught.value.status == status
