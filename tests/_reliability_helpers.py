"""Shared bits for the reliability tests: metric parsing, bounded waits, CLI subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text exposition keyed by (name, labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, metric: str, /, **labels: str) -> float | None:
    return samples(text).get((metric, frozenset(labels.items())))


def total(text: str, metric: str, /, **match: str) -> float:
    """Sum of `metric` over every series whose labels include `match`."""
    want = set(match.items())
    return sum(v for (n, lab), v in samples(text).items() if n == metric and want <= lab)


async def wait_for(cond: Callable[[], Awaitable[bool]], limit: float = 10.0) -> None:
    """Await an async condition, polling, until it holds or `limit` seconds pass."""
    deadline = time.monotonic() + limit
    while not await cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)



def cli(args: list[str], env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    """`python -m exporter ARGS` as a subprocess (stdout/stderr to pipes unless given)."""
    base = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    base.pop("LLM_EXPORTER_CONFIG", None)
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "exporter", *args], env={**base, **(env or {})}, **kw
    )


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def wait_http(url: str, proc: subprocess.Popen[bytes], limit: float = 15.0) -> None:
    """Block until `url` answers 200, failing early if `proc` exits."""
    deadline = time.monotonic() + limit
    while http_get(url, 0.5)[0] != 200:
        if proc.poll() is not None:
            out = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"process exited with {proc.returncode}: {out[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up in {limit}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], limit: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after `limit` seconds; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
