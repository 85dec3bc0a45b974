"""Graceful stop: sessions survive a restart through the state file; SIGTERM drains requests."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.config import build_config
from exporter.events import SessionMessage
from exporter.persist import _Saver, restore, save, session_state_ctx
from exporter.sessions import SessionStore
from tests._net import free_port
from tests._reliability_helpers import cli, http_get, stop, value, wait_http
from tests._traffic_helpers import until

Client = TestClient[web.Request, web.Application]
CONFIG = build_config({"monitoring_enabled": False, "ingest": {"token_env": None}}, env={})


def make_app(state: Path) -> web.Application:
    app = create_app(CONFIG, env={}, registry=CollectorRegistry())
    app.cleanup_ctx.append(session_state_ctx(str(state)))  # what the lead wires in create_app
    return app


async def started(state: Path) -> Client:
    client: Client = TestClient(TestServer(make_app(state), host="127.0.0.1"))
    await client.start_server()
    return client


async def post(client: Client, events: list[dict]) -> dict:
    resp = await client.post("/api/v1/events", json=events)
    assert resp.status == 200
    return await resp.json()


async def active_gauge(client: Client) -> float | None:
    return value(await (await client.get("/metrics")).text(), "llm_sessions_active")


async def test_active_sessions_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "data" / "sessions.json"
    client = await started(state)
    result = await post(
        client,
        [
            {"type": "session_start", "session_id": "s-1"},
            {"type": "session_message", "session_id": "s-1", "role": "user", "content_length": 40},
            {"type": "session_message", "session_id": "s-1", "role": "assistant",
             "provider": "openai", "response_time_seconds": 1.5},
            {"type": "session_message", "session_id": "s-1", "role": "assistant",
             "provider": "anthropic"},
            {"type": "session_start", "session_id": "s-2"},
            {"type": "session_summarized", "session_id": "s-2"},
            {"type": "session_start", "session_id": "s-3"},
            {"type": "session_end", "session_id": "s-3"},
        ],
    )  # fmt: skip
    assert result["accepted"] == 8
    before = await (await client.get("/api/sessions/s-1/metrics")).json()
    assert await active_gauge(client) == 2
    await client.close()

    saved = json.loads(state.read_text())
    assert saved["version"] == 1
    assert sorted(s["session_id"] for s in saved["active"]) == ["s-1", "s-2"]
    assert os.listdir(state.parent) == [state.name]  # no temp files left

    client = await started(state)
    try:
        assert await active_gauge(client) == 2
        resp = await client.get("/api/sessions/s-1/metrics")
        assert resp.status == 200
        after = await resp.json()
        assert after == before
        assert after["status"] == "active"
        assert after["provider_switches"] == 1 and after["user_messages"] == 1
        s2 = await (await client.get("/api/sessions/s-2/metrics")).json()
        assert s2["summarizations"] == 1
        assert (await client.get("/api/sessions/s-3/metrics")).status == 404  # ended: not kept
        # the restored session carries on, and ends normally
        await post(client, [{"type": "session_message", "session_id": "s-1", "role": "user"},
                            {"type": "session_end", "session_id": "s-1"}])  # fmt: skip
        ended = await (await client.get("/api/sessions/s-1/metrics")).json()
        assert ended["status"] == "completed" and ended["user_messages"] == 2
        assert await active_gauge(client) == 1
    finally:
        await client.close()
    assert [s["session_id"] for s in json.loads(state.read_text())["active"]] == ["s-2"]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe\x00", b"[]", b'{"version": 1, "saved_at": 0, "active": [{"x": 1}]}',
     b'{"version": 99, "saved_at": 0, "active": []}', b'{"version": 1, "saved_at": 0, "active": '
     b'[{"session_id": "a", "started_at": "yesterday", "last_event_at": 0, "last_seen": 0}]}'],
    ids=["truncated", "binary", "wrong-shape", "missing-fields", "future-version", "wrong-type"],
)  # fmt: skip
async def test_a_corrupt_state_file_is_moved_aside_not_fatal(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "sessions.json"
    state.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="exporter.persist"):
        client = await started(state)
    try:
        assert await active_gauge(client) == 0
        assert (await client.get("/-/ready")).status == 200
        await post(client, [{"type": "session_start", "session_id": "new"}])
    finally:
        await client.close()
    aside = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("sessions.json.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == content
    assert "is unusable" in caplog.text
    assert [s["session_id"] for s in json.loads(state.read_text())["active"]] == ["new"]


def test_sessions_silent_past_the_ttl_expire_on_restore(tmp_path: Path) -> None:
    now = time.time()
    old = SessionStore(CONFIG.sessions, clock=lambda: now - 4000)
    old.start("stale", now - 4000, None)
    old.start("fresh", now - 10, None)
    old.active["fresh"].last_seen = now - 10
    state = tmp_path / "s.json"
    assert save(old, state) == 2
    new = SessionStore(CONFIG.sessions, clock=lambda: now)
    assert restore(new, state) == 2
    assert list(new.active) == ["fresh"]
    assert new.ended["expired"] == 1 and new.get("stale").status == "expired"


async def test_a_failed_save_is_logged_and_shutdown_completes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "is-a-dir"
    state.mkdir()
    client = await started(state)  # reading a directory fails: logged, no sessions
    await post(client, [{"type": "session_start", "session_id": "s"}])
    with caplog.at_level(logging.ERROR, logger="exporter.persist"):
        await client.close()
    assert "cannot save session state" in caplog.text
    assert os.listdir(state) == []


async def test_no_path_means_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(CONFIG, env={}, registry=CollectorRegistry())
    app.cleanup_ctx.append(session_state_ctx(None))
    client: Client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    await post(client, [{"type": "session_start", "session_id": "s"}])
    await client.close()
    assert os.listdir(tmp_path) == []


SLOW_SERVER = """
import asyncio, sys
from aiohttp import web
from exporter.cli import _run
from exporter.runner import run_site

