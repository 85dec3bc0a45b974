"""Active sessions survive a restart: restored from a JSON state file at startup, saved at shutdown.

The file is `{"version": 1, "saved_at": <unix s>, "active": [<SessionState>...]}`, written to a
temporary file beside it and moved into place with `os.replace`, so a crash mid-write leaves the
old file whole. A file that cannot be decoded is logged and moved aside (`<name>.corrupt-<ts>`);
the exporter then starts with no sessions instead of failing.

While running, the active sessions are also saved every `sessions.save_interval` (60 s by
default; null: only at shutdown) when they changed, so a crash or `SIGKILL` loses at most that
much. The interval is read from the live config, so a reload changes it after the current wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import msgspec
from aiohttp import web

from exporter import keys
from exporter.sessions import SessionState, SessionStore
from exporter.traffic_setup import SESSIONS

log = logging.getLogger(__name__)
VERSION = 1
IDLE_RECHECK = 5.0  # seconds between looks at the config while periodic saving is off


class StateFile(msgspec.Struct, forbid_unknown_fields=False):
    """What the state file holds; msgspec checks every SessionState field's type."""

    version: int
    saved_at: float
    active: list[SessionState]


def restore(store: SessionStore, path: Path) -> int:
    """Put the file's active sessions into `store`; returns how many. Never raises."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.error("cannot read session state %s: %s", path, exc.strerror)
        return 0
    try:
        state = msgspec.json.decode(data, type=StateFile)
        if state.version != VERSION:
            raise ValueError(f"unsupported version {state.version}")
    except (msgspec.DecodeError, ValueError, RecursionError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.warning("session state %s is unusable (%s); moved to %s", path, exc, aside.name)
        return 0
    sessions = sorted(
        (s for s in state.active if s.status == "active" and s.session_id not in store.active),
        key=lambda s: s.last_seen,
    )[-store.max_active :]
    for s in sessions:  # least recently active first, as the store keeps them
        store.active[s.session_id] = s
        store.recent.pop(s.session_id, None)
    store.expire()  # sessions that went silent for longer than the TTL while we were down
    return len(sessions)


def save(store: SessionStore, path: Path, *, clock: Callable[[], float] = time.time) -> int:
    """Write the active sessions atomically; returns how many. Raises OSError on failure."""
    write_atomic(
        path, msgspec.json.encode(StateFile(VERSION, clock(), list(store.active.values())))
    )
    return len(store.active)


def write_atomic(path: Path, body: bytes) -> None:
    """`body` into a temporary file beside `path`, synced, then moved over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class _Saver:
    """Periodic saves while the app runs: encoded on the loop, written in a worker thread."""

    def __init__(
        self, store: SessionStore, path: Path, interval: Callable[[], float | None]
    ) -> None:
        self.store, self.path, self.interval = store, path, interval
        self.stop = asyncio.Event()
        self.saves = 0
        self._last: bytes | None = None  # the sessions as last written

    async def run(self) -> None:
        while True:
            every = self.interval()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), every or IDLE_RECHECK)
            if self.stop.is_set():
                return
            if every is not None:
                await self.save_if_changed()

    async def save_if_changed(self) -> None:
        active = list(self.store.active.values())
        sessions = msgspec.json.encode(active)
        if sessions == self._last:
            return
        body = msgspec.json.encode(StateFile(VERSION, time.time(), active))
        try:
            await asyncio.to_thread(write_atomic, self.path, body)
        except OSError as exc:
            log.error("cannot save session state to %s: %s", self.path, exc.strerror or exc)
            return
        self._last = sessions
        self.saves += 1
        log.debug("saved %d active session(s) to %s", len(active), self.path)


def _live_interval(app: web.Application) -> Callable[[], float | None]:
    def interval() -> float | None:
        live = app.get(keys.LIVE)
        return live.config.sessions.save_interval if live is not None else None

    return interval


def session_state_ctx(
    path: str | os.PathLike[str] | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A `cleanup_ctx` entry: restore at startup, save periodically and at shutdown (None: off)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if path is None:
            yield
            return
        file = Path(path)
        store = app[SESSIONS]
        n = restore(store, file)
        if n:
            log.info("restored %d active session(s) from %s", n, file)
        saver = _Saver(store, file, _live_interval(app))
        task = asyncio.create_task(saver.run(), name="session-state-saver")
        yield
        saver.stop.set()
        try:
            await task  # a write in progress finishes before the last one starts
        except Exception:  # never let it stop the final save
            log.exception("periodic session saving failed")
        try:
            n = save(store, file)
        except OSError as exc:
            log.error("cannot save session state to %s: %s", file, exc.strerror or exc)
        else:
            log.info("saved %d active session(s) to %s", n, file)

    return ctx
