"""Loopback soak: exporter + simulator with faults toggling + events at a target rate + scrapes.

Run: `.venv/bin/python bench/soak.py [--minutes 10] [--rate 5000]` (`--minutes 1` for a quick
check). Starts `llm-exporter simulate` and `llm-exporter serve` as subprocesses (all eight
providers pointed at the simulator, dummy keys, no ingest token, 5 s probe intervals), a sender
process that records `llm_call` events through `exporter.client.Reporter` at `--rate` per
second, flips a random provider's simulator fault every ~20 s, and scrapes /metrics every 5 s.
At the end it compares events the Reporter had accepted with the sum of
`llm_exporter_events_total`, counts 5xx answers seen by the scraper, and reports the exporter's
RSS at start and end (psutil). Exit status 1 when a count does not match or a 5xx was seen.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import psutil
from _stack import Stack
from prometheus_client.parser import text_string_to_metric_families

from exporter.defaults import PROVIDER_DEFAULTS
from exporter.vocab import PROVIDERS

FAULTS = ("ok", "ok", "slow", "down", "hang", "rate_limit", "overloaded", "server_error",
          "malformed", "auth")  # fmt: skip


def http(url: str, data: bytes | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


def wait_up(url: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while http(url, timeout=0.5)[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up")
        time.sleep(0.1)


def events_total(text: str) -> float:
    return sum(
        s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "llm_exporter_events"
        for s in fam.samples
        if s.name == "llm_exporter_events_total"
    )


def sender(url: str, rate: float, seconds: float, out: Any) -> None:
    """Record llm_call events at `rate`/s for `seconds` through the Reporter; report its stats."""
    from exporter.client import Reporter

    models = {p: PROVIDER_DEFAULTS[p]["models"][0] for p in PROVIDERS}
    rep = Reporter(url, max_queue=200_000, batch_size=1000, flush_interval=0.1)
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - n
        for _ in range(min(due, 5000)):
            p = PROVIDERS[n % len(PROVIDERS)]
            rep.record_call(p, models[p], duration_seconds=0.5, input_tokens=100,
                            output_tokens=50, session_id=None)  # fmt: skip
            n += 1
        time.sleep(0.005)
    rep.close(timeout=60)
    st = rep.stats
    out.put({"recorded": n, "elapsed": time.monotonic() - start, **st._asdict()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=5000.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup below
    seconds = args.minutes * 60
    stack = Stack("soak", {"interval": "5s", "billable_interval": "5s", "timeout": "4s"})
    sim_port, port, exp, work = stack.sim_port, stack.port, stack.exp, stack.work
    base = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {}
    try:
        wait_up(f"http://127.0.0.1:{sim_port}/_sim")
        wait_up(f"{base}/-/ready")
        proc = psutil.Process(exp.pid)
        rss_start = proc.memory_info().rss
        queue: Any = mp.Queue()
        send = mp.Process(target=sender, args=(base, args.rate, seconds, queue))
        send.start()
        rng = random.Random(1)
        scrapes = fivexx = flips = 0
        scrape_ms: list[float] = []
        rss_by_minute: list[float] = []
        next_rss = time.monotonic()
        next_flip = time.monotonic() + 20
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            status, _ = http(f"{base}/metrics", timeout=10)
            scrape_ms.append((time.monotonic() - t0) * 1000)
            scrapes += 1
            if t0 >= next_rss:
                rss_by_minute.append(round(proc.memory_info().rss / 2**20, 1))
                next_rss += 60
            fivexx += status >= 500 or status == 0
            if time.monotonic() >= next_flip:
                p, mode = rng.choice(PROVIDERS), rng.choice(FAULTS)
                http(f"http://127.0.0.1:{sim_port}/_sim/{p}", json.dumps({"mode": mode}).encode())
                flips += 1
                next_flip += 20
            time.sleep(max(0.0, 5 - (time.monotonic() - t0)))
        sent = queue.get(timeout=120)
        send.join(30)
        status, body = http(f"{base}/metrics", timeout=10)
        counted = events_total(body.decode())
        rss_end = proc.memory_info().rss
        result = {
            "minutes": args.minutes,
            "target_rate": args.rate,
            "achieved_rate": round(sent["recorded"] / sent["elapsed"], 1),
            **{k: sent[k] for k in ("recorded", "sent", "duplicates", "rejected", "dropped")},
            "counted": counted,
            "scrapes": scrapes,
            "scrape_5xx_or_failed": fivexx,
            "scrape_ms_p50": round(sorted(scrape_ms)[len(scrape_ms) // 2], 1),
            "scrape_ms_max": round(max(scrape_ms), 1),
            "fault_flips": flips,
            "rss_start_mb": round(rss_start / 2**20, 1),
            "rss_end_mb": round(rss_end / 2**20, 1),
            "rss_by_minute_mb": rss_by_minute,
            "machine": f"{platform.machine()} {os.cpu_count()} cores, "
            f"{round(psutil.virtual_memory().total / 2**30, 1)} GiB, Python "
            f"{platform.python_version()}",
        }
    finally:
        stack.stop()
    result["exporter_exit"] = exp.returncode
    print(json.dumps(result, indent=2))
    ok = (
        result["counted"] == result["sent"]
        and result["sent"] == result["recorded"]
        and result["scrape_5xx_or_failed"] == 0
        and result["exporter_exit"] == 0
    )
    print("OK" if ok else f"MISMATCH (logs in {work})")
    if result.get("rss_by_minute_mb"):
        save_figures(result)
    return 0 if ok else 1


def save_figures(r: dict[str, Any]) -> None:
    """The soak's figures for docs/performance.md (footprint) and docs/reliability.md."""
    from _results import Figure, save

    minutes = r["minutes"]
    half = r["rss_by_minute_mb"][len(r["rss_by_minute_mb"]) // 2]
    growth = r["rss_end_mb"] - half
    save("soak", [
        Figure(f"Soak {minutes:g} min: events counted / sent", r["counted"], "sent by the client",
               r["sent"], "events", "equal", r["counted"] == r["sent"], lower_is_better=False),
        Figure(f"Soak {minutes:g} min: RSS at the end", r["rss_end_mb"], "RSS half-way",
               half, "MB", "flat (end within 5 MB of half-way)", abs(growth) <= 5,
               note=f"RSS per minute: {r['rss_by_minute_mb']} MB; start {r['rss_start_mb']} MB"),
        Figure(f"Soak {minutes:g} min: scrapes answered 5xx or failed", r["scrape_5xx_or_failed"],
               "scrapes", r["scrapes"], "", "0", r["scrape_5xx_or_failed"] == 0),
    ], details=r)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