async def slow(request):
    print("handling", flush=True)
    await asyncio.sleep(1.5)
    return web.Response(text="done")

app = web.Application()
app.router.add_get("/slow", slow)
app.router.add_get("/-/ready", lambda r: asyncio.sleep(0, web.Response(text="ok")))
sys.exit(_run(run_site(app, "127.0.0.1", int(sys.argv[1]), name="slow")))
"""


def _request(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return sock


def _reply(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_sigterm_drains_an_in_flight_request_then_exits_zero() -> None:
    """The exporter's runner and signal handling (`exporter.runner`, `exporter.cli._run`)."""
    import subprocess
    import sys

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc)
        with _request(port, "/slow") as sock:
            assert proc.stdout is not None and proc.stdout.readline() == b"handling\n"
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            reply = _reply(sock)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert reply.endswith(b"done")
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        stop(proc)


def test_sigterm_stops_llm_exporter_serve_with_exit_zero(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "c.yml"
    cfg.write_text("monitoring_enabled: false\ningest: {token_env: null}\n")
    proc = cli(["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"])
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc)
        proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 5
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert "Traceback" not in err, err
    finally:
        stop(proc)


# --- periodic saving (sessions.save_interval) -----------------------------------------------
def saved_ids(state: Path) -> list[str] | None:
    """Session ids in the state file, or None while there is no whole file."""
    try:
        return sorted(s["session_id"] for s in json.loads(state.read_bytes())["active"])
    except (OSError, ValueError):
        return None


def periodic_app(state: Path, interval: str | None) -> web.Application:
    config = build_config(
        {"monitoring_enabled": False, "ingest": {"token_env": None}, "state_file": str(state),
         "sessions": {"save_interval": interval}},
        env={},
    )  # fmt: skip
    return create_app(config, env={}, registry=CollectorRegistry())


