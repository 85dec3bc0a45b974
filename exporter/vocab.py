"""The closed label vocabularies of the metric contract (see DESIGN.md)."""

from __future__ import annotations

from enum import StrEnum

PROVIDERS: tuple[str, ...] = (
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "grok",
    "qwen",
    "deepseek",
    "kimi_k2",
)


class Reason(StrEnum):
    """Why a probe or a call failed; the only values the `reason`/`outcome` labels take."""

    AUTH = "auth"
    BILLING = "billing"
    RATE_LIMIT = "rate_limit"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    NETWORK = "network"
    INVALID_RESPONSE = "invalid_response"
    OTHER = "other"


class Check(StrEnum):
    """What a probe exercises: the free model list, a tiny completion, or a streamed one."""

    MODELS = "models"
    COMPLETION = "completion"
    STREAM = "stream"


class Api(StrEnum):
    """Wire families; each has one prober module."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    GEMINI = "gemini"


class TokenType(StrEnum):
    INPUT = "input"
    OUTPUT = "output"
    CACHED_INPUT = "cached_input"
    CACHE_WRITE = "cache_write"
    REASONING = "reasoning"


PHASES: tuple[str, ...] = ("dns", "connect", "tls", "first_byte", "first_token", "total")
RATELIMIT_RESOURCES: tuple[str, ...] = ("requests", "tokens", "input_tokens", "output_tokens")
