"""Time to alert: from a provider going down to the first page, with the production defaults.

Run: `.venv/bin/python bench/bench_alert.py [--no-e2e]`.

1. Computed from the shipped configs: the probe interval and its jitter (exporter defaults and
   exporter/scheduler.py), Prometheus' scrape and evaluation intervals (prometheus.yml),
   LLMProviderDown's `for:` and the condition's two failed probes (llm-exporter.alerts.yml), and
   the critical route's `group_wait` (alertmanager.yml). Best and worst case.
2. Measured: the end-to-end test (real Prometheus and Alertmanager delivering to webhook, Slack
   and SMTP sinks) runs with 1 s scrape/evaluation intervals and `for:`/`group_wait` multiplied
   by its FACTOR (group_wait at least 1 s). Its time from the scrape target showing the failure
   to the webhook is compared with the same computation for those timings.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml
from _results import Figure, save

from exporter.config import ProviderConfig
from exporter.durations import parse_duration
from exporter.scheduler import JITTER

ROOT = Path(__file__).resolve().parent.parent
E2E = "tests/test_alerting_e2e.py::test_provider_down_is_delivered_escalated_inhibits_and_resolves"


def seconds(value: str | float) -> float:
    return float(value) if isinstance(value, int | float) else parse_duration(value)


def computed() -> tuple[float, float, dict[str, float]]:
    prom = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())["global"]
    scrape, evaluate = seconds(prom["scrape_interval"]), seconds(prom["evaluation_interval"])
    alerts = yaml.safe_load((ROOT / "prometheus/rules/llm-exporter.alerts.yml").read_text())
    rule = next(r for g in alerts["groups"] for r in g["rules"]
                if r.get("alert") == "LLMProviderDown")  # fmt: skip
    hold = seconds(rule["for"])
    am = yaml.safe_load((ROOT / "alertmanager/alertmanager.yml").read_text())["route"]
    critical = next(r for r in am["routes"] if r.get("matchers") == ['severity="critical"'])
    wait = seconds(critical.get("group_wait", am["group_wait"]))
    interval = float(ProviderConfig.model_fields["interval"].default)
    parts = {"probe interval": interval, "jitter": JITTER, "scrape_interval": scrape,
             "evaluation_interval": evaluate, "for": hold, "group_wait": wait}  # fmt: skip
    # two failed probes: the next one (0 .. one jittered interval away), then one more interval
    best = interval * (1 - JITTER) + hold + wait
    worst = 2 * interval * (1 + JITTER) + scrape + evaluate + hold + wait
    return best, worst, parts


def measured() -> tuple[float, float] | None:
    """(seconds to the webhook in the e2e run, its time factor), or None when it failed."""
    factor_src = re.search(r"^FACTOR = (.+)$", (ROOT / "tests/test_alerting_e2e.py").read_text(),
                           re.M)  # fmt: skip
    factor = float(eval(factor_src.group(1), {})) if factor_src else None  # a literal like 1 / 120
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", E2E],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    m = re.search(r"time to page \(s\): webhook ([0-9.]+)", out.stdout)
    if out.returncode != 0 or m is None or factor is None:
        print(out.stdout[-2000:], out.stderr[-2000:])
        return None
    return float(m.group(1)), factor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-e2e", action="store_true", help="only compute from the configs")
    args = ap.parse_args()
    best, worst, parts = computed()
    print(f"computed from the configs: {best:.0f} s .. {worst:.0f} s ({parts})")
    figures = [
        Figure("Time to page, provider down (free check), computed worst case", worst,
               "computed best case", best, "s", "none set (figure 7 is reported, not a goal)",
               None, note=", ".join(f"{k} {v:g}" for k, v in parts.items())),
    ]  # fmt: skip
    if not args.no_e2e:
        got = measured()
        if got is None:
            print("the end-to-end test failed: no measured figure")
            return 1
        webhook, factor = got
        print(f"end-to-end: webhook after {webhook:.1f} s with timings x{factor:g}")
        # the e2e stack's own timings: 1 s scrape and evaluation, `for:` x factor, group_wait
        # x factor but at least 1 s (tests/_alert_stack.py); the failure counter is already 2
        hold, wait = parts["for"] * factor, max(parts["group_wait"] * factor, 1.0)
        e2e_best, e2e_worst = hold + wait, 1.0 + 1.0 + hold + wait
        figures.append(
            Figure("Time to page, measured end-to-end with every timing x1/120", webhook,
                   "computed worst case for those timings", e2e_worst, "s",
                   "≤ computed worst case (best case "
                   f"{e2e_best:.1f} s)", webhook <= e2e_worst * 1.1,
                   note="real Prometheus + Alertmanager delivering to webhook, Slack and SMTP "
                   "sinks; from the scrape target showing the failure to the webhook"),
        )  # fmt: skip
    save("alert", figures, details=parts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
