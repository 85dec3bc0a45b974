"""Footprint: idle CPU with eight providers probing, and RSS after 1 000 000 events.

Run: `.venv/bin/python bench/bench_footprint.py [--idle-seconds 60] [--events 1000000]`.
Starts `llm-exporter simulate` and `llm-exporter serve` (all eight providers pointed at the
simulator with the default probe intervals, the exporter pinned to one core), waits until the
first round of probes is over, then:

1. idle CPU: the exporter's user+system CPU seconds over `--idle-seconds` of wall time, as a
   share of one core (goal ≤ 1 %);
2. RSS after `--events` unique `llm_call` events in batches of 1000 over keep-alive loopback
   HTTP, spread over every provider x allow-listed model x outcome, plus models outside the
   allow-lists (they land in `other`), so every label combination the contract allows exists
   and the dedup window is full (goal ≤ 60 MB). The exporter's own count is checked against
   what was sent, and the series count of its /metrics is reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import time

import psutil
from _results import Figure, save
from _stack import Stack

from exporter.defaults import PROVIDER_DEFAULTS
from exporter.vocab import PROVIDERS, Reason

OUTCOMES = ("success", *(str(r) for r in Reason))
MB = 2**20


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def wait_ready(port: int, path: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while get(port, path)[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"127.0.0.1:{port}{path} did not come up")
        time.sleep(0.1)


def combos() -> list[tuple[str, str, str]]:
    """Every provider x model (allow-listed, plus one unknown) x outcome."""
    out = []
    for p in PROVIDERS:
        for model in [*PROVIDER_DEFAULTS[p]["models"], f"unlisted-{p}"]:
            out += [(p, model, o) for o in OUTCOMES]
    return out


def batches(total: int, size: int):
    """Bodies of `size` unique events each, cycling through every label combination."""
    kinds = combos()
    now = int(time.time())
    n = 0
    while n < total:
        events = []
        for i in range(n, min(total, n + size)):
            p, model, outcome = kinds[i % len(kinds)]
            ev = {"type": "llm_call", "id": f"fp-{i}", "provider": p, "model": model,
                  "outcome": outcome, "duration_seconds": 0.2 + (i % 97) / 10,
                  "input_tokens": 100, "output_tokens": 40, "cached_input_tokens": i % 3,
                  "cache_write_tokens": i % 2, "reasoning_tokens": i % 5,
                  "timestamp": now}  # fmt: skip
            if outcome == "success":
                ev["time_to_first_token_seconds"] = 0.05 + (i % 13) / 50
            events.append(ev)
        n += len(events)
        yield json.dumps(events).encode()


def send(port: int, total: int, size: int) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    accepted, started = 0, time.perf_counter()
    for i, body in enumerate(batches(total, size)):
        conn.request("POST", "/api/v1/events", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        doc = json.loads(resp.read())
        if resp.status != 200 or doc["rejected"]:
            raise SystemExit(f"batch {i}: {resp.status} {doc}")
        accepted += doc["accepted"]
        if i % 100 == 0:
            print(f"  {accepted:,} events sent", end="\r", flush=True)
    conn.close()
    print()
    return accepted, time.perf_counter() - started


def counted(text: str) -> tuple[float, int]:
    """(llm_call events the exporter counted, number of series in the exposition)."""
    calls, series = 0.0, 0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series += 1
        if line.startswith('llm_exporter_events_total{type="llm_call"}'):
            calls = float(line.rsplit(" ", 1)[1])
    return calls, series


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    stack = Stack("footprint")
    sim_port, port, exp = stack.sim_port, stack.port, stack.exp
    try:
        wait_ready(sim_port, "/_sim")
        wait_ready(port, "/-/ready")
        proc = psutil.Process(exp.pid)
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 2:
            proc.cpu_affinity([cpus[0]])
            os.sched_setaffinity(0, {cpus[1]})
        time.sleep(5)  # the first round of probes (24 of them) is over by now
        rss_idle = proc.memory_info().rss / MB
        print(f"idle: measuring CPU for {args.idle_seconds:g} s ...")
        t0, c0 = time.monotonic(), sum(proc.cpu_times()[:2])
        time.sleep(args.idle_seconds)
        idle_cpu = (sum(proc.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
        print(f"idle CPU {idle_cpu:.3%} of a core, RSS {rss_idle:.1f} MB")
        accepted, took = send(port, args.events, 1000)
        _, body = get(port, "/metrics")
        calls, series = counted(body.decode())
        rss_full = proc.memory_info().rss / MB
        print(f"{accepted:,} events in {took:.1f} s ({accepted / took:,.0f}/s); exporter counted "
              f"{calls:,.0f}; /metrics has {series:,} series; RSS {rss_full:.1f} MB")  # fmt: skip
        if calls != accepted:
            raise SystemExit(f"exporter counted {calls}, sent {accepted}")
    finally:
        stack.stop()
    save("footprint", [
        Figure("Idle CPU, 8 providers probing", idle_cpu * 100, "goal", 1.0, "% of a core",
               "≤ 1 % of a core", idle_cpu <= 0.01,
               note=f"over {args.idle_seconds:g} s after the first probe round"),
        Figure(f"RSS after {accepted:,} events ({series:,} series)", rss_full, "goal", 60.0,
               "MB", "≤ 60 MB", rss_full <= 60, note=f"RSS idle before the events: "
               f"{rss_idle:.1f} MB"),
    ], details={"rss_idle_mb": rss_idle, "series": series, "events": accepted,
                "seconds_to_send": took})  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
