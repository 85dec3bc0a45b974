"""Shared helpers for the Grafana dashboard and compose tests: loading, walking, substituting."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
PROVISIONING = GRAFANA / "provisioning"
COMPOSE_FILE = REPO / "docker-compose.yml"
RULES_DIR = REPO / "prometheus" / "rules"

DS_REF = {"type": "prometheus", "uid": "${datasource}"}
BUILTIN_ANNOTATION_DS = {"type": "grafana", "uid": "-- Grafana --"}

# Values Grafana would put in for its built-in and the dashboards' own variables.
PARSE_VALUES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
    "job": ".*",
    "instance": ".*",
    "provider": ".*",
    "model": ".*",
}

_VAR = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\$(\w+)|\[\[(\w+)\]\]")

# The metric contract (DESIGN.md) plus what the brief allows: metric -> its own labels.
_PROBE = {"provider", "check"}
CONTRACT_METRICS: dict[str, set[str]] = {
    "llm_probe_success": _PROBE,
    "llm_probe_phase_seconds": _PROBE | {"phase"},
    "llm_probes_total": _PROBE,
    "llm_probe_failures_total": _PROBE | {"reason"},
    "llm_probe_last_run_timestamp_seconds": _PROBE,
    "llm_probe_last_success_timestamp_seconds": _PROBE,
    "llm_probe_interval_seconds": _PROBE,
    "llm_probe_tokens_total": {"provider", "token_type"},
    "llm_probe_cost_usd_total": {"provider"},
    "llm_provider_up": {"provider"},
    "llm_provider_info": {"provider", "api", "host", "probe_model"},
    "llm_provider_api_key_configured": {"provider"},
    "llm_provider_model_available": {"provider", "model"},
    "llm_provider_ratelimit_limit": {"provider", "resource"},
    "llm_provider_ratelimit_remaining": {"provider", "resource"},
    "llm_provider_ratelimit_reset_seconds": {"provider", "resource"},
    "llm_requests_total": {"provider", "model", "outcome"},
    "llm_tokens_total": {"provider", "model", "token_type"},
    "llm_cost_usd_total": {"provider", "model"},
    "llm_unpriced_requests_total": {"provider", "model"},
    "llm_sessions_active": set(),
    "llm_sessions_started_total": set(),
    "llm_sessions_ended_total": {"outcome"},
    "llm_session_summarizations_total": set(),
    "llm_session_provider_switches_total": set(),
    "llm_exporter_build_info": {"version"},
    "llm_exporter_events_total": {"type"},
    "llm_exporter_events_rejected_total": {"reason"},
    "llm_exporter_events_duplicate_total": set(),
    "llm_exporter_label_overflow_total": {"label"},
    "llm_exporter_config_last_reload_successful": set(),
    "llm_alert_threshold": {"name"},
    "llm_host_cpu_usage_ratio": set(),
    "llm_host_memory_usage_ratio": set(),
    "llm_host_disk_usage_ratio": set(),
    "process_cpu_seconds_total": set(),
    "process_resident_memory_bytes": set(),
    "process_start_time_seconds": set(),
    "scrape_duration_seconds": set(),
    "scrape_samples_scraped": set(),
    "up": set(),
    "ALERTS": {"alertname", "alertstate", "severity", "provider"},
}
CONTRACT_HISTOGRAMS: dict[str, set[str]] = {
    "llm_probe_duration_seconds": _PROBE,
    "llm_request_duration_seconds": {"provider", "model"},
    "llm_time_to_first_token_seconds": {"provider", "model"},
    "llm_response_quality_score": {"provider"},
    "llm_session_duration_seconds": set(),
    "llm_session_messages": set(),
}
for _name, _labels in CONTRACT_HISTOGRAMS.items():
    CONTRACT_METRICS[f"{_name}_bucket"] = _labels | {"le"}
    CONTRACT_METRICS[f"{_name}_sum"] = _labels
    CONTRACT_METRICS[f"{_name}_count"] = _labels
TARGET_LABELS = {"job", "instance"}


@dataclass(frozen=True)
class Query:
    """One PromQL expression found in a dashboard, with where it came from."""

    dashboard: str
    where: str
    expr: str

    def substituted(self, values: dict[str, str] | None = None) -> str:
        return substitute(self.expr, values or PARSE_VALUES)


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARD_DIR.rglob("*.json"))


def load_dashboards() -> dict[Path, dict[str, Any]]:
    return {path: json.loads(path.read_text()) for path in dashboard_files()}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) with plain values."""

    def repl(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VAR.sub(repl, expr)


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)


def variable_selector(query: str) -> tuple[str | None, str]:
    """Split a Grafana `label_values(selector, label)` query into its parts."""
    match = LABEL_VALUES.match(query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match.group("selector"), match.group("label")


def iter_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    """Every panel target, annotation and variable selector of one dashboard."""
    uid = dashboard.get("uid", "?")
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            yield Query(uid, f"panel {panel.get('title')!r} {target.get('refId')}",
                        target.get("expr", ""))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if "expr" in annotation:
            yield Query(uid, f"annotation {annotation.get('name')!r}", annotation["expr"])
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            selector, _ = variable_selector(variable_query(var))
            if selector:
                yield Query(uid, f"variable ${var['name']}", selector)


def variable_query(var: dict[str, Any]) -> str:
    query = var.get("query")
    return query.get("query", "") if isinstance(query, dict) else str(query or "")


def panel_queries(dashboard: dict[str, Any]) -> Iterator[Query]:
    """Only the panel targets (what the dashboard draws)."""
    for query in iter_queries(dashboard):
        if query.where.startswith("panel "):
            yield query


def recording_rule_names() -> set[str]:
    names: set[str] = set()
    for path in sorted(RULES_DIR.glob("*.yml")) + sorted(RULES_DIR.glob("*.yaml")):
        for group in (load_yaml(path) or {}).get("groups", []):
            names.update(rule["record"] for rule in group.get("rules", []) if "record" in rule)
    return names
