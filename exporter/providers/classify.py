"""Failure -> `Reason`: one ordered rule table over status, provider and error body.

Error bodies come in three shapes and are read the same way: OpenAI-like and Gemini
`{"error": {...}}`, Anthropic `{"type": "error", "error": {...}}`, Mistral's unwrapped
`{"object": "error", "type", "code", "message"}` (and xAI's bare `{"code", "error": "<text>"}`).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import aiohttp

from exporter.vocab import Reason

R = Reason


@dataclass(frozen=True)
class ErrorInfo:
    """What an error body says: lower-cased codes (type, code, status, detail reasons), message."""

    codes: frozenset[str] = frozenset()
    message: str = ""
    label: str = ""  # up to three sanitised codes joined by "/", for ProbeResult.error


@dataclass(frozen=True)
class Rule:
    """Matches when every given condition holds; globs are matched against lower-cased text."""

    status: int | range
    reason: Reason
    codes: tuple[str, ...] = ()  # any code matches any of these globs
    text: tuple[str, ...] = ()  # the message matches any of these globs
    providers: frozenset[str] | None = None

    def matches(self, provider: str, status: int, info: ErrorInfo) -> bool:
        return (
            (status == self.status if isinstance(self.status, int) else status in self.status)
            and (self.providers is None or provider in self.providers)
            and (not self.codes or any(fnmatchcase(c, g) for c in info.codes for g in self.codes))
            and (not self.text or any(fnmatchcase(info.message, g) for g in self.text))
        )


_BILLING_429 = ("insufficient_quota", "credit_balance_exhausted", "*spend_limit*",
                "organization_usage_limit_exceeded")
_BAD_KEY_TEXT = ("*api key not valid*", "*incorrect api key*", "*invalid api key*",
                 "*api key*incorrect*", "*api key is invalid*")
_KEY_QUOTA = ("exceeded_current_quota*", "insufficient_balance*")
_NO_MONEY_TEXT = ("*insufficient balance*", "*balance is insufficient*", "*billing*",
                  "*credits*", "*spending limit*", "*spend limit*")

# First match wins; read it top to bottom (providers.md §10.3, with billing as its own reason).
RULES: tuple[Rule, ...] = (
    Rule(429, R.RATE_LIMIT, providers=frozenset({"qwen"})),  # DashScope TPM: insufficient_quota
    Rule(429, R.BILLING, codes=_BILLING_429),  # OpenAI quota/spend, Anthropic spend cap
    Rule(429, R.OVERLOADED, codes=("engine_overloaded*",)),  # Moonshot reuses 429
    Rule(429, R.OVERLOADED, text=("*engine is currently overloaded*",)),
    Rule(429, R.RATE_LIMIT),
    Rule(402, R.BILLING),  # Anthropic billing_error, DeepSeek, Mistral
    Rule(range(400, 500), R.BILLING, codes=("arrearage",)),  # DashScope overdue payment
    Rule(400, R.AUTH, codes=("api_key_invalid",)),  # Gemini: a bad key is a 400
    Rule(400, R.AUTH, text=_BAD_KEY_TEXT),  # xAI: "Incorrect API key provided"
    Rule(400, R.BILLING, codes=("failed_precondition",), text=("*billing*",)),  # Gemini
    Rule(401, R.AUTH),
    Rule(403, R.BILLING, codes=_KEY_QUOTA),  # Moonshot
    Rule(403, R.BILLING, text=_NO_MONEY_TEXT),  # Moonshot balance, xAI credits/spending limit
    Rule(403, R.AUTH),  # permission denied
    Rule(404, R.NOT_FOUND),
    Rule(408, R.TIMEOUT),
    Rule(504, R.TIMEOUT),  # Anthropic timeout_error, Gemini DEADLINE_EXCEEDED
    Rule(503, R.OVERLOADED),  # every provider uses 503 for capacity (UNAVAILABLE, overloaded)
    Rule(529, R.OVERLOADED),  # Anthropic overloaded_error
    Rule(range(500, 600), R.SERVER_ERROR),
    Rule(range(400, 500), R.BAD_REQUEST),
)

# In-stream errors arrive after a 200: their type stands in for the status (Anthropic names).
STREAM_ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "rate_limit_exceeded": 429, "api_error": 500, "server_error": 500,
    "timeout_error": 504, "overloaded_error": 529, "server_is_overloaded": 503,
}

_LABEL = re.compile(r"[A-Za-z0-9_.\-]{1,48}\Z")
_SPACES = re.compile(r"\s+")


def _texts(value: Any) -> list[str]:
    return [value] if isinstance(value, str) and value else []


def error_info(doc: Any) -> ErrorInfo:
    """Pull codes and message out of any provider's error body; ErrorInfo() if there are none."""
    if not isinstance(doc, dict):
        return ErrorInfo()
    inner = doc.get("error")
    body = inner if isinstance(inner, dict) else doc
    codes = [*_texts(body.get("type")), *_texts(body.get("code")), *_texts(body.get("status"))]
    details = body.get("details")
    for item in details if isinstance(details, list) else [details]:
        if isinstance(item, dict):
            codes += _texts(item.get("reason")) + _texts(item.get("error_code"))
    message = body.get("message")
    if not isinstance(message, str):
        message = inner if isinstance(inner, str) else ""
    # Whole codes only: a code is kept (spaces as "_") or dropped, never cut or stripped, so
    # a key a provider echoes into a code stays whole and the caller's redaction catches it.
    spelled = (_SPACES.sub("_", c.strip()) for c in codes)
    parts = dict.fromkeys(p for p in spelled if _LABEL.match(p))
    label = "/".join(list(parts)[:3])
    return ErrorInfo(frozenset(c.lower() for c in codes), message.lower()[:2000], label)


def classify_status(provider: str, status: int, doc: Any = None) -> tuple[Reason, ErrorInfo]:
    """The reason for an HTTP error status (and its parsed body), plus what the body said."""
    info = error_info(doc)
    for rule in RULES:
        if rule.matches(provider, status, info):
            return rule.reason, info
    return R.OTHER, info


def classify_exception(exc: BaseException) -> Reason:
    """Client-side failures: our timeouts -> timeout, transport trouble -> network."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return R.TIMEOUT
    if isinstance(exc, aiohttp.InvalidURL):
        return R.OTHER
    if isinstance(exc, aiohttp.ClientError | OSError):
        return R.NETWORK
    return R.OTHER


def classify_stream_error(provider: str, doc: Any) -> tuple[Reason, ErrorInfo]:
    """An error object sent inside a 200 stream: its numeric code or type stands in for status."""
    info = error_info(doc)
    inner = doc.get("error") if isinstance(doc, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        status = code
    else:
        known = [STREAM_ERROR_STATUS[c] for c in sorted(info.codes) if c in STREAM_ERROR_STATUS]
        status = max(known, default=500)  # an unnamed failure mid-generation is the server's
    return classify_status(provider, status, doc)
