"""Lint the Grafana dashboards and provisioning without Grafana (dashboard-linter's key rules)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._grafana_helpers import (
    BUILTIN_ANNOTATION_DS,
    CONTRACT_METRICS,
    DASHBOARD_DIR,
    DS_REF,
    PROVISIONING,
    REPO,
    TARGET_LABELS,
    iter_panels,
    iter_queries,
    load_dashboards,
    load_yaml,
    recording_rule_names,
    variable_query,
    variable_selector,
)

DASHBOARDS = load_dashboards()
IDS = [str(path.relative_to(DASHBOARD_DIR)) for path in DASHBOARDS]
EXPECTED_UIDS = {
    "llm-overview",
    "llm-provider-detail",
    "llm-cost-tokens",
    "llm-sessions",
    "llm-exporter",
}
# schemaVersion 41 is what Grafana 12.0 writes; never emit newer than the pinned image.
MAX_SCHEMA_VERSION = 41
UNIT_PANELS = {"timeseries", "stat", "gauge", "bargauge", "state-timeline", "table"}
RANGE_FUNCS = re.compile(r"\b(rate|irate|increase|delta|idelta|deriv)\s*\(")
RANGE = re.compile(r"\[([^\]]*)\]")
SELECTOR = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)\s*\"")
METRIC_TOKEN = re.compile(r"(?<![\w$\"])([a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*|llm_\w+|"
                          r"process_\w+|scrape_\w+|ALERTS)\b")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
ALL_LABELS = set().union(*CONTRACT_METRICS.values()) | TARGET_LABELS | {"le"}


def dashboard_params() -> list[Any]:
    pairs = zip(IDS, DASHBOARDS.values(), strict=True)
    return [pytest.param(dash, id=name) for name, dash in pairs]


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(dash) if p.get("type") != "row"]


def walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (json path, value) pair of a document."""
    out = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            out += walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += walk(value, f"{path}[{index}]")
    return out


# ---------------------------------------------------------------------------- dashboards


def test_the_five_dashboards_exist_with_unique_uids_and_titles() -> None:
    """Every dashboard the issue asks for is there, and no uid or title repeats."""
    uids = [d.get("uid") for d in DASHBOARDS.values()]
    titles = [d.get("title") for d in DASHBOARDS.values()]
    assert set(uids) == EXPECTED_UIDS
    assert len(uids) == len(set(uids))
    assert len(titles) == len(set(titles))


def test_dashboards_sit_one_folder_deep() -> None:
    """foldersFromFilesStructure makes one Grafana folder per sub-directory (no nesting)."""
    for path in DASHBOARDS:
        assert len(path.relative_to(DASHBOARD_DIR).parts) == 2, path


@pytest.mark.parametrize("dash", dashboard_params())
def test_top_level_fields(dash: dict[str, Any]) -> None:
    """uid, title, schemaVersion, tags, time and no instance-specific id."""
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", dash["uid"])
    assert dash["title"].strip()
    assert isinstance(dash["schemaVersion"], int)
    assert 36 <= dash["schemaVersion"] <= MAX_SCHEMA_VERSION
    assert dash.get("id") is None
    assert "llm-exporter" in dash["tags"]
    assert dash["time"]["from"] and dash["time"]["to"]
    assert dash["editable"] is False, "provisioned dashboards are read-only"


@pytest.mark.parametrize("dash", dashboard_params())
def test_datasource_variable(dash: dict[str, Any]) -> None:
    """A `datasource` variable for Prometheus, defaulting to the provisioned uid."""
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    var = variables.get("datasource")
    assert var is not None, "missing the `datasource` template variable"
    assert var["type"] == "datasource"
    assert var["query"] == "prometheus"
    assert var["label"] == "Data source"
    assert var["current"]["value"] == provisioned_prometheus()["uid"]


@pytest.mark.parametrize("dash", dashboard_params())
def test_query_variables(dash: dict[str, Any]) -> None:
    """Query variables use ${datasource}, label_values() of a metric, and refresh on load."""
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        assert var["datasource"] == DS_REF, var["name"]
        selector, label = variable_selector(variable_query(var))
        assert selector, f"${var['name']}: label_values() without a metric is too broad"
        assert label in ALL_LABELS, var["name"]
        assert var["refresh"] in (1, 2), var["name"]
        if var.get("includeAll"):
            assert var.get("allValue") in (".*", ".+"), var["name"]


