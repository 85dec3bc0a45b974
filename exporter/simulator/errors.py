"""Error bodies in each provider's own shape, built from the catalogue."""

from __future__ import annotations

import math
from typing import Any

from exporter.simulator.error_catalog import CATALOG, KINDS, Spec

__all__ = ["KINDS", "error_body"]

_GOOGLE = "type.googleapis.com/google.rpc."
_SERVICE = "generativelanguage.googleapis.com"


def _gemini_details(spec: Spec, kind: str, retry_s: float) -> list[dict[str, Any]]:
    """The google.rpc detail messages Gemini attaches to some errors."""
    if kind == "auth":
        return [
            {
                "@type": _GOOGLE + "ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": _SERVICE},
            },
            {"@type": _GOOGLE + "LocalizedMessage", "locale": "en-US", "message": spec.message},
        ]
    if kind == "rate_limit":
        metric = f"{_SERVICE}/generate_content_free_tier_requests"
        return [
            {
                "@type": _GOOGLE + "QuotaFailure",
                "violations": [{"quotaMetric": metric, "quotaId": "GenerateRequestsPerMinute"}],
            },
            {"@type": _GOOGLE + "RetryInfo", "retryDelay": f"{math.ceil(retry_s)}s"},
        ]
    return []


def error_body(
    provider: str,
    kind: str,
    *,
    request_id: str,
    model: str = "",
    detail: str = "",
    retry_s: float = 1.0,
    echo: str | None = None,
    message: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body of error `kind` as `provider` sends it.

    `message` replaces the catalogue text; `echo` (echo_key mode only) appends the received
    key to it on purpose.
    """
    spec = CATALOG[provider][kind]
    if message is None:
        message = spec.message.format(model=model, detail=detail, retry=max(1, math.ceil(retry_s)))
    if echo is not None:
        message = f"{message} Received key: {echo}"
    if provider == "anthropic":
        error = {"type": spec.type, "message": message}
        return spec.status, {"type": "error", "error": error, "request_id": request_id}
    if provider == "gemini":
        body: dict[str, Any] = {"code": spec.status, "message": message, "status": spec.type}
        details = _gemini_details(spec._replace(message=message), kind, retry_s)
        if details:
            body["details"] = details
        return spec.status, {"error": body}
    if provider == "mistral":  # flat, no `error` wrapper
        flat = {"object": "error", "message": message, "type": spec.type, "param": None}
        return spec.status, {**flat, "code": spec.code}
    if provider == "grok":  # xAI's bare shape: a status sentence and the message
        return spec.status, {"code": spec.type, "error": message}
    if provider == "kimi_k2":
        return spec.status, {"error": {"type": spec.type, "message": message}}
    wrapped = {"message": message, "type": spec.type, "param": None, "code": spec.code}
    if provider == "qwen":
        return spec.status, {"error": wrapped, "request_id": request_id}
    return spec.status, {"error": wrapped}
