"""Real Prometheus and Alertmanager processes on loopback, and a scrape target with fixed data.

The target serves every counter at zero for its first scrape and at `FINAL` values afterwards,
so `increase()` evaluated at the timestamp of a later sample is exact (no extrapolation:
the series start at zero and the range ends on a sample).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from _net import free_port

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"



def _hist(name: str, labels: str, buckets: dict[str, float], total: float, k: float) -> list[str]:
    sep = "," if labels else ""
    lines = [f'{name}_bucket{{{labels}{sep}le="{le}"}} {n * k}' for le, n in buckets.items()]
    count = list(buckets.values())[-1]
    lines += [f"{name}_sum{{{labels}}} {total * k}", f"{name}_count{{{labels}}} {count * k}"]
    return lines


def exposition(k: float) -> str:
    """The fixture's metrics with every counter multiplied by `k` (0 first, then 1)."""
    oa, an = 'provider="openai",model="gpt-6-luna"', 'provider="anthropic",model="claude-haiku-4-5"'
    lines = [
        f'llm_requests_total{{{oa},outcome="success"}} {90 * k}',
        f'llm_requests_total{{{oa},outcome="rate_limit"}} {6 * k}',
        f'llm_requests_total{{{oa},outcome="timeout"}} {4 * k}',
        f'llm_requests_total{{provider="openai",model="gpt-unknown",outcome="success"}} {10 * k}',
        f'llm_requests_total{{{an},outcome="success"}} {50 * k}',
        f'llm_requests_total{{{an},outcome="teapot"}} {5 * k}',
        f'llm_requests_total{{provider="rogue",model="x",outcome="success"}} {1000 * k}',
        f'llm_tokens_total{{{oa},token_type="input"}} {10000 * k}',
        f'llm_tokens_total{{{oa},token_type="output"}} {5000 * k}',
        f'llm_tokens_total{{{oa},token_type="cached_input"}} {2000 * k}',
        f'llm_tokens_total{{{an},token_type="input"}} {4000 * k}',
        f'llm_tokens_total{{{an},token_type="output"}} {1000 * k}',
        f"llm_cost_usd_total{{{oa}}} {1.5 * k}",
        f'llm_cost_usd_total{{provider="openai",model="gpt-unknown"}} {0.25 * k}',
        f"llm_cost_usd_total{{{an}}} {0.75 * k}",
        f"llm_sessions_started_total {12 * k}",
        f'llm_sessions_ended_total{{outcome="completed"}} {7 * k}',
        f'llm_sessions_ended_total{{outcome="expired"}} {2 * k}',
        "llm_sessions_active 3",
        "llm_host_cpu_usage_ratio 0.25",
        "llm_host_memory_usage_ratio 0.5",
        "llm_host_disk_usage_ratio 0.75",
        'llm_probe_phase_seconds{provider="openai",check="models",phase="total"} 0.2',
        'llm_probe_phase_seconds{provider="openai",check="completion",phase="total"} 0.9',
    ]
    for pid in ("openai", "anthropic", "gemini", "mistral", "grok", "qwen", "deepseek", "kimi_k2"):
        configured = pid in ("openai", "anthropic", "gemini")
        up = pid in ("openai", "gemini")
        lines.append(f'llm_provider_up{{provider="{pid}"}} {int(up)}')
        lines.append(f'llm_provider_api_key_configured{{provider="{pid}"}} {int(configured)}')
    lat = "llm_request_duration_seconds"
    lines += _hist(lat, oa, {"0.5": 30, "1": 60, "2": 81, "5": 90, "+Inf": 90}, 90.0, k)
    lines += _hist(lat, an, {"0.5": 10, "1": 40, "2": 50, "5": 50, "+Inf": 50}, 40.0, k)
    ttft = "llm_time_to_first_token_seconds"
    lines += _hist(ttft, oa, {"0.1": 10, "0.5": 40, "1": 50, "+Inf": 50}, 15.0, k)
    sess = "llm_session_duration_seconds"
    lines += _hist(sess, "", {"60": 3, "120": 6, "600": 9, "+Inf": 9}, 900.0, k)
    return "\n".join(lines).replace("{}", "") + "\n"


class Target:
    """A scrape target in a thread: `bodies[i]` for the i-th scrape, the last one from then on."""

    def __init__(self, bodies: list[str]) -> None:
        self.bodies, self.scrapes = bodies, 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.bodies[min(target.scrapes, len(target.bodies) - 1)].encode()
                target.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def http_json(url: str, data: Any = None, method: str | None = None) -> Any:
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


