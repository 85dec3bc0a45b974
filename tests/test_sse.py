"""The incremental SSE parser: any chunking, any line ending, comments and bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.providers.sse import SseError, SseEvent, SseParser

STREAM = (
    b": keep-alive\n\n"
    b"event: message_start\ndata: {\"a\": 1}\n\n"
    b"\n\n"
    b"data: line one\r\ndata: line two\r\n\r\n"
    b"id: 7\revent: ping\rdata\r\r"
    b"retry: 100\nunknown: x\ndata:no-space\n\n"
    b"data: \xc3\xa9t\xc3\xa9\n\n"
)
EXPECTED = [
    SseEvent("message_start", '{"a": 1}'),
    SseEvent("message", "line one\nline two"),
    SseEvent("ping", "", "7"),
    SseEvent("message", "no-space", "7"),
    SseEvent("message", "été", "7"),
]


def parse_all(chunks: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events = [e for c in chunks for e in parser.feed(c)]
    return events + parser.close()


def test_whole_stream() -> None:
    """Comments and blank lines make no events; fields, ids and line endings follow the spec."""
    assert parse_all([STREAM]) == EXPECTED


def test_byte_by_byte() -> None:
    """Splitting inside CRLF or inside a multi-byte character changes nothing."""
    assert parse_all([STREAM[i : i + 1] for i in range(len(STREAM))]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=12))
def test_any_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    assert parse_all([STREAM[a:b] for a, b in itertools.pairwise(bounds)]) == EXPECTED


def test_events_come_out_as_soon_as_complete() -> None:
    parser = SseParser()
    assert parser.feed(b"data: x\n") == []
    assert parser.feed(b"\n") == [SseEvent("message", "x")]
    assert parser.feed(b": ping\n\n") == []


def test_close_flushes_an_unterminated_event() -> None:
    """A stream ending without its final blank line (Gemini) still yields the last event."""
    parser = SseParser()
    assert parser.feed(b"data: {}\n\ndata: last") == [SseEvent("message", "{}")]
    assert parser.close() == [SseEvent("message", "last")]


def test_close_with_nothing_pending() -> None:
    parser = SseParser()
    parser.feed(b"data: x\n\n")
    assert parser.close() == []


def test_long_line_is_refused_without_buffering_more() -> None:
    parser = SseParser(max_line=100)
    with pytest.raises(SseError):
        parser.feed(b"data: " + b"x" * 200)
    with pytest.raises(SseError):
        SseParser(max_line=100).feed(b"data: " + b"x" * 200 + b"\n\n")


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(SseError):
        SseParser().feed(b"data: \xff\n\n")
