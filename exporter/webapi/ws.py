"""`GET /ws/metrics`: one broadcaster builds the payload each interval and fans it out.

Each client has a small bounded send queue drained by its own sender task. When a client
falls behind (its queue is full because its socket does not drain), it is dropped with close
code 1008 and counted, and its connection is aborted if the close cannot be flushed: nothing
is buffered without bound. Beyond `max_clients` connections the upgrade is answered with 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

log = logging.getLogger("exporter.webapi.ws")

MAX_CLIENTS = 100
QUEUE_SIZE = 2
HEARTBEAT = 30.0  # seconds between pings; a client that does not answer is closed
CLOSE_TIMEOUT = 2.0  # how long a close handshake may take before the connection is aborted
MAX_INCOMING = 4096  # clients have nothing to say; anything larger is a protocol error
SLOW_REASON = "client too slow: send queue full"


@dataclass(eq=False)
class Client:
    """One connected WebSocket and its bounded outbox."""

    ws: web.WebSocketResponse
    request: web.Request
    queue: asyncio.Queue[str]
    sender: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        with contextlib.suppress(ConnectionError):  # the reader side notices and cleans up
            while True:
                payload = await self.queue.get()
                await self.ws.send_str(payload)


@dataclass
class Feed:
    """Connected clients, the broadcaster loop and counters for what happened to them."""

    build: Callable[[], Awaitable[str]]
    interval: Callable[[], float]
    max_clients: int = MAX_CLIENTS
    queue_size: int = QUEUE_SIZE
    clients: set[Client] = field(default_factory=set)
    stats: dict[str, int] = field(
        default_factory=lambda: {"connected": 0, "dropped_slow": 0, "rejected_full": 0, "pushes": 0}
    )
    last: tuple[float, str] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    def join(self, ws: web.WebSocketResponse, request: web.Request) -> Client:
        client = Client(ws, request, asyncio.Queue(self.queue_size))
        client.sender = asyncio.create_task(client.pump(), name="ws-metrics-sender")
        self.clients.add(client)
        self.stats["connected"] += 1
        if self.last is not None and time.monotonic() - self.last[0] < self.interval():
            client.queue.put_nowait(self.last[1])
        else:
            self._wake.set()
        return client

    def leave(self, client: Client) -> None:
        self.clients.discard(client)
        if client.sender is not None:
            client.sender.cancel()

    def broadcast(self, payload: str) -> None:
        """Queue `payload` for every client; a client whose queue is full is dropped."""
        self.last = (time.monotonic(), payload)
        self.stats["pushes"] += 1
        for client in list(self.clients):
            try:
                client.queue.put_nowait(payload)
            except asyncio.QueueFull:
                self.stats["dropped_slow"] += 1
                log.warning("dropping a slow /ws/metrics client (%s)", client.request.remote)
                self.disconnect(client, WSCloseCode.POLICY_VIOLATION, SLOW_REASON)

    def disconnect(self, client: Client, code: int, reason: str) -> None:
        """Stop sending to `client` and close it in the background, bounded in time."""
        self.leave(client)
        task = asyncio.create_task(_close(client, code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close_all(self, code: int = WSCloseCode.GOING_AWAY) -> None:
        for client in list(self.clients):
            self.disconnect(client, code, "server shutting down")
        if self._closing:
            await asyncio.wait(set(self._closing))

    async def run(self) -> None:
        """Push a fresh payload every interval while anyone listens (at once to a newcomer)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval())
            self._wake.clear()
            if not self.clients:
                continue
            try:
                payload = await self.build()
            except Exception:  # a bug in a document must not end the feed for everyone
                log.exception("building the /ws/metrics payload failed")
                continue
            self.broadcast(payload)


async def _close(client: Client, code: int, reason: str) -> None:
    transport = client.request.transport
    if client.sender is not None:
        await asyncio.wait({client.sender})
    with contextlib.suppress(TimeoutError, ConnectionError, RuntimeError):
        await asyncio.wait_for(
            client.ws.close(code=code, message=reason.encode(), drain=False), CLOSE_TIMEOUT
        )
    if transport is not None and not transport.is_closing():
        transport.close()
    if transport is not None and transport.get_write_buffer_size():
        transport.abort()  # the peer is not reading: drop what is buffered instead of keeping it


async def ws_metrics(request: web.Request, feed: Feed) -> web.StreamResponse:
    """Upgrade to a WebSocket and stream updates until either side closes."""
    if feed.full():
        feed.stats["rejected_full"] += 1
        return web.json_response(
            {"error": f"too many /ws/metrics clients (limit {feed.max_clients})"}, status=503
        )
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT, timeout=CLOSE_TIMEOUT, max_msg_size=MAX_INCOMING
    )
    await ws.prepare(request)
    client = feed.join(ws, request)
    try:
        async for _ in ws:
            pass  # nothing is expected from clients; pings and closes are handled by aiohttp
    finally:
        feed.leave(client)
    return ws
