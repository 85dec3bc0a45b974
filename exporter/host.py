"""Host CPU, memory and disk usage sampled with psutil in the background, read at scrape time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psutil

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostSample:
    cpu: float | None = None  # ratios 0..1
    memory: float | None = None
    disk: float | None = None


class HostSampler:
    """Keeps the latest `HostSample`; `run()` refreshes it every `period` seconds."""

    def __init__(self, disk_path: str = "/", period: float = 10.0) -> None:
        self.disk_path = disk_path
        self.period = period
        self.latest = HostSample()

    def sample(self) -> HostSample:
        """One reading; a field psutil cannot read stays None rather than failing the scrape."""
        cpu = memory = disk = None
        with contextlib.suppress(OSError, RuntimeError):
            cpu = psutil.cpu_percent(interval=None) / 100.0
        with contextlib.suppress(OSError, RuntimeError):
            memory = psutil.virtual_memory().percent / 100.0
        with contextlib.suppress(OSError, RuntimeError):
            disk = psutil.disk_usage(self.disk_path).percent / 100.0
        self.latest = HostSample(cpu, memory, disk)
        return self.latest

    async def run(self) -> None:
        psutil.cpu_percent(interval=None)  # prime: the first call has nothing to compare with
        while True:
            await asyncio.sleep(min(1.0, self.period))
            try:
                await asyncio.to_thread(self.sample)
            except Exception:  # never let sampling kill the task
                log.exception("host sampling failed")
            await asyncio.sleep(max(0.0, self.period - 1.0))

    async def context(self) -> AsyncIterator[None]:
        """For `app.cleanup_ctx`: sample in the background while the app runs."""
        task = asyncio.create_task(self.run(), name="host-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
