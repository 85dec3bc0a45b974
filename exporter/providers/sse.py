"""An incremental, bounded Server-Sent Events parser (the WHATWG event-stream format)."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 1 << 20  # bytes in one line; a provider chunk is a few KiB
_EOL = re.compile(rb"[\r\n]")  # one scan to the next line end (two finds rescan the buffer)


class SseError(ValueError):
    """The byte stream is not a usable event stream (line too long, not UTF-8)."""


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event: `event` defaults to "message"; `data` lines joined with newlines."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class SseParser:
    """Feed raw bytes in any chunking; get complete events back.

    Comment lines (`: keep-alive`), blank lines between events and unknown fields produce no
    event, so a caller timing the first token never sees them. Lines end in LF, CRLF or CR.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._max_line = max_line
        self._buf = bytearray()
        self._skip_lf = False  # the previous chunk ended in CR; a leading LF belongs to it
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Parse `chunk`; return the events it completed. Raises SseError."""
        if not chunk:
            return []
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        self._buf += chunk
        events: list[SseEvent] = []
        start = 0
        buf = self._buf
        while (eol := _EOL.search(buf, start)) is not None:
            end = eol.start()
            line = bytes(buf[start:end])
            if buf[end : end + 1] == b"\r":
                if end + 1 == len(buf):
                    self._skip_lf = True
                elif buf[end + 1 : end + 2] == b"\n":
                    end += 1
            start = end + 1
            event = self._line(line)
            if event is not None:
                events.append(event)
        del buf[:start]
        if len(buf) > self._max_line:
            raise SseError(f"SSE line longer than {self._max_line} bytes")
        return events

    def close(self) -> list[SseEvent]:
        """End of stream: dispatch a final event even without its trailing blank line."""
        events = self.feed(b"\n") if self._buf else []
        event = self._line(b"")
        return [*events, event] if event is not None else events

    def _line(self, raw: bytes) -> SseEvent | None:
        if len(raw) > self._max_line:
            raise SseError(f"SSE line longer than {self._max_line} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SseError("SSE stream is not valid UTF-8") from exc
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data = "", []
        return event
