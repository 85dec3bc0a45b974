"""Write docs/performance.md from the figures the benchmarks left in bench/results/."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from _results import RESULTS_DIR, load_all

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
ANALYSIS = Path(__file__).resolve().parent / "analysis.md"  # hand-written, appended as is
ORDER = ("scrape", "ingest", "client", "probe", "footprint", "soak", "alert")
PEER_COMMANDS = {
    "prometheus-pushgateway": ["prometheus-pushgateway", "--version"],
    "prometheus-blackbox-exporter": ["prometheus-blackbox-exporter", "--version"],
    "prometheus": ["prometheus", "--version"],
    "prometheus-alertmanager": ["prometheus-alertmanager", "--version"],
}
INTRO = """\
# Performance

Written by `make bench` ({when}). Every figure below was measured in that one run, each
against its peer or limit in the same run, so the ratio is the figure to read (the machine is
shared and noisy). Medians of several runs; the measured server is pinned to one core where a
peer is. How each benchmark works is in the docstring at the top of its script in `bench/`; the
soak rows come from the last `make soak` (`docs/soak-result.json`).
"""


def version(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    line = (out.stdout or out.stderr).strip().splitlines()
    return line[0] if line else "?"


def machine() -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("aiohttp", "prometheus-client", "msgspec", "opentelemetry-sdk")
        if _installed(name)
    )
    rows = [
        f"- Machine: {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
        f"Linux {platform.release()}",
        f"- Python {platform.python_version()}; {libs}",
    ]
    rows += [f"- {name}: `{version(cmd)}`" for name, cmd in PEER_COMMANDS.items()]
    return rows


def _installed(name: str) -> bool:
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return True


def number(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if float(value).is_integer() and not unit:
        return f"{value:,.0f}"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}".rstrip()
    if abs(value) >= 10:
        return f"{value:.1f} {unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[met]


def table(docs: list[dict]) -> list[str]:
    rows = [
        "| figure | llm-exporter | peer or limit | ratio | goal | |",
        "|---|---|---|---|---|---|",
    ]
    for doc in docs:
        for f in doc["figures"]:
            peer, ours = f["peer"], f["ours"]
            ratio = f"{ours / peer:.2f}x" if peer else "—"
            peer_cell = (
                f"{f['peer_name']}: {number(peer, f['unit'])}"
                if peer is not None
                else (f["peer_name"] or "—")
            )
            rows.append(
                f"| {f['figure']} | {number(ours, f['unit'])} | {peer_cell} | {ratio} "
                f"| {f['goal']} | {verdict(f['met'])} |"
            )
    return rows


def notes(docs: list[dict]) -> list[str]:
    out = []
    for doc in docs:
        for f in doc["figures"]:
            if f.get("note"):
                out.append(f"- *{f['figure']}*: {f['note']}")
    return out


def render(docs: list[dict], when: str) -> str:
    docs = sorted(docs, key=lambda d: ORDER.index(d["bench"]) if d["bench"] in ORDER else 99)
    missing = [b for b in ORDER if b not in {d["bench"] for d in docs} and b != "soak"]
    lines = [INTRO.format(when=when), "## Results", "", *table(docs), ""]
    if missing:
        lines += [f"Not run this time: {', '.join(missing)}.", ""]
    extra = notes(docs)
    if extra:
        lines += ["## Notes", "", *extra, ""]
    if ANALYSIS.is_file():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    lines += ["## Machine and versions", "", *machine(), ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=DOC)
    args = ap.parse_args()
    docs = load_all()
    if not docs:
        print(f"no results in {RESULTS_DIR}: run the benchmarks first (make bench)")
        return 1
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    args.out.write_text(render(docs, when))
    figures = sum(len(d["figures"]) for d in docs)
    print(f"wrote {args.out} ({figures} figures from {len(docs)} benchmarks)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
