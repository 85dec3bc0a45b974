"""Status, type, code and message of every simulated error, per provider (see providers.md)."""

from __future__ import annotations

from typing import NamedTuple


class Spec(NamedTuple):
    """One error as a provider sends it; `message` may use {model} and {retry}."""

    status: int
    type: str  # error type; Gemini: the gRPC status; xAI: its `code` sentence
    code: str | None
    message: str


KINDS: tuple[str, ...] = (
    "auth",
    "missing_key",
    "rate_limit",
    "overloaded",
    "server_error",
    "billing",
    "not_found",
    "bad_request",
)

_OPENAI_KEY = "Incorrect API key provided. You can find your API key at your account settings."
_RETRY = "Please try again in {retry}s."

# A table reads better one error per entry, so the formatter leaves it alone.
# fmt: off
CATALOG: dict[str, dict[str, Spec]] = {
    "openai": {
        "auth": Spec(401, "invalid_request_error", "invalid_api_key", _OPENAI_KEY),
        "missing_key": Spec(401, "invalid_request_error", None,
                            "You didn't provide an API key. Use Authorization: Bearer YOUR_KEY."),
        "rate_limit": Spec(429, "requests", "rate_limit_exceeded",
                           "Rate limit reached for {model} on requests per min (RPM). " + _RETRY),
        "overloaded": Spec(503, "service_unavailable_error", "server_is_overloaded",
                           "The server is overloaded or not ready yet."),
        "server_error": Spec(500, "server_error", None,
                             "The server had an error while processing your request."),
        "billing": Spec(429, "insufficient_quota", "credit_balance_exhausted",
                        "You exceeded your current quota, please check your plan and billing."),
        "not_found": Spec(404, "invalid_request_error", "model_not_found",
                          "The model `{model}` does not exist or you do not have access to it."),
        "bad_request": Spec(400, "invalid_request_error", None, "{detail}"),
    },
    "anthropic": {
        "auth": Spec(401, "authentication_error", None, "invalid x-api-key"),
        "missing_key": Spec(401, "authentication_error", None, "x-api-key header is required"),
        "rate_limit": Spec(429, "rate_limit_error", None,
                           "This request would exceed the rate limit for your organization "
                           "of requests per minute. " + _RETRY),
        "overloaded": Spec(529, "overloaded_error", None, "Overloaded"),
        "server_error": Spec(500, "api_error", None, "Internal server error"),
        "billing": Spec(402, "billing_error", None,
                        "Your credit balance is too low to access the Anthropic API."),
        "not_found": Spec(404, "not_found_error", None, "model: {model}"),
        "bad_request": Spec(400, "invalid_request_error", None, "{detail}"),
    },
    "gemini": {
        "auth": Spec(400, "INVALID_ARGUMENT", "API_KEY_INVALID",
                     "API key not valid. Please pass a valid API key."),
        "missing_key": Spec(403, "PERMISSION_DENIED", None,
                            "Method doesn't allow unregistered callers (callers without "
                            "established identity). Please use API Key or other form of API "
                            "consumer identity to call this API."),
        "rate_limit": Spec(429, "RESOURCE_EXHAUSTED", None,
                           "You exceeded your current quota, please check your plan and billing "
                           "details. Please retry in {retry}s."),
        "overloaded": Spec(503, "UNAVAILABLE", None,
                           "The model is overloaded. Please try again later."),
        "server_error": Spec(500, "INTERNAL", None,
                             "An internal error has occurred. Please retry."),
        "billing": Spec(400, "FAILED_PRECONDITION", None,
                        "Gemini API free tier is not available in your country. "
                        "Please enable billing on your project."),
        "not_found": Spec(404, "NOT_FOUND", None,
                          "models/{model} is not found for API version v1beta, or is not "
                          "supported for generateContent."),
        "bad_request": Spec(400, "INVALID_ARGUMENT", None, "{detail}"),
    },
    "mistral": {
        "auth": Spec(401, "authentication_error", None, "Unauthorized"),
        "missing_key": Spec(401, "authentication_error", None, "No API key provided"),
        "rate_limit": Spec(429, "rate_limit_error", None, "Requests rate limit exceeded"),
        "overloaded": Spec(503, "server_error", None,
                           "Service unavailable: the model is overloaded, retry later"),
        "server_error": Spec(500, "server_error", None, "Internal server error"),
        "billing": Spec(402, "invalid_request_error", None, "Payment required"),
        "not_found": Spec(400, "invalid_request_error", "unknown_model", "Invalid model: {model}"),
        "bad_request": Spec(400, "invalid_request_error", None, "{detail}"),
    },
    "grok": {
        "auth": Spec(400, "Client specified an invalid argument", None,
                     "Incorrect API key provided. You can obtain an API key from the console."),
        "missing_key": Spec(401, "Unauthenticated", None,
                            "Missing bearer or basic authentication in header"),
        "rate_limit": Spec(429, "Too many requests", None,
                           "Rate limit exceeded for model {model}. " + _RETRY),
        "overloaded": Spec(503, "Service unavailable", None,
                           "The service is currently overloaded, please try again later."),
        "server_error": Spec(500, "Internal error", None, "An internal error occurred."),
        "billing": Spec(403, "The caller does not have permission to execute the specified "
                        "operation", None,
                        "Your team has either used all available credits or reached its "
                        "monthly spending limit."),
        "not_found": Spec(404, "Some requested entity was not found", None,
                          "The model {model} does not exist or your team does not have access."),
        "bad_request": Spec(400, "Client specified an invalid argument", None, "{detail}"),
    },
    "qwen": {
        "auth": Spec(401, "invalid_request_error", "invalid_api_key",
                     "Incorrect API key provided."),
        "missing_key": Spec(401, "invalid_request_error", "invalid_api_key",
                            "You didn't provide an API key."),
        "rate_limit": Spec(429, "limit_requests", "limit_requests",
                           "Requests rate limit exceeded, please try again later."),
        "overloaded": Spec(503, "ServiceUnavailable", "ServiceUnavailable",
                           "The service is temporarily overloaded, please try again later."),
        "server_error": Spec(500, "internal_error", "InternalError",
                             "An internal error has occurred, please try again later."),
        "billing": Spec(400, "Arrearage", "Arrearage",
                        "Access denied, please make sure your account is in good standing."),
        "not_found": Spec(404, "invalid_request_error", "model_not_found",
                          "The model `{model}` does not exist or you do not have access to it."),
        "bad_request": Spec(400, "invalid_request_error", "invalid_parameter_error", "{detail}"),
    },
    "deepseek": {
        "auth": Spec(401, "authentication_error", "invalid_request_error",
                     "Authentication Fails, Your api key is invalid"),
        "missing_key": Spec(401, "authentication_error", "invalid_request_error",
                            "Authentication Fails (no api key provided)"),
        "rate_limit": Spec(429, "rate_limit_error", "rate_limit_reached", "Rate Limit Reached"),
        "overloaded": Spec(503, "service_unavailable_error", "server_overloaded",
                           "Server Overloaded"),
        "server_error": Spec(500, "api_error", "server_error", "Server Error"),
        "billing": Spec(402, "unknown_error", "invalid_request_error", "Insufficient Balance"),
        "not_found": Spec(400, "invalid_request_error", "invalid_request_error", "Model Not Exist"),
        "bad_request": Spec(400, "invalid_request_error", "invalid_request_error", "{detail}"),
    },
    "kimi_k2": {
        "auth": Spec(401, "invalid_authentication_error", None, "Invalid Authentication"),
        "missing_key": Spec(401, "invalid_authentication_error", None, "Invalid Authentication"),
        "rate_limit": Spec(429, "rate_limit_reached_error", None,
                           "Your account request reached max RPM, please try again after "
                           "{retry} seconds"),
        "overloaded": Spec(429, "engine_overloaded_error", None,
                           "The engine is currently overloaded, please try again later"),
        "server_error": Spec(500, "server_error", None, "Internal server error"),
        "billing": Spec(403, "exceeded_current_quota_error", None,
                        "Your account balance is insufficient, please recharge and try again"),
        "not_found": Spec(404, "resource_not_found_error", None,
                          "Not found the model {model} or Permission denied"),
        "bad_request": Spec(400, "invalid_request_error", None, "{detail}"),
    },
}
# fmt: on
