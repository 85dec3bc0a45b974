"""The event schema and body decoding: partial acceptance with each error's index and path."""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.events import (
    EVENT_TYPES,
    BodyError,
    Event,
    LlmCall,
    Outcome,
    SessionMessage,
    decode_body,
)
from exporter.vocab import Reason


def test_outcome_is_success_or_a_reason() -> None:
    assert set(typing.get_args(Outcome)) == {"success"} | {r.value for r in Reason}


def test_event_types_match_the_union() -> None:
    tags = {cls.__struct_config__.tag for cls in typing.get_args(Event)}
    assert tags == set(EVENT_TYPES)


def test_a_full_llm_call_decodes() -> None:
    body = {
        "type": "llm_call", "id": "e1", "provider": "openai", "model": "gpt-6-luna",
        "outcome": "success", "duration_seconds": 0.82, "time_to_first_token_seconds": 0.21,
        "input_tokens": 120, "output_tokens": 300, "cached_input_tokens": 5,
        "cache_write_tokens": 6, "reasoning_tokens": 7, "cost_usd": None, "session_id": "s-1",
        "quality_score": 0.9, "timestamp": 1732260000.0,
    }  # fmt: skip
    good, bad = decode_body(json.dumps(body).encode())
    assert bad == []
    [(index, ev)] = good
    assert index == 0 and isinstance(ev, LlmCall)
    assert (ev.input_tokens, ev.output_tokens, ev.reasoning_tokens) == (120, 300, 7)
    assert ev.quality_score == 0.9 and ev.cost_usd is None and ev.session_id == "s-1"


def test_one_bad_event_keeps_the_others_and_names_index_and_field() -> None:
    body = [
        {"type": "session_start", "session_id": "a"},
        {"type": "llm_call", "provider": "openai", "model": "m", "duration_seconds": -1},
        {"type": "session_message", "session_id": "a", "role": "robot"},
        {"type": "nope"},
        {"provider": "openai"},
        7,
        {"type": "session_end", "session_id": "a"},
    ]
    good, bad = decode_body(json.dumps(body).encode())
    assert [i for i, _ in good] == [0, 6]
    errors = dict(bad)
    assert set(errors) == {1, 2, 3, 4, 5}
    assert "`$.duration_seconds`" in errors[1] and ">= 0" in errors[1]
    assert "`$.role`" in errors[2] and "robot" in errors[2]
    assert "`$.type`" in errors[3]
    assert "type" in errors[4]
    assert "object" in errors[5]


@pytest.mark.parametrize(
    ("field", "bad_value", "where"),
    [
        ("model", "m" * 129, "`$.model`"),
        ("id", "i" * 129, "`$.id`"),
        ("session_id", "", "`$.session_id`"),
        ("input_tokens", 10**9 + 1, "`$.input_tokens`"),
        ("input_tokens", 1.5, "`$.input_tokens`"),
        ("output_tokens", -1, "`$.output_tokens`"),
        ("duration_seconds", 86_401, "`$.duration_seconds`"),
        ("cost_usd", 1e7, "`$.cost_usd`"),
        ("quality_score", 1.01, "`$.quality_score`"),
        ("outcome", "exploded", "`$.outcome`"),
        ("duration_seconds", True, "`$.duration_seconds`"),
        ("timestamp", -5, "`$.timestamp`"),
    ],
)
def test_limits_are_enforced(field: str, bad_value: object, where: str) -> None:
    ev = {"type": "llm_call", "provider": "openai", "model": "m", field: bad_value}
    good, bad = decode_body(json.dumps([ev]).encode())
    assert good == []
    assert len(bad) == 1 and where in bad[0][1]


def test_unknown_fields_are_ignored_for_newer_clients() -> None:
    ev = {"type": "session_message", "session_id": "s", "role": "user", "new_field": [1, 2]}
    good, bad = decode_body(json.dumps(ev).encode())
    assert bad == [] and isinstance(good[0][1], SessionMessage)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1, 2", b'"text"', b"42", b"null", b"true", b"\xff\xfe", b"[{}] x"],
)
def test_a_body_of_the_wrong_shape_is_refused_whole(body: bytes) -> None:
    with pytest.raises(BodyError):
        decode_body(body)


def test_an_empty_array_is_fine() -> None:
    assert decode_body(b" [ ] ") == ([], [])


def test_non_finite_numbers_are_not_json() -> None:
    with pytest.raises(BodyError):
        decode_body(b'[{"type":"llm_call","provider":"p","model":"m","duration_seconds":NaN}]')
    good, bad = decode_body(b'[{"type":"llm_call","provider":"p","model":"m","cost_usd":1e999}]')
    assert good == [] and "`$.cost_usd`" in bad[0][1]


_valid = st.fixed_dictionaries(
    {"type": st.just("llm_call"), "provider": st.just("openai"), "model": st.just("m")},
    optional={"input_tokens": st.integers(0, 10**9), "quality_score": st.floats(0, 1)},
)
_invalid = (
    st.fixed_dictionaries(
        {"type": st.just("llm_call"), "provider": st.just("openai"), "model": st.just("m")},
        optional={"input_tokens": st.integers(max_value=-1)},
    ).filter(lambda d: "input_tokens" in d)
    | st.integers()
    | st.text(max_size=5)
)


@given(st.lists(st.tuples(st.booleans(), _valid, _invalid), max_size=20))
def test_every_event_is_either_kept_or_reported_once(items: list) -> None:
    body = [v if ok else bad for ok, v, bad in items]
    good, bad = decode_body(json.dumps(body).encode())
    assert [i for i, _ in good] == [i for i, (ok, _, _) in enumerate(items) if ok]
    assert [i for i, _ in bad] == [i for i, (ok, _, _) in enumerate(items) if not ok]
