"""Raw-socket fault servers for the fault matrix: a tiny HTTP/1.1 server whose reply is a script.

`FaultServer` accepts TCP (optionally TLS) on 127.0.0.1, parses each request head and body, and
hands the connection to a `Behaviour` coroutine that writes whatever bytes the fault needs: a
clean response, a reset, a trickle, a flood, or nothing at all. It counts what it saw and sent,
so tests can assert that a client stopped reading early or never spoke plain HTTP to a TLS port.
`WIRES` holds each wire family's payloads (success bodies, streams, error bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from exporter.vocab import Check

REASONS = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
           529: "Overloaded"}


@dataclass(frozen=True)
class Request:
    """One request as the server parsed it; `at` is its arrival on the monotonic clock."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Conn:
    """One request's connection, as a behaviour sees it."""

    def __init__(self, server: FaultServer, request: Request, writer: asyncio.StreamWriter):
        self.server, self.request, self.writer = server, request, writer

    async def send(self, data: bytes) -> bool:
        """Write and drain; False once the peer has gone. Counts bytes that got out."""
        if self.writer.is_closing():
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            return False
        self.server.sent += len(data)
        return True

    async def head(
        self, status: int = 200, headers: dict[str, str] | None = None, *,
        length: int | None = None, content_type: str = "application/json", body: bytes = b"",
    ) -> bool:
        """Status line and headers (and `body`, in the same write); chunked when `length` is
        None."""
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                 f"Content-Type: {content_type}"]
        framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
        lines.append(framing)
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return await self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    async def chunk(self, data: bytes) -> bool:
        """One chunk of a chunked body (b"" ends the body)."""
        return await self.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), not a clean FIN."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


Behaviour = Callable[[Conn], Awaitable[bool]]  # True keeps the connection for the next request


@dataclass
class FaultServer:
    """A loopback HTTP/1.1 server; set `behaviour` (or per-request logic inside it)."""

    behaviour: Behaviour
    tls: ssl.SSLContext | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0  # TCP connections accepted
    handshakes: int = 0  # TLS handshakes completed (tls only)
    first_bytes: list[bytes] = field(default_factory=list)  # each connection's opening bytes
    sent: int = 0  # body and head bytes written and drained
    port: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _sock: socket.socket | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, root: str = "/v1") -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{root}"

    async def start(self) -> FaultServer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        self._sock, self.port = sock, sock.getsockname()[1]
        self._spawn(self._accept())
        return self

    async def close(self) -> None:
        self.stopping.set()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sock is not None:
            self._sock.close()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, _ = await loop.sock_accept(self._sock)
            self.connections += 1
            self._spawn(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK stalls
        self.first_bytes.append(await _peek(conn))
        reader = asyncio.StreamReader(limit=1 << 20)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, conn, ssl=self.tls, ssl_handshake_timeout=5 if self.tls else None
            )
        except (TimeoutError, OSError, ssl.SSLError):
            conn.close()
            return
        if self.tls is not None:
            self.handshakes += 1
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            transport.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, path, headers, body, time.monotonic())
        self.requests.append(request)
        return await self.behaviour(Conn(self, request, writer))


