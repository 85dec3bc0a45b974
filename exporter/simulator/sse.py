"""Writing server-sent events: frames, pacing between them, and clients that leave early."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from exporter.simulator.call import Call

TICK = None  # a pause of one token delay between frames


def event(data: Any, name: str | None = None) -> str:
    """One SSE event; `data` is JSON-encoded unless it is already a string."""
    head = f"event: {name}\n" if name else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}\n\n"


def comment(text: str) -> str:
    """An SSE comment line (clients ignore it), as DeepSeek sends `: keep-alive`."""
    return f": {text}\n\n"


async def send(
    call: Call, headers: dict[str, str], frames: Iterable[str | None]
) -> web.StreamResponse:
    """Stream `frames` (TICK = wait one token delay); stop quietly if the client goes away."""
    response = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(call.request)
    delay = call.state.token_delay_s(call.provider)
    try:
        for frame in frames:
            if frame is TICK:
                if not await call.pause(delay):
                    return response
                continue
            await response.write(frame.encode())
        await response.write_eof()
    except ConnectionResetError:
        pass
    return response
