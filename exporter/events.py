"""The event schema of `POST /api/v1/events` (msgspec Structs) and decoding with per-event errors.

Token counts are disjoint, so every token is counted once: `input_tokens` excludes cached and
cache-write tokens, and `output_tokens` excludes reasoning tokens. Unknown fields are ignored so an
older exporter accepts events from a newer client.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Model = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=86_400)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
Usd = Annotated[float, msgspec.Meta(ge=0, le=1_000_000)]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
Chars = Annotated[int, msgspec.Meta(ge=0, le=100_000_000)]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=100_000_000_000)]  # Unix seconds

# `success` or a vocab.Reason value (tests/test_events.py keeps the two in step).
Outcome = Literal[
    "success", "auth", "billing", "rate_limit", "timeout", "overloaded", "server_error",
    "bad_request", "not_found", "network", "invalid_response", "other",
]  # fmt: skip
Role = Literal["user", "assistant", "system"]


class _Event(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    id: Id | None = None
    timestamp: Timestamp | None = None


class LlmCall(_Event, tag="llm_call"):
    """One call to a provider, as the orchestrator measured it."""

    provider: Name
    model: Model
    outcome: Outcome = "success"
    duration_seconds: Seconds | None = None
    time_to_first_token_seconds: Seconds | None = None
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cached_input_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    reasoning_tokens: Tokens = 0
    cost_usd: Usd | None = None
    session_id: Id | None = None
    quality_score: Score | None = None


class SessionStart(_Event, tag="session_start"):
    session_id: Id


class SessionMessage(_Event, tag="session_message"):
    """A message in a session; assistant messages name the provider that answered."""

    session_id: Id
    role: Role
    provider: Name | None = None
    content_length: Chars | None = None
    response_time_seconds: Seconds | None = None


class SessionSummarized(_Event, tag="session_summarized"):
    session_id: Id


class SessionEnd(_Event, tag="session_end"):
    session_id: Id


Event = LlmCall | SessionStart | SessionMessage | SessionSummarized | SessionEnd
EVENT_TYPES: tuple[str, ...] = (
    "llm_call", "session_start", "session_message", "session_summarized", "session_end",
)  # fmt: skip


class BodyError(ValueError):
    """The body as a whole is not JSON of the accepted shape (answered with 400)."""


_batch = msgspec.json.Decoder(list[Event])
_one = msgspec.json.Decoder(Event)
_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
_any = msgspec.json.Decoder()
_WS = b" \t\r\n"


def decode_body(body: bytes) -> tuple[list[tuple[int, Event]], list[tuple[int, str]]]:
    """Decode a JSON array or object into (index, event) and (index, error) pairs."""
    start = body[:1]
    if start in _WS:
        start = body.lstrip(_WS)[:1]
    try:
        if start == b"[":
            try:
                return list(enumerate(_batch.decode(body))), []
            except msgspec.ValidationError:
                items = _raw_items.decode(body)  # one bad event: decode them one by one
        elif start == b"{":
            items = [msgspec.Raw(body)]
        else:
            _any.decode(body)  # tells malformed JSON from a scalar
            raise BodyError("body must be a JSON object or an array of objects")
    except msgspec.DecodeError as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    except msgspec.ValidationError as exc:
        raise BodyError(f"body must be a JSON object or an array of objects: {exc}") from None
    good: list[tuple[int, Event]] = []
    bad: list[tuple[int, str]] = []
    for i, raw in enumerate(items):
        try:
            good.append((i, _one.decode(raw)))
        except msgspec.ValidationError as exc:
            bad.append((i, str(exc)))
        except msgspec.DecodeError as exc:
            raise BodyError(f"body is not valid JSON: {exc}") from None
    return good, bad
