"""Probe accuracy: measured probe duration minus the simulator's fixed latency.

Eight providers x three checks run concurrently against the simulator (in a separate process,
so its own work does not share our event loop), each provider set to a fixed `latency_ms`.
Prints the median and p90 overhead per check and overall. Loopback only, bounded in rounds.

    .venv/bin/python bench/bench_probe.py [--rounds 20] [--latency-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import aiohttp

from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.providers import PROBERS, make_trace_config
from exporter.providers.base import ProbeTarget
from exporter.vocab import PROVIDERS, Check


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "simulate", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_sim", timeout=1).read()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("simulator did not start")


def set_latency(port: int, latency_ms: float) -> None:
    for pid in PROVIDERS:
        body = json.dumps({"mode": "ok", "latency_ms": latency_ms, "token_delay_ms": 0}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/_sim/{pid}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=5).read()


async def measure(
    port: int, rounds: int, latency_ms: float, *, sequential: bool = False
) -> dict[str, list[float]]:
    base = f"http://127.0.0.1:{port}"
    targets = [
        ProbeTarget(
            pid,
            PROVIDER_DEFAULTS[pid]["api"],
            base + SIMULATOR_ROOTS[pid],
            PROVIDER_DEFAULTS[pid]["probe_model"],
            10.0,
            api_key=f"bench-{pid}",
        )
        for pid in PROVIDERS
    ]
    overhead: dict[str, list[float]] = {str(c): [] for c in Check}
    async with aiohttp.ClientSession(trace_configs=[make_trace_config()]) as session:
        for _ in range(rounds):
            jobs = [(t, c) for t in targets for c in Check]
            if sequential:
                results = [await PROBERS[t.api](session, t, c) for t, c in jobs]
            else:
                results = await asyncio.gather(*(PROBERS[t.api](session, t, c) for t, c in jobs))
            for (_t, check), result in zip(jobs, results, strict=True):
                if not result.success:
                    raise SystemExit(f"probe failed: {result.reason} {result.error}")
                overhead[str(check)].append(result.duration * 1000 - latency_ms)
            await asyncio.sleep(0.05)
    return overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--sequential", action="store_true", help="one probe at a time")
    args = parser.parse_args()
    port = free_port()
    sim = start_simulator(port)
    try:
        set_latency(port, args.latency_ms)
        overhead = asyncio.run(
            measure(port, args.rounds, args.latency_ms, sequential=args.sequential)
        )
    finally:
        sim.terminate()
        sim.wait(10)
    everything = [v for values in overhead.values() for v in values]
    print(
        f"probe overhead over a fixed {args.latency_ms:g} ms simulator latency, "
        f"{len(PROVIDERS)} providers x 3 checks "
        f"{'one at a time' if args.sequential else 'concurrently'}, {args.rounds} rounds"
    )
    print(f"{'check':<12}{'n':>6}{'median ms':>12}{'p90 ms':>10}")
    for name, values in [*overhead.items(), ("all", everything)]:
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<12}{len(values):>6}{statistics.median(values):>12.2f}{p90:>10.2f}")


if __name__ == "__main__":
    main()
