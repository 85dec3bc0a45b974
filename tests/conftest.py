"""Shared fixtures: a fresh registry per test; nothing global."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from _probe_helpers import FakeProvider, start_fake
from prometheus_client import CollectorRegistry

from exporter.providers import make_trace_config


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


@pytest.fixture
async def fake(aiohttp_server) -> AsyncIterator[FakeProvider]:  # type: ignore[no-untyped-def]
    """A scripted provider server for the prober tests; set `.handler` per test."""
    provider = await start_fake(aiohttp_server)
    yield provider
    provider.release.set()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with phase tracing, as the scheduler builds it."""
    async with aiohttp.ClientSession(trace_configs=[make_trace_config()]) as s:
        yield s
