"""GET /metrics at ~10 000 series: llm-exporter against prometheus-pushgateway, same exposition.

Run: `.venv/bin/python bench/bench_scrape.py [--rounds 6]` (about 40 s). The exporter runs in a
subprocess pinned to one core, every provider probed once against the simulator (loopback), with
allow-lists long enough that one `llm_call` per (provider, model, outcome) plus a few timed
successes give ~10 000 series. Its `/metrics` body (text 0.0.4) is PUT into Debian's
prometheus-pushgateway (in memory only), pinned to the same core, so both serve the identical
exposition; pushgateway adds `job`/`instance` labels and its own metrics, so both sizes are printed.
curl, on the other core, times sequential keep-alive GETs of each in interleaved rounds (the first
GET of each curl run is discarded): plain text, `Accept-Encoding: gzip`, and the headers Prometheus
2.x sends (OpenMetrics preferred, gzip). Also: the stock prometheus_client handler on the same
registry (over HTTP and in-process); a scrape right after every latency histogram moved (the worst
case for the text caches); and ingest latency while /metrics is scraped back to back, formatting on
the event loop versus in a worker thread, before and after `gc.freeze()` in the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _results import Figure, median, save
from _stack import free_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS_PER_PROVIDER = 17  # custom ids on top of each provider's default allow-list
SUCCESSES = 6  # timed successful calls per (provider, model), besides one call per failure reason
PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)  # what Prometheus 2.42 (Debian's) sends
SCENARIOS: dict[str, list[str]] = {
    "text": [],
    "gzip": ["Accept-Encoding: gzip"],
    "prometheus": [f"Accept: {PROMETHEUS_ACCEPT}", "Accept-Encoding: gzip"],
}



def wait_http(url: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} did not come up")
        time.sleep(0.1)


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None,
          method: str | None = None) -> bytes:  # fmt: skip
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def series_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def bench_raw_config(sim_url: str) -> dict[str, Any]:
    from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS

    providers = {
        pid: {
            "base_url": sim_url + SIMULATOR_ROOTS[pid],
            "models": [*d["models"], *(f"{pid}-bench-{i:02d}" for i in range(MODELS_PER_PROVIDER))],
            "interval": "10m",  # probe once at start-up, not while timing
            "billable_interval": "10m",
            "timeout": "5s",
        }
        for pid, d in PROVIDER_DEFAULTS.items()
    }
    return {"providers": providers, "ingest": {"token_env": None}, "state_file": None}


def bench_env() -> dict[str, str]:
    from exporter.defaults import PROVIDER_DEFAULTS

    return {d["api_key_env"]: f"sk-bench-{pid}" for pid, d in PROVIDER_DEFAULTS.items()}


def serve(port: int, cpu: int | None, sim_url: str) -> None:
    """The exporter app plus bench-only routes on the same registry, on one core."""
    import gc

    from aiohttp import web
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.aiohttp import make_aiohttp_handler
    from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

    from exporter.app import create_app
    from exporter.config import build_config
    from exporter.exposition import Renderer, metrics_handler

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    registry = CollectorRegistry()
    app = create_app(build_config(bench_raw_config(sim_url), env={}), env=bench_env(),
                     registry=registry)  # fmt: skip
    renderer = Renderer()

    def timed(fn: Any, runs: int) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    async def in_process(request: web.Request) -> web.Response:
        runs = int(request.query.get("runs", "9"))
        return web.json_response({
            "stock_text_ms": timed(lambda: generate_latest(registry), runs),
            "stock_openmetrics_ms": timed(lambda: om_generate_latest(registry), runs),
            "fast_text_ms": timed(lambda: renderer.render(registry, openmetrics=False), runs * 3),
            "fast_openmetrics_ms": timed(
                lambda: renderer.render(registry, openmetrics=True), runs * 3
            ),
            "collect_ms": timed(lambda: list(registry.collect()), runs * 3),
        })  # fmt: skip

    app.router.add_get("/bench/stock", make_aiohttp_handler(registry))
    app.router.add_get("/bench/inline", metrics_handler(registry, offload=False))
    app.router.add_get("/bench/threaded", metrics_handler(registry, offload=True))

    async def freeze(request: web.Request) -> web.Response:
        gc.collect()
        gc.freeze()  # long-lived state out of the collector's way: full collections get cheap
        return web.Response(text=f"{gc.get_freeze_count()} objects frozen\n")

    app.router.add_get("/bench/in-process", in_process)
    app.router.add_get("/bench/gc-freeze", freeze)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def events() -> list[dict[str, Any]]:
    """One call per (provider, model, outcome) and SUCCESSES timed successes per pair."""
    import random

    from exporter.defaults import PROVIDER_DEFAULTS
    from exporter.vocab import Reason

    rnd = random.Random(6)
    out: list[dict[str, Any]] = []
    for pid, d in PROVIDER_DEFAULTS.items():
        models = [*d["models"], *(f"{pid}-bench-{i:02d}" for i in range(MODELS_PER_PROVIDER))]
        for model in models:
            base = {"type": "llm_call", "provider": pid, "model": model}
            for reason in Reason:
                out.append({**base, "outcome": str(reason)})
            for _ in range(SUCCESSES):
                out.append({
                    **base, "outcome": "success",
                    "duration_seconds": round(rnd.lognormvariate(0.5, 1.0), 3),
                    "time_to_first_token_seconds": round(rnd.lognormvariate(-1.5, 0.8), 3),
                    "input_tokens": rnd.randint(50, 20_000),
                    "output_tokens": rnd.randint(1, 2000),
                    "cached_input_tokens": rnd.randint(0, 500),
                    "reasoning_tokens": rnd.randint(0, 99),
                    "quality_score": round(rnd.random(), 2),
                })  # fmt: skip
    return out


def curl_times(url: str, headers: list[str], n: int) -> tuple[list[float], str, int]:
    """n timed keep-alive GETs after one warm-up (n=0: one GET): (seconds, content type, bytes)."""
    fmt = "%{time_total} %{size_download} %{content_type}\n"
    cmd = ["curl", "-s", "-w", fmt]
    for h in headers:
        cmd += ["-H", h]
    for _ in range(n + 1):
        cmd += ["-o", "/dev/null", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = [line.split(" ", 2) for line in out.stdout.splitlines()][1 if n else 0 :]
    return [float(r[0]) for r in rows], rows[-1][2], int(rows[-1][1])


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


def ingest_latency(port: int, scrape_path: str | None, scrapes: int) -> dict[str, float]:
    """Sequential 10-event POSTs while curl makes `scrapes` back-to-back GETs of `scrape_path`."""
    import http.client

    body = json.dumps([{"type": "llm_call", "provider": "openai", "model": "gpt-6-luna",
                        "outcome": "success", "duration_seconds": 0.5}] * 10).encode()  # fmt: skip
    scraper = None
    if scrape_path is not None:
        url = f"http://127.0.0.1:{port}{scrape_path}"
        scraper = subprocess.Popen(
            ["curl", "-s", "-w", "%{time_total}\n", *["-o", "/dev/null", url] * scrapes],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port)
    lat: list[float] = []
    until = time.perf_counter() + 2.0
    while (scraper.poll() is None) if scraper else time.perf_counter() < until:
        started = time.perf_counter()
        conn.request("POST", "/api/v1/events", body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        lat.append((time.perf_counter() - started) * 1000)
        if resp.status != 200:
            raise SystemExit(f"ingest answered {resp.status}")
    conn.close()
    scrape_ms = [float(x) * 1000 for x in scraper.communicate()[0].split()] if scraper else []
    lat.sort()
    return {
        "ingest_p50_ms": statistics.median(lat),
        "ingest_p99_ms": lat[int(len(lat) * 0.99)],
        "ingest_max_ms": lat[-1],
        "ingest_requests": len(lat),
        "scrapes": len(scrape_ms),
        "scrape_median_ms": statistics.median(scrape_ms) if scrape_ms else 0.0,
    }


def churn_times(port: int, pairs: list[tuple[str, str]], n: int) -> dict[str, Any]:
    """Keep-alive curl: POST one success per pair (every latency histogram moves), GET, GET again.

    The worst case for the exporter's text caches, next to the same body unchanged.
    """
    import tempfile

    events = [{"type": "llm_call", "provider": p, "model": m, "outcome": "success",
               "duration_seconds": 2.5, "time_to_first_token_seconds": 0.3, "input_tokens": 10,
               "quality_score": 0.5} for p, m in pairs]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(events, f)
        f.flush()
        timed = ["-s", "-w", "%{time_total}\n", "-o", "/dev/null"]
        get = [*timed, f"{base}/metrics"]
        post = [*timed, "-H", "Content-Type: application/json", "--data-binary", f"@{f.name}",
                f"{base}/api/v1/events"]  # fmt: skip
        cmd = ["curl", *get]
        for _ in range(n):
            cmd += ["--next", *post, "--next", *get, "--next", *get]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    ms = [float(x) * 1000 for x in out[1:]]
    return {"changed": median(ms[1::3]), "unchanged": median(ms[2::3]), "runs": n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=8)
    ap.add_argument("--serve", action="store_true")
    ap.add_argument("--port", type=int)
    ap.add_argument("--cpu", type=int)
    ap.add_argument("--sim")
    args = ap.parse_args()
    if args.serve:
        serve(args.port, args.cpu, args.sim)
        return
    if not Path(PUSHGATEWAY).exists() or shutil.which("curl") is None:
        raise SystemExit("needs prometheus-pushgateway and curl: apt-get install -y "
                         "--no-install-recommends prometheus-pushgateway curl")  # fmt: skip
    server_cpu = client_cpu = None
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2:
        client_cpu, server_cpu = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, {client_cpu})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        sim_port, port, pg_port = free_port(), free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "exporter", "simulate", "--listen", f"127.0.0.1:{sim_port}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--sim", sim_url]
        if server_cpu is not None:
            cmd += ["--cpu", str(server_cpu)]
        procs.append(subprocess.Popen(cmd, cwd=ROOT))
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/-/ready")
        evs = events()
        for i in range(0, len(evs), 2000):
            doc = json.loads(fetch(f"{base}/api/v1/events", {"Content-Type": "application/json"},
                                   json.dumps(evs[i : i + 2000]).encode()))  # fmt: skip
            if doc["accepted"] != len(evs[i : i + 2000]):
                raise SystemExit(f"events refused: {doc['rejected'][:3]}")
        checks = 8 * 3
        deadline = time.monotonic() + 30
        while fetch(f"{base}/metrics").count(b"\nllm_probe_last_run_timestamp_seconds{") < checks:
            if time.monotonic() > deadline:
                raise SystemExit("probes against the simulator did not all run")
            time.sleep(0.2)
        ours_body = fetch(f"{base}/metrics")
        stock_body = fetch(f"{base}/bench/stock")
        drop = (b"process_", b"# HELP process_", b"# TYPE process_")
        same = [x for x in ours_body.splitlines() if not x.startswith(drop)] == [
            x for x in stock_body.splitlines() if not x.startswith(drop)
        ]
        if not same:
            raise SystemExit("fast /metrics differs from the stock handler's output")

        procs.append(subprocess.Popen(
            [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{pg_port}", "--persistence.file="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        if server_cpu is not None:
            os.sched_setaffinity(procs[-1].pid, {server_cpu})
        pg = f"http://127.0.0.1:{pg_port}"
        wait_http(f"{pg}/-/ready")
        fetch(f"{pg}/metrics/job/llm-exporter", {"Content-Type": "text/plain; version=0.0.4"},
              ours_body, method="PUT")  # fmt: skip
        pg_body = fetch(f"{pg}/metrics")
        sizes = {
            "ours": {"bytes": len(ours_body), "series": series_count(ours_body)},
            "pushgateway": {"bytes": len(pg_body), "series": series_count(pg_body)},
        }
        print(f"exposition: ours {sizes['ours']['series']:,} series, {len(ours_body):,} bytes; "
              f"pushgateway {sizes['pushgateway']['series']:,} series, {len(pg_body):,} bytes "
              "(adds job/instance labels and its own metrics)")  # fmt: skip

        targets = {
            "ours": f"{base}/metrics",
            "pushgateway": f"{pg}/metrics",
            "ours, inline": f"{base}/bench/inline",
            "stock": f"{base}/bench/stock",
        }
        times: dict[tuple[str, str], list[float]] = {}
        info: dict[tuple[str, str], tuple[str, int]] = {}
        for _ in range(args.rounds):  # interleaved: drift on a shared machine hits all alike
            for scenario, headers in SCENARIOS.items():
                for who, url in targets.items():
                    if who in ("stock", "ours, inline") and scenario != "text":
                        continue
                    n = 2 if who == "stock" else args.per_round
                    got, ctype, size = curl_times(url, headers, n)
                    times.setdefault((scenario, who), []).extend(t * 1000 for t in got)
                    info[(scenario, who)] = (ctype, size)
        in_proc = json.loads(fetch(f"{base}/bench/in-process?runs=7"))
        pairs = sorted({(e["provider"], e["model"]) for e in evs})
        churn = churn_times(port, pairs, args.per_round * 3)
        modes = {"no scrapes": None, "render on the loop": "/bench/inline",
                 "render in a thread": "/bench/threaded"}  # fmt: skip
        runs: dict[str, list[dict[str, float]]] = {}
        for _ in range(2):  # interleaved
            for mode, path in modes.items():
                runs.setdefault(mode, []).append(ingest_latency(port, path, 100))
        fetch(f"{base}/bench/gc-freeze")  # last: it changes the server for good
        for mode, path in modes.items():
            runs.setdefault(f"{mode}, gc.freeze()", []).append(ingest_latency(port, path, 100))
        latency = {m: {k: median([r[k] for r in rs]) for k in rs[0]} for m, rs in runs.items()}
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(10)

    print(f"{'scenario':<12}{'server':<13}{'median ms':>10}{'p90 ms':>9}{'runs':>6}"
          f"{'bytes':>11}  content type")  # fmt: skip
    for (scenario, who), ts in times.items():
        ctype, size = info[(scenario, who)]
        print(f"{scenario:<12}{who:<13}{median(ts):>10.1f}{p90(ts):>9.1f}{len(ts):>6}"
              f"{size:>11,}  {ctype}")  # fmt: skip
    print(
        f"ours, median of {churn['runs']}: {churn['changed']:.1f} ms right after all "
        f"{2 * len(pairs)} latency histograms moved, {churn['unchanged']:.1f} ms unchanged"
    )
    print("in-process render, median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in in_proc.items()))
    print(f"{'ingest while scraping':<32}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'posts':>7}"
          f"{'scrapes':>9}{'scrape ms':>11}")  # fmt: skip
    for mode, r in latency.items():
        print(f"{mode:<32}{r['ingest_p50_ms']:>8.2f}{r['ingest_p99_ms']:>8.2f}"
              f"{r['ingest_max_ms']:>8.1f}{r['ingest_requests']:>7.0f}{r['scrapes']:>9.0f}"
              f"{r['scrape_median_ms']:>11.1f}")  # fmt: skip

    def row(scenario: str) -> tuple[float, float]:
        return median(times[(scenario, "ours")]), median(times[(scenario, "pushgateway")])

    n_series = sizes["ours"]["series"]
    text, gz, prom = row("text"), row("gzip"), row("prometheus")
    stock = median(times[("text", "stock")])
    figures = [
        Figure(f"Scrape /metrics, {n_series:,} series, text 0.0.4 (median)", text[0],
               "prometheus-pushgateway 1.5.1", text[1], "ms", "≤ pushgateway", text[0] <= text[1],
               note=f"p90 {p90(times[('text', 'ours')]):.1f} vs "
                    f"{p90(times[('text', 'pushgateway')]):.1f} ms"),
        Figure(f"Scrape /metrics, {n_series:,} series, gzip (median)", gz[0],
               "prometheus-pushgateway 1.5.1", gz[1], "ms", "≤ pushgateway", gz[0] <= gz[1],
               note=f"{info[('gzip', 'ours')][1]:,} vs {info[('gzip', 'pushgateway')][1]:,} bytes"),
        Figure(f"Scrape /metrics as Prometheus asks (OpenMetrics, gzip), {n_series:,} series",
               prom[0], "prometheus-pushgateway 1.5.1", prom[1], "ms", "≤ pushgateway",
               prom[0] <= prom[1]),
        Figure(f"Scrape /metrics, {n_series:,} series, text: stock prometheus_client handler",
               text[0], "stock make_aiohttp_handler", stock, "ms", "faster than stock",
               text[0] < stock),
        Figure(f"Scrape /metrics, {n_series:,} series, right after every latency histogram moved",
               churn["changed"], "prometheus-pushgateway 1.5.1", text[1], "ms", "≤ pushgateway",
               churn["changed"] <= text[1],
               note="the worst case for the exporter's text caches; pushgateway: text row"),
    ]  # fmt: skip
    quiet, busy = latency["no scrapes"], latency["render in a thread"]
    figures.append(
        Figure(f"Ingest p99 while /metrics ({n_series:,} series) is scraped back to back",
               busy["ingest_p99_ms"], "ingest p99 with no scrapes", quiet["ingest_p99_ms"], "ms",
               "none set (figure 6 is reported, not a goal)", None,
               note=f"p50 {busy['ingest_p50_ms']:.2f} vs {quiet['ingest_p50_ms']:.2f} ms; as "
               "shipped (render in a thread; the app freezes what exists at start-up, not the "
               "series made by the events since)"),
    )  # fmt: skip
    details = {"sizes": sizes, "rounds": args.rounds, "per_round": args.per_round,
               "in_process_ms": in_proc, "scrape_after_every_histogram_moved": churn,
               "ingest_while_scraping": latency,
               "server_cpu": server_cpu, "client": "curl, keep-alive, sequential",
               "content_types": {f"{s}/{w}": c for (s, w), (c, _) in info.items()},
               "medians_ms": {f"{s}/{w}": median(ts) for (s, w), ts in times.items()}}  # fmt: skip
    print(f"saved {save('scrape', figures, details=details)}")


if __name__ == "__main__":
    main()