async def _peek(conn: socket.socket) -> bytes:
    """The first bytes the client sends, left in the socket for whoever reads next."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(conn.fileno(), lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, 5)
        return conn.recv(16, socket.MSG_PEEK)
    except (OSError, TimeoutError):
        return b""
    finally:
        loop.remove_reader(conn.fileno())


# -- behaviours ---------------------------------------------------------------------------------

def respond(
    status: int, body: bytes, headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> Behaviour:
    """A complete response with a Content-Length; the connection stays open."""

    async def behaviour(conn: Conn) -> bool:
        return await conn.head(status, headers, length=len(body), content_type=content_type,
                               body=body)

    return behaviour


def stream(events: list[bytes], *, end: bool = True) -> Behaviour:
    """An SSE body, one chunk per event; `end` sends the closing zero-length chunk."""

    async def behaviour(conn: Conn) -> bool:
        ok = await conn.head(200, content_type="text/event-stream")
        for event in events:
            ok = ok and await conn.chunk(event)
        return ok and end and await conn.chunk(b"")

    return behaviour


def hang() -> Behaviour:
    """Read the request, never answer (until the server closes)."""

    async def behaviour(conn: Conn) -> bool:
        await conn.server.stopping.wait()
        return False

    return behaviour


def reset_mid_body(prefix: bytes, declared: int) -> Behaviour:
    """Promise `declared` bytes, send `prefix`, then RST."""

    async def behaviour(conn: Conn) -> bool:
        await conn.head(200, length=declared)
        await conn.send(prefix)
        await asyncio.sleep(0.05)
        conn.reset()
        return False

    return behaviour


def reset_mid_stream(events: list[bytes]) -> Behaviour:
    """Send the first SSE events (chunked), then RST before the stream ends."""

    async def behaviour(conn: Conn) -> bool:
        await conn.head(200, content_type="text/event-stream")
        for event in events:
            await conn.chunk(event)
        await asyncio.sleep(0.05)
        conn.reset()
        return False

    return behaviour


def trickle(body: bytes, every: float, *, sse: bool = False) -> Behaviour:
    """Slow loris: headers at once, then the (valid) body one byte every `every` seconds."""

    async def behaviour(conn: Conn) -> bool:
        if sse:
            ok = await conn.head(200, content_type="text/event-stream")
            write = conn.chunk
        else:
            ok = await conn.head(200, length=len(body))
            write = conn.send
        for i in range(len(body)):
            if not ok:
                break
            await asyncio.sleep(every)
            ok = await write(body[i : i + 1])
        return False

    return behaviour


def trickle_head(every: float) -> Behaviour:
    """Slow loris before the headers: the status line and headers one byte at a time."""

    async def behaviour(conn: Conn) -> bool:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 500
        for i in range(len(head)):
            await asyncio.sleep(every)
            if not await conn.send(head[i : i + 1]):
                break
        return False

    return behaviour


def keepalive_forever(every: float) -> Behaviour:
    """An SSE stream of `: keep-alive` comments and nothing else (DeepSeek under load)."""

    async def behaviour(conn: Conn) -> bool:
        ok = await conn.head(200, content_type="text/event-stream")
        while ok:
            await asyncio.sleep(every)
            ok = await conn.chunk(b": keep-alive\n\n")
        return False

    return behaviour


def flood(
    total: int, *, declare: bool, status: int = 200, block: bytes = b" " * (256 << 10),
    content_type: str = "application/json", opening: bytes = b"",
) -> Behaviour:
    """A `total`-byte body of `opening` + repeated `block`, with or without Content-Length."""

    async def behaviour(conn: Conn) -> bool:
        ok = await conn.head(status, length=total if declare else None, content_type=content_type)
        write = conn.send if declare else conn.chunk
        if opening:
            ok = ok and await write(opening)
        left = total - len(opening)
        while ok and left > 0:
            piece = block[:left]
            ok = await write(piece)
            left -= len(piece)
        if ok and not declare:
            await conn.chunk(b"")
        return False

    return behaviour


def cycle(*behaviours: Behaviour) -> Behaviour:
    """Request n gets behaviours[n % len]."""
    count = 0

    async def behaviour(conn: Conn) -> bool:
        nonlocal count
        chosen = behaviours[count % len(behaviours)]
        count += 1
        return await chosen(conn)

    return behaviour


def by_check(models: Behaviour, completion: Behaviour, stream_: Behaviour) -> Behaviour:
    """Route on the request line: model list, streamed generation, or plain generation."""

    async def behaviour(conn: Conn) -> bool:
        req = conn.request
        if req.method == "GET":
            return await models(conn)
        is_stream = "stream" in req.path or b'"stream": true' in req.body
        return await (stream_ if is_stream else completion)(conn)

    return behaviour


def check_of(request: Request) -> Check:
    """Which check a request was (the inverse of `by_check`'s routing)."""
    if request.method == "GET":
        return Check.MODELS
    if "stream" in request.path or b'"stream": true' in request.body:
        return Check.STREAM
    return Check.COMPLETION


def http_date(seconds_from_now: float) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)
    return format_datetime(moment, usegmt=True)


# -- each wire family's payloads ----------------------------------------------------------------

def _sse(doc: Any, event: str | None = None) -> bytes:
    data = doc if isinstance(doc, str) else json.dumps(doc)
    return ((f"event: {event}\n" if event else "") + f"data: {data}\n\n").encode()


def _j(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@dataclass(frozen=True)
class Wire:
    """One family's bytes: a good answer per check, plus the ways to get it wrong."""

    root: str
    ok: dict[Check, bytes]  # a complete success body per check (stream: the whole SSE body)
    first_events: list[bytes]  # a stream's opening events, through the first content delta
    no_content: list[bytes]  # a well-formed stream that never carries content
    wrong_shape: dict[Check, bytes]  # valid JSON, wrong structure
    error: Callable[[int], bytes]  # the family's error body for a status
    stream_error: bytes  # an error event inside a 200 stream


def _openai_error(status: int) -> bytes:
    kind = {429: ("requests", "rate_limit_exceeded"), 503: ("server_error", "server_is_overloaded")}
    type_, code = kind.get(status, ("server_error", None))
    return _j({"error": {"message": "x", "type": type_, "param": None, "code": code}})


def _anthropic_error(status: int) -> bytes:
    type_ = {429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
             529: "overloaded_error"}.get(status, "api_error")
    return _j({"type": "error", "error": {"type": type_, "message": "x"}, "request_id": "r"})


def _gemini_error(status: int) -> bytes:
    grpc = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
            504: "DEADLINE_EXCEEDED"}.get(status, "UNKNOWN")
    return _j({"error": {"code": status, "message": "x", "status": grpc, "details": []}})