@pytest.mark.parametrize("dash", dashboard_params())
def test_no_hard_coded_datasource(dash: dict[str, Any]) -> None:
    """Every datasource reference anywhere is ${datasource} (or Grafana's built-in annotations)."""
    for path, value in walk(dash):
        if not path.endswith(".datasource"):
            continue
        assert value in (DS_REF, BUILTIN_ANNOTATION_DS), f"{path}: {value!r}"


@pytest.mark.parametrize("dash", dashboard_params())
def test_panels(dash: dict[str, Any]) -> None:
    """Title, description, ${datasource}, targets with refId and expr, unit, thresholds."""
    ids = [p["id"] for p in iter_panels(dash)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    assert panels(dash)
    for panel in panels(dash):
        name = f"{dash['uid']}/{panel.get('title')!r}"
        assert panel.get("title", "").strip(), name
        assert panel.get("description", "").strip(), f"{name}: no description"
        assert panel.get("datasource") == DS_REF, name
        targets = panel.get("targets", [])
        assert targets, f"{name}: no targets"
        ref_ids = [t.get("refId") for t in targets]
        assert all(ref_ids) and len(ref_ids) == len(set(ref_ids)), name
        for target in targets:
            assert target.get("datasource") == DS_REF, name
            assert target.get("expr", "").strip(), name
        defaults = panel["fieldConfig"]["defaults"]
        if panel["type"] in UNIT_PANELS:
            assert defaults.get("unit"), f"{name}: no unit"
        if panel["type"] == "heatmap":
            assert panel["options"]["yAxis"].get("unit"), f"{name}: heatmap y axis has no unit"
            assert all(t.get("format") == "heatmap" for t in targets), name
        steps = defaults.get("thresholds", {}).get("steps", [])
        assert steps and steps[0]["value"] is None, f"{name}: thresholds must start at base"
        values = [s["value"] for s in steps[1:]]
        assert values == sorted(values), f"{name}: thresholds out of order"


@pytest.mark.parametrize("dash", dashboard_params())
def test_layout(dash: dict[str, Any]) -> None:
    """Panels fit the 24-column grid and do not overlap."""
    taken: set[tuple[int, int]] = set()
    for panel in iter_panels(dash):
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize("dash", dashboard_params())
def test_rate_uses_rate_interval(dash: dict[str, Any]) -> None:
    """Counters are read over $__rate_interval (or the whole $__range); no literal windows."""
    for query in iter_queries(dash):
        for window in RANGE.findall(query.expr):
            assert window in ("$__rate_interval", "$__range"), f"{query.where}: [{window}]"
        for match in RANGE_FUNCS.finditer(query.expr):
            rest = query.expr[match.end():]
            window = RANGE.search(rest)
            assert window and window.group(1) in ("$__rate_interval", "$__range"), query.where


@pytest.mark.parametrize("dash", dashboard_params())
def test_queries_use_contract_metrics_and_labels(dash: dict[str, Any]) -> None:
    """Every metric is in DESIGN.md's contract (or a shipped recording rule), every label too."""
    rules = recording_rule_names()
    for query in iter_queries(dash):
        for name in METRIC_TOKEN.findall(query.expr):
            if ":" in name:
                assert name in rules, f"{query.where}: recording rule {name} is not shipped"
            else:
                assert name in CONTRACT_METRICS, f"{query.where}: {name} is not in the contract"
        for name, matchers in SELECTOR.findall(query.expr):
            allowed = CONTRACT_METRICS.get(name, ALL_LABELS) | TARGET_LABELS
            for label in MATCHER.findall(matchers):
                assert label in allowed, f"{query.where}: {name} has no label {label}"
        for group in GROUPING.findall(query.expr):
            for label in filter(None, (part.strip() for part in group.split(","))):
                assert label in ALL_LABELS, f"{query.where}: unknown label {label}"


@pytest.mark.parametrize("dash", dashboard_params())
def test_job_filter_everywhere(dash: dict[str, Any]) -> None:
    """Every exporter series is filtered by $job so several deployments do not mix."""
    for query in iter_queries(dash):
        if query.where.startswith("variable $job") or "ALERTS" in query.expr:
            continue
        for name, matchers in SELECTOR.findall(query.expr):
            assert 'job=~"$job"' in matchers, f"{query.where}: {name} lacks job=~\"$job\""


def test_every_promql_expression_parses_with_promtool(tmp_path: Path) -> None:
    """All targets, annotations and variable selectors, with variables substituted, parse."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    queries = [q for dash in DASHBOARDS.values() for q in iter_queries(dash)]
    rules = [{"record": f"dashboard:check_{i}:expr", "expr": q.substituted()}
             for i, q in enumerate(queries)]
    rule_file = tmp_path / "dashboards.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
    assert len(queries) > 80


def test_dashboard_links_point_at_existing_dashboards() -> None:
    """Data links of the form /d/<uid> and the tag-based dashboard links resolve."""
    uids = {d["uid"] for d in DASHBOARDS.values()}
    tags = {t for d in DASHBOARDS.values() for t in d["tags"]}
    found = 0
    for dash in DASHBOARDS.values():
        for link in dash.get("links", []):
            assert set(link.get("tags", [])) <= tags
        for path, value in walk(dash):
            if isinstance(value, str) and path.endswith(".url") and "/d/" in value:
                uid = value.split("/d/", 1)[1].split("/", 1)[0].split("?", 1)[0]
                assert uid in uids, f"{path} links to unknown dashboard {uid}"
                found += 1
    assert found >= 1


# ---------------------------------------------------------------------------- provisioning


def provisioned_datasources() -> list[dict[str, Any]]:
    files = sorted((PROVISIONING / "datasources").glob("*.y*ml"))
    assert files, "no datasource provisioning file"
    docs = [load_yaml(path) for path in files]
    assert all(doc["apiVersion"] == 1 for doc in docs)
    return [ds for doc in docs for ds in doc["datasources"]]


def provisioned_prometheus() -> dict[str, Any]:
    (prom,) = [ds for ds in provisioned_datasources() if ds["type"] == "prometheus"]
    return prom


def compose_service(name: str) -> dict[str, Any]:
    return load_yaml(REPO / "docker-compose.yml")["services"][name]


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repo-relative source for a service's ./ bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = source
    return mounts


def test_datasources_have_fixed_uids_and_point_at_compose_services() -> None:
    """Prometheus (default, fixed uid) and Alertmanager, at the compose service addresses."""
    sources = provisioned_datasources()
    assert sum(bool(ds.get("isDefault")) for ds in sources) == 1
    by_type = {ds["type"]: ds for ds in sources}
    assert set(by_type) == {"prometheus", "alertmanager"}
    assert by_type["prometheus"]["uid"] == "prometheus"
    assert by_type["prometheus"]["isDefault"] is True
    assert by_type["alertmanager"]["uid"] == "alertmanager"
    assert by_type["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    services = load_yaml(REPO / "docker-compose.yml")["services"]
    for kind, port in (("prometheus", 9090), ("alertmanager", 9093)):
        host, _, url_port = by_type[kind]["url"].removeprefix("http://").partition(":")
        assert host in services and int(url_port) == port


def test_datasource_time_interval_matches_shipped_scrape_interval() -> None:
    """Grafana derives $__rate_interval from timeInterval: it must be the scrape interval."""
    config = load_yaml(REPO / "prometheus" / "prometheus.yml")
    interval = config.get("global", {}).get("scrape_interval", "1m")
    assert provisioned_prometheus()["jsonData"]["timeInterval"] == interval


def test_dashboard_provider_path_matches_compose_mount() -> None:
    """The file provider reads where compose mounts grafana/dashboards, with folders from dirs."""
    files = sorted((PROVISIONING / "dashboards").glob("*.y*ml"))
    assert files
    providers = [p for path in files for p in load_yaml(path)["providers"]]
    assert len(providers) == 1
    (provider,) = providers
    assert provider["type"] == "file"
    assert provider["folder"] == ""
    assert provider["options"]["foldersFromFilesStructure"] is True
    assert provider["allowUiUpdates"] is False
    mounts = bind_mounts(compose_service("grafana"))
    assert mounts.get(provider["options"]["path"]) == "./grafana/dashboards"
    assert mounts.get("/etc/grafana/provisioning") == "./grafana/provisioning"
    for source in mounts.values():
        assert (REPO / source).exists(), source
