"""Fuzzing `POST /api/v1/events`: never a 5xx, every event accounted for, nothing counted twice."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import build_config
from exporter.defaults import PROVIDER_DEFAULTS
from exporter.events import EVENT_TYPES
from exporter.vocab import PROVIDERS, Reason
from tests._reliability_helpers import samples

Client = TestClient[web.Request, web.Application]
TOKEN = "ingest-token-fuzz-4c1d"
ALLOWED = {200, 400, 401, 413, 415}
TRACKED = (
    "llm_requests_total",
    "llm_tokens_total",
    "llm_cost_usd_total",
    "llm_unpriced_requests_total",
    "llm_request_duration_seconds_count",
    "llm_exporter_events_total",
    "llm_exporter_events_duplicate_total",
    "llm_sessions_started_total",
    "llm_session_summarizations_total",
)
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_ids = itertools.count()


@pytest.fixture
def client() -> Iterator[tuple[asyncio.AbstractEventLoop, Client]]:
    """A test client on an exporter with probing off, a small body limit and an ingest token."""
    raw = {
        "monitoring_enabled": False,
        "ingest": {"max_body_bytes": 65536, "max_batch": 64},
    }
    config = build_config(raw, env={})
    app = create_app(config, env={"LLM_EXPORTER_INGEST_TOKEN": TOKEN}, registry=CollectorRegistry())
    loop = asyncio.new_event_loop()
    tc: Client = TestClient(TestServer(app, host="127.0.0.1"), loop=loop)
    loop.run_until_complete(tc.start_server())
    try:
        yield loop, tc
    finally:
        loop.run_until_complete(tc.close())
        loop.close()


def counters(text: str) -> dict[str, float]:
    got = dict.fromkeys(TRACKED, 0.0)
    for (name, _), v in samples(text).items():
        if name in got:
            got[name] += v
    return got


def fresh_id() -> str:
    return f"fz-{next(_ids)}"


# --- strategies -----------------------------------------------------------------------------
weird_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "NaN", "Infinity", "-1", "1e999", "null", "\u202e\U0001f600", "\x00"]),
    st.text(min_size=200, max_size=300),
)
weird_number = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, -1, 1e308, -0.0, 2**63, 10**12, 86_401, 1.5]),
)
json_scalar = st.one_of(st.none(), st.booleans(), weird_number, weird_text)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(weird_text, inner, max_size=4)
    ),
    max_leaves=12,
)
provider = st.one_of(st.sampled_from(PROVIDERS), weird_text)
model = st.one_of(
    st.sampled_from([m for p in PROVIDERS for m in PROVIDER_DEFAULTS[p]["models"][:2]]),
    weird_text,
)
tokens = st.one_of(st.integers(0, 10**6), weird_number, weird_text, st.none())
seconds = st.one_of(st.floats(0, 100), weird_number, st.none(), weird_text)
outcome = st.sampled_from(["success", *[str(r) for r in Reason], "boom", "", 3])


@st.composite
def valid_event(draw: st.DrawFn) -> dict[str, Any]:
    """An event the schema accepts, with a fresh id (so a resend is all duplicates)."""
    kind = draw(st.sampled_from(EVENT_TYPES))
    sid = draw(st.sampled_from(["s-1", "s-2", "session-ü"]))
    ev: dict[str, Any] = {"type": kind, "id": fresh_id()}
    if kind == "llm_call":
        ev |= {
            "provider": draw(st.sampled_from(PROVIDERS)),
            "model": draw(model.filter(lambda m: 0 < len(m) <= 128)),
            "outcome": draw(st.sampled_from(["success", *[str(r) for r in Reason]])),
            "duration_seconds": draw(st.floats(0, 600)),
            "input_tokens": draw(st.integers(0, 10**6)),
            "output_tokens": draw(st.integers(0, 10**6)),
            "cost_usd": draw(st.one_of(st.none(), st.floats(0, 10))),
            "session_id": draw(st.one_of(st.none(), st.just(sid))),
        }
    elif kind == "session_message":
        ev |= {
            "session_id": sid,
            "role": draw(st.sampled_from(["user", "assistant", "system"])),
            "provider": draw(st.one_of(st.none(), st.sampled_from(PROVIDERS))),
            "content_length": draw(st.one_of(st.none(), st.integers(0, 10**6))),
        }
    else:
        ev["session_id"] = sid
    if draw(st.booleans()):
        ev[draw(st.sampled_from(["extra", "future_field"]))] = draw(json_value)  # ignored
    return ev


def _not_event(v: Any) -> bool:
    return not (isinstance(v, dict) and v.get("type") in EVENT_TYPES)


@st.composite
def loose_event(draw: st.DrawFn) -> dict[str, Any]:
    """An llm_call-shaped object with random values: sometimes valid, mostly not."""
    return {
        "type": draw(st.one_of(st.just("llm_call"), weird_text, weird_number, st.none())),
        "provider": draw(provider),
        "model": draw(model),
        "outcome": draw(outcome),
        "input_tokens": draw(tokens),
        "duration_seconds": draw(seconds),
        "id": draw(st.one_of(st.none(), weird_text, weird_number)),
    }


#: Never a valid event: not an object, no known type, or a field out of range / of a wrong type.
broken_event = st.one_of(
    json_value.filter(_not_event),
    st.dictionaries(weird_text, json_value, max_size=6).filter(_not_event),
    loose_event().filter(_not_event),
    st.builds(
        lambda ev, bad: ev | {"input_tokens": bad},
        loose_event(),
        st.sampled_from([-1, 10**10, "12", 1.5, [], {}]),
    ),
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


async def post(tc: Client, body: bytes, ctype: str = "application/json", auth: bool = True):
    headers = {"Content-Type": ctype}
    if auth:
        headers["Authorization"] = f"Bearer {TOKEN}"
    resp = await tc.post("/api/v1/events", data=body, headers=headers)
    return resp.status, await resp.read()


async def scrape(tc: Client) -> dict[str, float]:
    resp = await tc.get("/metrics")
    assert resp.status == 200
    return counters(await resp.text())


def count_of(doc: Any) -> int:
    return len(doc) if isinstance(doc, list) else 1


# --- tests ----------------------------------------------------------------------------------
def test_random_bodies_never_5xx_and_every_event_is_accounted_for(client) -> None:
    loop, tc = client
    body_strategy = st.one_of(
        json_value.map(lambda v: json.dumps(v).encode()),
        st.lists(st.one_of(valid_event(), broken_event, loose_event()), max_size=20).map(
            lambda v: json.dumps(v).encode()
        ),
        st.binary(max_size=200),
        st.integers(1, 100_000).map(lambda d: nested(d).encode()),
        st.integers(1, 5_000).map(lambda d: ('{"a":' * d + "1" + "}" * d).encode()),
        st.integers(900, 1_100).map(lambda d: b"[" + nested(d).encode() + b',{"type":"x"}]'),
        st.sampled_from([b"", b"[", b"{", b"[NaN]", b'{"type":"llm_call"', b"\xff\xfe"]),
        st.just(b"[" + b",".join([b"{}"] * 65) + b"]"),  # over max_batch
        st.just(b'["' + b"x" * 70_000 + b'"]'),  # over max_body_bytes
    )

    @FUZZ
    @given(
        body=body_strategy,
        ctype=st.sampled_from(["application/json", "application/json", "text/plain"]),
        auth=st.sampled_from([True, True, True, False]),
    )
    def check(body: bytes, ctype: str, auth: bool) -> None:
        before = loop.run_until_complete(scrape(tc))
        status, raw = loop.run_until_complete(post(tc, body, ctype, auth))
        assert status in ALLOWED, (status, raw[:300])
        after = loop.run_until_complete(scrape(tc))
        if status != 200:
            error = json.loads(raw)
            assert set(error) == {"error"}
            assert len(error["error"]) <= 400 and error["error"].isascii(), error
            assert after == before
            return
        result = json.loads(raw)
        doc = json.loads(body)
        assert result["accepted"] + result["duplicates"] + len(result["rejected"]) == count_of(doc)
        indices = [r["index"] for r in result["rejected"]]
        assert len(set(indices)) == len(indices)
        assert all(
            0 <= i < count_of(doc) and r["error"]
            for i, r in zip(indices, result["rejected"], strict=True)
        )
        # a caller's text comes back short and escaped, however long or strange it was
        assert all(len(r["error"]) <= 200 and r["error"].isascii() for r in result["rejected"])
        if result["accepted"] == 0:
            assert after == before
        else:
            gained = after["llm_exporter_events_total"] - before["llm_exporter_events_total"]
            assert gained == result["accepted"]

    check()


def test_valid_events_count_once_even_when_sent_twice(client) -> None:
    loop, tc = client

    @settings(FUZZ, max_examples=60)
    @given(st.lists(st.one_of(valid_event(), broken_event), min_size=1, max_size=20))
    def check(batch: list[Any]) -> None:
        body = json.dumps(batch).encode()
        before = loop.run_until_complete(scrape(tc))
        status, raw = loop.run_until_complete(post(tc, body))
        assert status == 200, raw[:300]
        first = json.loads(raw)
        mid = loop.run_until_complete(scrape(tc))
        rejected = {r["index"] for r in first["rejected"]}
        kept = [ev for i, ev in enumerate(batch) if i not in rejected]
        assert first["duplicates"] == 0  # every valid event has a fresh id
        assert first["accepted"] == len(kept)
        assert all(isinstance(ev, dict) and ev.get("id", "").startswith("fz-") for ev in kept)
        calls = sum(ev["type"] == "llm_call" for ev in kept)
        assert mid["llm_requests_total"] - before["llm_requests_total"] == calls
        assert mid["llm_exporter_events_total"] - before["llm_exporter_events_total"] == len(kept)

        status, raw = loop.run_until_complete(post(tc, body))
        assert status == 200
        second = json.loads(raw)
        assert second["accepted"] == 0
        assert second["duplicates"] == len(kept)
        assert second["rejected"] == first["rejected"]
        after = loop.run_until_complete(scrape(tc))
        dup = "llm_exporter_events_duplicate_total"
        assert after[dup] - mid[dup] == len(kept)
        assert {k: v for k, v in after.items() if k != dup} == {
            k: v for k, v in mid.items() if k != dup
        }

    check()


def rejections(text: str, reason: str) -> float:
    return samples(text)[("llm_exporter_events_rejected_total", frozenset({("reason", reason)}))]


@pytest.mark.parametrize("depth", [1000, 10_000])  # 10 000: still under max_body_bytes
def test_deeply_nested_body_is_a_400_not_a_500(client, depth: int) -> None:
    loop, tc = client
    bodies = (
        nested(depth),
        '{"a":' * depth + "1" + "}" * depth,
        '[{"type":"session_start","session_id":"s","x":' + nested(depth) + "}]",
    )
    for body in bodies:

        async def go(body: str = body) -> tuple[int, bytes, float, float]:
            before = await (await tc.get("/metrics")).text()
            status, raw = await post(tc, body.encode())
            after = await (await tc.get("/metrics")).text()
            return status, raw, rejections(before, "malformed"), rejections(after, "malformed")

        status, raw, before, after = loop.run_until_complete(go())
        assert status == 400
        assert "nested too deeply" in json.loads(raw)["error"]
        assert after == before + 1


def test_empty_body_is_a_json_400_counted_as_malformed(client) -> None:
    loop, tc = client

    async def go() -> tuple[int, bytes, str]:
        before = await tc.get("/metrics")
        status, raw = await post(tc, b"")
        after = await tc.get("/metrics")
        return status, raw, (await before.text()) + "\n#SPLIT\n" + (await after.text())

    status, raw, both = loop.run_until_complete(go())
    assert status == 400
    first, second = both.split("\n#SPLIT\n")
    key = ("llm_exporter_events_rejected_total", frozenset({("reason", "malformed")}))
    assert samples(second)[key] == samples(first)[key] + 1
    assert set(json.loads(raw)) == {"error"}


def llm_call(**fields: Any) -> dict[str, Any]:
    return {"type": "llm_call", "provider": "openai", "model": "m"} | fields


@pytest.mark.parametrize(
    ("event", "field", "shown"),
    [
        (llm_call(provider="p" * 64), "provider", "'" + "p" * 64 + "'"),
        (llm_call(provider="\u202e\x00\U0001f600"), "provider", "'\\u202e\\x00\\U0001f600'"),
        (llm_call(provider="x'y"), "provider", "\"x'y\""),
        (llm_call(outcome="o" * 5000), "outcome", "'" + "o" * 64 + "'... (5000 chars)"),
        ({"type": "t" * 60_000}, "type", "... (60000 chars)"),
        ({"type": "session_message", "session_id": "s", "role": "\U0001f600" * 100}, "role",
         "\\U0001f600'... (100 chars)"),
    ],
    ids=["long-provider", "control-provider", "quote-provider", "long-outcome", "long-type",
         "emoji-role"],
)  # fmt: skip
def test_rejections_quote_the_callers_value_bounded_and_escaped(
    client, event: dict[str, Any], field: str, shown: str
) -> None:
    loop, tc = client
    status, raw = loop.run_until_complete(post(tc, json.dumps([event]).encode()))
    assert status == 200
    (rejection,) = json.loads(raw)["rejected"]
    error = rejection["error"]
    assert error.isascii() and len(error) <= 200, error
    assert error.endswith(f"- at `$.{field}`")  # still says where
    assert shown in error


def test_wrong_or_missing_token_is_401_and_counts_nothing(client) -> None:
    loop, tc = client

    @settings(max_examples=25, deadline=None)
    @given(
        header=st.one_of(
            st.none(), st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
        ),
        batch=st.lists(valid_event(), max_size=5),
    )
    def check(header: str | None, batch: list[Any]) -> None:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            if header.strip() == f"Bearer {TOKEN}":
                return
            headers["Authorization"] = header

        async def go() -> tuple[int, dict[str, float], dict[str, float]]:
            before = await scrape(tc)
            resp = await tc.post("/api/v1/events", data=json.dumps(batch), headers=headers)
            return resp.status, before, await scrape(tc)

        status, before, after = loop.run_until_complete(go())
        assert status == 401
        assert after == before

    check()
