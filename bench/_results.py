"""Where each benchmark leaves its figures for bench/report.py (docs/performance.md)."""

from __future__ import annotations

import json
import os
import platform
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS", Path(__file__).parent / "results"))


@dataclass(frozen=True)
class Figure:
    """One row of the performance table: ours against a peer or a limit, same run."""

    figure: str  # what is measured, e.g. "Scrape, 10 000 series (median)"
    ours: float
    peer_name: str  # e.g. "prometheus-pushgateway 1.4.3" or "goal"
    peer: float | None
    unit: str  # e.g. "ms", "events/s", "MB"
    goal: str  # the goal in words, e.g. "≤ pushgateway"
    met: bool | None  # None when there is no goal to meet
    lower_is_better: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """ours / peer; below 1 is better when lower is better."""
        if self.peer in (None, 0):
            return None
        return self.ours / self.peer


def median(values: list[float]) -> float:
    return statistics.median(values)


def save(bench: str, figures: list[Figure], *, details: dict | None = None) -> Path:
    """Write bench/results/<bench>.json (one file per benchmark, replaced on each run)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{bench}.json"
    doc = {
        "bench": bench,
        "python": platform.python_version(),
        "figures": [asdict(f) for f in figures],
        "details": details or {},
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_all() -> list[dict]:
    if not RESULTS_DIR.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(RESULTS_DIR.glob("*.json"))]
