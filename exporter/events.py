"""The event schema of `POST /api/v1/events` (msgspec Structs) and decoding with per-event errors.

Token counts are disjoint, so every token is counted once: `input_tokens` excludes cached and
cache-write tokens, and `output_tokens` excludes reasoning tokens. Unknown fields are ignored so an
older exporter accepts events from a newer client. Error texts quote a caller's value escaped and
cut to `ECHO_CHARS`, and a body nested too deeply for the decoder is a `BodyError`, not a crash.
"""

from __future__ import annotations

import ast
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


ECHO_CHARS = 64  # at most this much of a caller's value is quoted back in an error
_MAX_ERROR = 256
# msgspec quotes the offending value (of any length) after these; other errors name only a path
_ECHOING = ("Invalid enum value ", "Invalid value ")


def quoted(value: str, limit: int = ECHO_CHARS) -> str:
    """`value` as an ASCII-only repr, cut to `limit` characters of escaped text and marked so."""
    shown = value[:limit]
    while len(text := ascii(shown)) > limit + 2:  # escapes (\\U0001f600) count too
        shown = shown[:-1]
    return text if shown == value else f"{text}... ({len(value)} chars)"


def bounded(message: str) -> str:
    """A msgspec error message with the echoed value shortened and escaped."""
    prefix = next((p for p in _ECHOING if message.startswith(p)), None)
    if prefix is None:
        return message if len(message) <= _MAX_ERROR else message[:_MAX_ERROR] + "..."
    text, where = message[len(prefix) :], ""
    cut = text.rfind(" - at `")  # the path msgspec appends is ours: `$.type`, `$[3].role`
    if cut >= 0 and text.endswith("`"):
        text, where = text[:cut], text[cut:]
    value: object = None
    if len(text) <= 8 * ECHO_CHARS:
        try:
            value = ast.literal_eval(text)  # msgspec wrote the value's repr
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
    shown = quoted(value) if isinstance(value, str) else quoted(text.strip("'\""))
    return f"{prefix}{shown}{where}"


_batch = msgspec.json.Decoder(list[Event])
_one = msgspec.json.Decoder(Event)
_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
_any = msgspec.json.Decoder()
_WS = b" \t\r\n"
_TOO_DEEP = "body is nested too deeply (the limit is a few hundred levels of arrays/objects)"


def decode_body(body: bytes) -> tuple[list[tuple[int, Event]], list[tuple[int, str]]]:
    """Decode a JSON array or object into (index, event) and (index, error) pairs."""
    start = body[:1]
    if start in _WS:
        start = body.lstrip(_WS)[:1]
        if not start:
            raise BodyError("body is empty: send a JSON object or an array of objects")
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
        raise BodyError(f"body is not valid JSON: {bounded(str(exc))}") from None
    except msgspec.ValidationError as exc:
        msg = f"body must be a JSON object or an array of objects: {bounded(str(exc))}"
        raise BodyError(msg) from None
    except RecursionError:  # msgspec recurses per level, even to skip a value
        raise BodyError(_TOO_DEEP) from None
    good: list[tuple[int, Event]] = []
    bad: list[tuple[int, str]] = []
    for i, raw in enumerate(items):
        try:
            good.append((i, _one.decode(raw)))
        except msgspec.ValidationError as exc:
            bad.append((i, bounded(str(exc))))
        except msgspec.DecodeError as exc:
            raise BodyError(f"body is not valid JSON: {bounded(str(exc))}") from None
        except RecursionError:
            raise BodyError(_TOO_DEEP) from None
    return good, bad