def _oa_chunk(delta: dict[str, Any] | None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}]
    return _sse({"object": "chat.completion.chunk", "choices": choices, "usage": usage})


def _an(kind: str, **fields: Any) -> bytes:
    return _sse({"type": kind, **fields}, kind)


def _gm_chunk(text: str | None, usage: dict[str, int] | None = None) -> bytes:
    parts = [] if text is None else [{"text": text}]
    doc: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": parts}}]}
    if usage:
        doc["usageMetadata"] = usage
    return _sse(doc)


_OA_FIRST = [_oa_chunk({"role": "assistant", "content": ""}), _oa_chunk({"content": "P"})]
_AN_START = [
    _an("message_start", message={"id": "m", "type": "message", "role": "assistant",
                                  "content": [], "usage": {"input_tokens": 3, "output_tokens": 0}}),
    _an("content_block_start", index=0, content_block={"type": "text", "text": ""}),
]
_AN_END = [
    _an("content_block_stop", index=0),
    _an("message_delta", delta={"stop_reason": "max_tokens"}, usage={"output_tokens": 1}),
    _an("message_stop"),
]
_AN_FIRST = [*_AN_START, _an("content_block_delta", index=0,
                             delta={"type": "text_delta", "text": "P"})]
_GM_FIRST = [_gm_chunk("P")]
_GM_USAGE = {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4}

WIRES: dict[str, Wire] = {
    "openai": Wire(
        root="/v1",
        ok={
            Check.MODELS: _j({"object": "list", "data": [{"id": "m-1", "object": "model"}]}),
            Check.COMPLETION: _j({"object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "P"}}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
            Check.STREAM: b"".join([*_OA_FIRST, _oa_chunk(None, {"prompt_tokens": 3,
                                                                   "completion_tokens": 1}),
                                    b"data: [DONE]\n\n"]),
        },
        first_events=_OA_FIRST,
        no_content=[_oa_chunk({"role": "assistant"}), _oa_chunk({"content": ""}),
                    b": keep-alive\n\n", b"data: [DONE]\n\n"],
        wrong_shape={
            Check.MODELS: _j({"object": "list", "data": {"id": "m-1"}}),
            Check.COMPLETION: _j({"type": "message", "content": [{"type": "text", "text": "P"}]}),
            Check.STREAM: _sse({"object": "chat.completion.chunk", "choices": {"delta": "P"}}),
        },
        error=_openai_error,
        stream_error=_sse({"error": {"message": "x", "type": "server_error", "code": None}}),
    ),
    "anthropic": Wire(
        root="/v1",
        ok={
            Check.MODELS: _j({"data": [{"id": "claude-x", "type": "model"}], "has_more": False}),
            Check.COMPLETION: _j({"id": "m", "type": "message", "role": "assistant",
                                  "content": [{"type": "text", "text": "P"}],
                                  "usage": {"input_tokens": 3, "output_tokens": 1}}),
            Check.STREAM: b"".join([*_AN_FIRST, *_AN_END]),
        },
        first_events=_AN_FIRST,
        no_content=[*_AN_START, _an("ping"), *_AN_END],
        wrong_shape={
            Check.MODELS: _j({"data": [{"type": "model", "display_name": "no id"}]}),
            Check.COMPLETION: _j({"object": "chat.completion", "choices": [
                {"message": {"content": "P"}}]}),
            Check.STREAM: _an("message_delta", delta={}, usage=[1]),
        },
        error=_anthropic_error,
        stream_error=_sse({"type": "error", "error": {"type": "overloaded_error",
                                                      "message": "Overloaded"}}, "error"),
    ),
    "gemini": Wire(
        root="/v1beta",
        ok={
            Check.MODELS: _j({"models": [{"name": "models/gemini-x"}]}),
            Check.COMPLETION: _j({"candidates": [{"content": {"parts": [{"text": "P"}]}}],
                                  "usageMetadata": _GM_USAGE}),
            Check.STREAM: b"".join([*_GM_FIRST, _gm_chunk("", _GM_USAGE)]),
        },
        first_events=_GM_FIRST,
        no_content=[_gm_chunk(None), _gm_chunk("", _GM_USAGE)],
        wrong_shape={
            Check.MODELS: _j({"models": [{"id": "gemini-x"}]}),
            Check.COMPLETION: _j({"choices": [{"message": {"content": "P"}}]}),
            Check.STREAM: _sse({"candidates": "P"}),
        },
        error=_gemini_error,
        stream_error=_sse({"error": {"code": 503, "message": "x", "status": "UNAVAILABLE"}}),
    ),
}


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (cert path, key path)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fault-matrix.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


def server_tls(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
