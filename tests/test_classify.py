"""The error classification table, row by row, and the exception mapping."""

from __future__ import annotations

import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from exporter.providers.classify import (
    RULES,
    classify_exception,
    classify_status,
    classify_stream_error,
    error_info,
)
from exporter.vocab import Reason

R = Reason


def oai(type_: str | None = None, code: str | None = None, message: str = "") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def ant(type_: str, **details: str) -> dict:
    error: dict = {"type": type_, "message": "m"}
    if details:
        error["details"] = details
    return {"type": "error", "error": error}


def goog(code: int, status: str, message: str = "", reason: str | None = None) -> dict:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return {"error": {"code": code, "message": message, "status": status,
                      "details": details if reason else []}}


CASES = [
    # provider, status, body, reason
    ("openai", 429, oai("insufficient_quota", "credit_balance_exhausted"), R.BILLING),
    ("openai", 429, oai("insufficient_quota", "organization_spend_limit_exceeded"), R.BILLING),
    ("openai", 429, oai("insufficient_quota", "organization_usage_limit_exceeded"), R.BILLING),
    ("openai", 429, oai("insufficient_quota"), R.BILLING),
    ("openai", 429, oai("requests", "rate_limit_exceeded"), R.RATE_LIMIT),
    ("openai", 429, oai("requests", "slow_down"), R.RATE_LIMIT),
    ("openai", 429, None, R.RATE_LIMIT),
    ("openai", 503, oai("service_unavailable_error", "server_is_overloaded"), R.OVERLOADED),
    ("openai", 401, oai("invalid_request_error", "invalid_api_key"), R.AUTH),
    ("openai", 403, oai("invalid_request_error"), R.AUTH),
    ("openai", 404, oai("invalid_request_error", "model_not_found"), R.NOT_FOUND),
    ("openai", 409, None, R.BAD_REQUEST),
    ("openai", 422, None, R.BAD_REQUEST),
    ("openai", 418, None, R.BAD_REQUEST),
    ("openai", 408, None, R.TIMEOUT),
    ("openai", 500, oai("server_error"), R.SERVER_ERROR),
    ("openai", 501, None, R.SERVER_ERROR),
    ("openai", 502, None, R.SERVER_ERROR),
    ("openai", 504, None, R.TIMEOUT),
    ("openai", 302, None, R.OTHER),
    ("openai", 101, None, R.OTHER),
    ("anthropic", 529, ant("overloaded_error"), R.OVERLOADED),
    ("anthropic", 402, ant("billing_error"), R.BILLING),
    ("anthropic", 429, ant("rate_limit_error", error_code="enforced_spend_limit_reached"),
     R.BILLING),
    ("anthropic", 429, ant("rate_limit_error"), R.RATE_LIMIT),
    ("anthropic", 401, ant("authentication_error"), R.AUTH),
    ("anthropic", 403, ant("permission_error"), R.AUTH),
    ("anthropic", 400, ant("invalid_request_error"), R.BAD_REQUEST),
    ("anthropic", 413, ant("request_too_large"), R.BAD_REQUEST),
    ("anthropic", 500, ant("api_error"), R.SERVER_ERROR),
    ("anthropic", 504, ant("timeout_error"), R.TIMEOUT),
    ("gemini", 400, goog(400, "INVALID_ARGUMENT", "API key expired.", "API_KEY_INVALID"), R.AUTH),
    ("gemini", 400, goog(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid key."),
     R.AUTH),
    ("gemini", 400, goog(400, "FAILED_PRECONDITION", "Please enable billing."), R.BILLING),
    ("gemini", 400, goog(400, "FAILED_PRECONDITION", "User location is not supported."),
     R.BAD_REQUEST),
    ("gemini", 400, goog(400, "INVALID_ARGUMENT", "bad request"), R.BAD_REQUEST),
    ("gemini", 403, goog(403, "PERMISSION_DENIED"), R.AUTH),
    ("gemini", 404, goog(404, "NOT_FOUND"), R.NOT_FOUND),
    ("gemini", 429, goog(429, "RESOURCE_EXHAUSTED"), R.RATE_LIMIT),
    ("gemini", 500, goog(500, "INTERNAL"), R.SERVER_ERROR),
    ("gemini", 503, goog(503, "UNAVAILABLE"), R.OVERLOADED),
    ("gemini", 504, goog(504, "DEADLINE_EXCEEDED"), R.TIMEOUT),
    ("grok", 400, {"code": "Client specified an invalid argument",
                   "error": "Incorrect API key provided: xa***34."}, R.AUTH),
    ("grok", 400, oai("invalid_request_error", message="The API key is incorrect"), R.AUTH),
    ("grok", 400, oai("invalid_request_error", message="max_tokens too large"), R.BAD_REQUEST),
    ("grok", 403, {"code": "The caller does not have permission", "error": "Your team has used "
                   "all available credits or reached its monthly spending limit."}, R.BILLING),
    ("grok", 403, {"code": "The caller does not have permission", "error": "Key is blocked"},
     R.AUTH),
    ("deepseek", 402, oai("unknown_error", message="Insufficient Balance"), R.BILLING),
    ("deepseek", 503, oai(message="Server overloaded"), R.OVERLOADED),
    ("deepseek", 429, None, R.RATE_LIMIT),
    ("deepseek", 422, oai("invalid_request_error"), R.BAD_REQUEST),
    ("kimi_k2", 429, oai("engine_overloaded_error", message="The engine is currently overloaded"),
     R.OVERLOADED),
    ("kimi_k2", 429, oai(message="The engine is currently overloaded, please try again"),
     R.OVERLOADED),
    ("kimi_k2", 429, oai("rate_limit_reached_error"), R.RATE_LIMIT),
    ("kimi_k2", 403, oai("exceeded_current_quota_error", message="quota"), R.BILLING),
    ("kimi_k2", 403, oai("permission_denied_error", message="Insufficient balance"), R.BILLING),
    ("kimi_k2", 403, oai("permission_denied_error"), R.AUTH),
    ("kimi_k2", 401, oai("incorrect_api_key_error"), R.AUTH),
    ("mistral", 402, {"object": "error", "message": "m", "type": "invalid_request_error",
                      "code": "3505"}, R.BILLING),
    ("mistral", 429, {"object": "error", "message": "m", "type": "rate_limit_error"},
     R.RATE_LIMIT),
    ("mistral", 503, {"object": "error", "message": "m", "type": "server_error"}, R.OVERLOADED),
    ("qwen", 429, oai("insufficient_quota", "insufficient_quota"), R.RATE_LIMIT),
    ("qwen", 429, oai("Throttling.RateQuota"), R.RATE_LIMIT),
    ("qwen", 403, oai("Arrearage", "Arrearage"), R.BILLING),
    ("qwen", 400, oai("Arrearage", "Arrearage", "Access denied"), R.BILLING),
    ("qwen", 403, oai("AccessDenied", "access_denied"), R.AUTH),
    ("qwen", 401, oai("invalid_request_error", "invalid_api_key"), R.AUTH),
    ("qwen", 404, oai("ModelNotFound"), R.NOT_FOUND),
]


@pytest.mark.parametrize(("provider", "status", "body", "reason"), CASES)
def test_rule_table(provider: str, status: int, body: object, reason: Reason) -> None:
    assert classify_status(provider, status, body)[0] is reason


def test_every_rule_is_reachable() -> None:
    """Each rule in the table decides at least one case above (no dead rows)."""
    used = set()
    for provider, status, body, _ in CASES:
        info = error_info(body)
        hits = [i for i, rule in enumerate(RULES) if rule.matches(provider, status, info)]
        used.update(hits[:1])  # no hit: the fallback `other`
    assert used == set(range(len(RULES)))


@pytest.mark.parametrize(
    ("body", "codes", "label"),
    [
        (oai("insufficient_quota", "credit_balance_exhausted"),
         {"insufficient_quota", "credit_balance_exhausted"},
         "insufficient_quota/credit_balance_exhausted"),
        (ant("rate_limit_error", error_code="enforced_spend_limit_reached"),
         {"rate_limit_error", "enforced_spend_limit_reached"},
         "rate_limit_error/enforced_spend_limit_reached"),
        (goog(400, "INVALID_ARGUMENT", "x", "API_KEY_INVALID"),
         {"invalid_argument", "api_key_invalid"}, "INVALID_ARGUMENT/API_KEY_INVALID"),
        ({"object": "error", "type": "rate_limit_error", "code": "1300"},
         {"rate_limit_error", "1300"}, "rate_limit_error/1300"),
        ({"code": "Bad <arg>", "error": "text"}, {"bad <arg>"}, ""),
        ({"code": "Client specified an invalid argument", "error": "t"},
         {"client specified an invalid argument"}, "Client_specified_an_invalid_argument"),
        ({"error": {"type": "x" * 49, "code": "short"}}, {"x" * 49, "short"}, "short"),
        ([1, 2], set(), ""),
        (None, set(), ""),
        ({"error": {"type": 5, "code": None}}, set(), ""),
    ],
)
def test_error_info_reads_every_shape(body, codes, label) -> None:
    """Codes come from any shape, lower-cased; the label is sanitised for messages."""
    info = error_info(body)
    assert info.codes == codes and info.label == label


def test_error_info_message_from_bare_error_string() -> None:
    assert error_info({"code": "c", "error": "Incorrect API key"}).message == "incorrect api key"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (ant("overloaded_error"), R.OVERLOADED),
        (ant("api_error"), R.SERVER_ERROR),
        (ant("rate_limit_error"), R.RATE_LIMIT),
        (goog(503, "UNAVAILABLE"), R.OVERLOADED),
        (goog(429, "RESOURCE_EXHAUSTED"), R.RATE_LIMIT),
        (oai("server_error"), R.SERVER_ERROR),
        (oai("something_new"), R.SERVER_ERROR),
        ({"error": "boom"}, R.SERVER_ERROR),
    ],
)
def test_stream_errors(doc, reason) -> None:
    """In-stream errors are classified by their numeric code or their type."""
    assert classify_stream_error("anthropic", doc)[0] is reason


KEY = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TimeoutError(), R.TIMEOUT),
        (TimeoutError(), R.TIMEOUT),
        (aiohttp.ServerTimeoutError(), R.TIMEOUT),
        (aiohttp.ConnectionTimeoutError(), R.TIMEOUT),
        (aiohttp.ClientConnectorError(KEY, ConnectionRefusedError(111, "refused")), R.NETWORK),
        (aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name not known")), R.NETWORK),
        (aiohttp.ServerDisconnectedError(), R.NETWORK),
        (aiohttp.ClientPayloadError("Response payload is not completed"), R.NETWORK),
        (ConnectionResetError(), R.NETWORK),
        (ssl.SSLError(1, "handshake failure"), R.NETWORK),
        (aiohttp.InvalidURL("http://[bad"), R.OTHER),
        (ValueError("bug"), R.OTHER),
    ],
)
def test_exceptions(exc: BaseException, reason: Reason) -> None:
    assert classify_exception(exc) is reason
