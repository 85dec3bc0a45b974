"""The caller-side cost of exporter.client: what `record_call` costs the orchestrator per call.

Run: `.venv/bin/python bench/bench_client.py`. Each figure is the median of several timed runs of
many calls (timeit style). `record_call (idle sender)` is the pure caller cost; `record_call
(live sender)` runs while the Reporter's thread ships the events to a real exporter in another
process (GIL contention included), which also checks that every event arrived. For scale, an
OpenTelemetry SDK histogram `record()` with two attributes is timed when the SDK is installed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from _results import Figure, save

from exporter.client import Reporter


def per_call(fn: Callable[[int], None], n: int, runs: int, reset: Callable[[], None]) -> float:
    """Median seconds per call over `runs` runs of `n` calls."""
    times = []
    for _ in range(runs):
        reset()
        started = time.perf_counter()
        fn(n)
        times.append((time.perf_counter() - started) / n)
    return statistics.median(times)


def record_loop(rep: Reporter) -> Callable[[int], None]:
    record = rep.record_call

    def run(n: int) -> None:
        for _ in range(n):
            record(
                "openai",
                "gpt-6-luna",
                duration_seconds=0.82,
                input_tokens=120,
                output_tokens=300,
                time_to_first_token_seconds=0.21,
                session_id="s-1",
            )

    return run


def timed_loop(rep: Reporter) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            with rep.timed_call("openai", "gpt-6-luna") as t:
                t.input_tokens = 120

    return run


def floor_loop(n: int) -> None:
    def record_nothing(provider: str, model: str, **kw: object) -> None:
        return None

    for _ in range(n):
        record_nothing(
            "openai",
            "gpt-6-luna",
            duration_seconds=0.82,
            input_tokens=120,
            output_tokens=300,
            time_to_first_token_seconds=0.21,
            session_id="s-1",
        )


def otel_loop() -> Callable[[int], None] | None:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return None
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    hist = provider.get_meter("bench").create_histogram("gen_ai.client.operation.duration", "s")
    attrs = {"gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-6-luna"}

    def run(n: int) -> None:
        for _ in range(n):
            hist.record(0.82, attributes=attrs)

    return run


def start_exporter() -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bench_ingest = os.path.join(os.path.dirname(__file__), "bench_ingest.py")
    server = subprocess.Popen(
        [sys.executable, bench_ingest, "--serve", "traffic", "--port", str(port)]
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    raise SystemExit("exporter did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    n, runs = args.calls, args.runs
    rows: dict[str, float] = {}
    rows["python call floor (same args)"] = per_call(floor_loop, n, runs, lambda: None)
    idle = Reporter("http://127.0.0.1:9", max_queue=n + 1, flush_interval=3600)
    rows["record_call (idle sender)"] = per_call(record_loop(idle), n, runs, idle._queue.clear)
    rows["timed_call block (idle)"] = per_call(timed_loop(idle), n, runs, idle._queue.clear)
    idle._queue.clear()
    idle.close(0.1)
    server, port = start_exporter()
    try:
        live = Reporter(f"http://127.0.0.1:{port}", max_queue=1_000_000, flush_interval=0.05)
        rows["record_call (live sender)"] = per_call(record_loop(live), n, runs, lambda: None)
        delivered = live.flush(60)
        stats = live.stats
        live.close()
    finally:
        server.terminate()
        server.wait(10)
    otel = otel_loop()
    if otel is not None:
        rows["OTel SDK histogram.record"] = per_call(otel, n, runs, lambda: None)
    print(f"{'caller-side cost':<32}{'ns/call':>10}")
    for name, seconds in rows.items():
        print(f"{name:<32}{seconds * 1e9:>10,.0f}")
    if otel is not None:
        ratio = rows["record_call (idle sender)"] / rows["OTel SDK histogram.record"]
        print(f"record_call / OTel record: {ratio:.2f}x")
    else:
        print("opentelemetry-sdk not installed: no OTel comparison")
    otel_ns = rows["OTel SDK histogram.record"] * 1e9 if otel is not None else None
    figures = []
    for name in ("record_call (idle sender)", "record_call (live sender)"):
        ours = rows[name] * 1e9
        met = None if otel_ns is None else ours <= 0.5 * otel_ns
        figures.append(Figure(f"Client: {name}", ours, "OTel SDK histogram.record", otel_ns,
                              "ns/call", "≤ 0.5x OTel", met))  # fmt: skip
    save(
        "client",
        figures,
        details={
            "calls": n,
            "runs": runs,
            "floor_ns": rows["python call floor (same args)"] * 1e9,
            "live_sent": stats.sent,
            "live_dropped": stats.dropped,
        },
    )
    print(f"live sender: {stats.sent:,} of {n * runs:,} events accepted, {stats.dropped} dropped, "
          f"{stats.failed} failed, flushed={delivered}")  # fmt: skip


if __name__ == "__main__":
    main()