async def test_sessions_are_saved_while_running_so_a_crash_loses_little(tmp_path: Path) -> None:
    state = tmp_path / "sessions.json"
    client: Client = TestClient(TestServer(periodic_app(state, "100ms"), host="127.0.0.1"))
    await client.start_server()
    try:
        start = {"type": "session_start", "session_id": "s-1"}
        await post(
            client, [start, {"type": "session_message", "session_id": "s-1", "role": "user"}]
        )
        await until(lambda: saved_ids(state) == ["s-1"])  # no shutdown needed
        await post(client, [{"type": "session_end", "session_id": "s-1"},
                            {"type": "session_start", "session_id": "s-2"}])  # fmt: skip
        await until(lambda: saved_ids(state) == ["s-2"])
        assert os.listdir(tmp_path) == [state.name]  # atomic: no temp file left behind

        # what a crash would leave: the file as it is now, while this exporter still runs
        crashed = tmp_path / "after-crash" / "sessions.json"
        crashed.parent.mkdir()
        crashed.write_bytes(state.read_bytes())
        other: Client = TestClient(TestServer(periodic_app(crashed, None), host="127.0.0.1"))
        await other.start_server()
        try:
            resp = await other.get("/api/sessions/s-2/metrics")
            assert resp.status == 200 and (await resp.json())["status"] == "active"
            assert await active_gauge(other) == 1
        finally:
            await other.close()
    finally:
        await client.close()


def test_an_unchanged_store_is_not_rewritten(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    store = SessionStore(CONFIG.sessions)
    store.start("a", time.time(), None)
    saver = _Saver(store, state, lambda: 1.0)

    async def go() -> None:
        await saver.save_if_changed()
        first = state.stat().st_ino
        await saver.save_if_changed()  # nothing changed: no write
        assert saver.saves == 1 and state.stat().st_ino == first
        store.message(SessionMessage(session_id="a", role="user"), time.time())
        await saver.save_if_changed()
        assert saver.saves == 2 and state.stat().st_ino != first  # a new file moved in

    asyncio.run(go())
    assert json.loads(state.read_text())["active"][0]["user_messages"] == 1


async def test_null_interval_saves_only_at_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("exporter.persist.IDLE_RECHECK", 0.01)
    state = tmp_path / "s.json"
    store = SessionStore(CONFIG.sessions)
    store.start("a", time.time(), None)
    looks = []
    saver = _Saver(store, state, lambda: looks.append(1))  # returns None: off
    task = asyncio.create_task(saver.run())
    await until(lambda: len(looks) >= 5)  # it keeps looking at the config ...
    saver.stop.set()
    await task
    assert saver.saves == 0 and not state.exists()  # ... and never writes


async def test_a_failing_periodic_save_is_logged_and_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = SessionStore(CONFIG.sessions)
    store.start("a", time.time(), None)
    saver = _Saver(store, blocker / "s.json", lambda: 0.01)
    with caplog.at_level(logging.ERROR, logger="exporter.persist"):
        task = asyncio.create_task(saver.run())
        await until(lambda: caplog.text.count("cannot save session state") >= 2)
        saver.stop.set()
        await task
    assert saver.saves == 0


def test_sigkill_loses_no_session_saved_before_it(tmp_path: Path) -> None:
    """A real `llm-exporter serve` killed with SIGKILL: the next start has the sessions back."""
    port = free_port()
    state = tmp_path / "sessions.json"
    cfg = tmp_path / "c.yml"
    cfg.write_text(
        "monitoring_enabled: false\ningest: {token_env: null}\n"
        f"state_file: {state}\nsessions: {{save_interval: 200ms}}\n"
    )
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"]
    proc = cli(args)
    try:
        wait_http(f"{base}/-/ready", proc)
        body = json.dumps([{"type": "session_start", "session_id": "kept"}]).encode()
        req = urllib.request.Request(
            f"{base}/api/v1/events", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read())["accepted"] == 1
        deadline = time.monotonic() + 10
        while saved_ids(state) != ["kept"]:
            assert time.monotonic() < deadline, "the session was not saved in time"
            time.sleep(0.05)
        proc.kill()  # no shutdown hook runs
        assert proc.wait(5) == -signal.SIGKILL
    finally:
        stop(proc)
    proc = cli(args)
    try:
        wait_http(f"{base}/-/ready", proc)
        status, text = http_get(f"{base}/api/sessions/kept/metrics")
        assert status == 200 and json.loads(text)["status"] == "active"
    finally:
        assert stop(proc) == 0