class Process:
    """A child process with its log in a file, stopped on `close()`."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._fh.close()

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.proc.args[0]} exited: {self.log.read_text()[-2000:]}")


class Prometheus(Process):
    """`/usr/bin/prometheus` scraping `targets` every `interval`, with optional rule files."""

    def __init__(
        self, tmp: Path, targets: list[str], *, interval: str = "1s", rules: str | None = None
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": "llm", "static_configs": [{"targets": targets}]}],
        }
        if rules is not None:
            (tmp / "rules.yml").write_text(rules)
            config["rule_files"] = [str(tmp / "rules.yml")]
        (tmp / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        super().__init__(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            tmp / "prometheus.log",
        )
        wait_until(self._ready, 30, "Prometheus to become ready")

    def _ready(self) -> bool:
        self.check_alive()
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
            return resp.status == 200

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """Direct PromQL: the instant vector of `expr` at `at` as (labels, value) pairs."""
        params = {"query": expr} | ({} if at is None else {"time": f"{at:.3f}"})
        body = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        data = body["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, expr: str, at: float | None = None) -> float | None:
        """The single value of `expr`, or None when the vector is empty."""
        result = self.query(expr, at)
        assert len(result) <= 1, f"{expr} returned {len(result)} series"
        return result[0][1] if result else None

    def by(self, expr: str, label: str, at: float | None = None) -> dict[str, float]:
        return {labels.get(label, ""): v for labels, v in self.query(expr, at)}


class Alertmanager(Process):
    """`/usr/bin/prometheus-alertmanager` with a null receiver, on loopback, no clustering."""

    def __init__(self, tmp: Path) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
        (tmp / "alertmanager.yml").write_text(json.dumps(config))
        super().__init__(
            [
                ALERTMANAGER,
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            tmp / "alertmanager.log",
        )
        wait_until(self._ready, 30, "Alertmanager to become ready")

    def _ready(self) -> bool:
        self.check_alive()
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
            return resp.status == 200

    def post_alert(self, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        http_json(
            f"{self.url}/api/v2/alerts", [{"labels": labels, "annotations": annotations or {}}]
        )

    def active(self) -> list[dict[str, Any]]:
        return http_json(f"{self.url}/api/v2/alerts?active=true&silenced=false&inhibited=false")


ALWAYS_FIRING = json.dumps(
    {
        "groups": [
            {
                "name": "fixture",
                "rules": [
                    {
                        "alert": "FixtureAlwaysFiring",
                        "expr": "vector(1)",
                        "labels": {"severity": "warning", "provider": "openai"},
                    }
                ],
            }
        ]
    }
)


def fixture_stack(tmp: Path) -> tuple[Target, Prometheus, float]:
    """Start the fixed-data target and a Prometheus scraping it; return the exact-data instant.

    The instant is the timestamp of a sample taken after the switch to final values, so
    every `increase()` over a range reaching back before the first sample is exact there.
    """
    target = Target([exposition(0), exposition(1)])
    prom = Prometheus(tmp, [target.address], rules=ALWAYS_FIRING)

    def settled() -> float | None:
        samples = prom.query("count_over_time(llm_sessions_started_total[5m])")
        last = prom.value("llm_sessions_started_total")
        if samples and samples[0][1] >= 2 and last == 12:
            return prom.value("timestamp(llm_sessions_started_total)")
        return None

    at = wait_until(settled, 30, "Prometheus to scrape the fixture's zero and final values")
    return target, prom, at


_SHARED: dict[str, tuple[Prometheus, float]] = {}


def shared_fixture_stack(
    request: pytest.FixtureRequest, factory: pytest.TempPathFactory
) -> tuple[Prometheus, float]:
    """One fixed-data Prometheus for the whole test session (it is only read), closed at exit.

    Starting Prometheus costs ~6 s (its scrape manager applies targets after 5 s), so the
    web API, WebSocket, status page and report tests share one.
    """
    if "stack" not in _SHARED:
        target, prom, at = fixture_stack(factory.mktemp("prom"))
        _SHARED["stack"] = (prom, at)

        def close() -> None:
            _SHARED.clear()
            prom.close()
            target.close()

        request.config.add_cleanup(close)
    return _SHARED["stack"]
