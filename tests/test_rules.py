"""promtool and amtool checks of the shipped rules and Alertmanager config, and conventions."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._alert_stack import ALERTMANAGER_DIR, PROMETHEUS_DIR, ROOT, require_binary

RULES = PROMETHEUS_DIR / "rules" / "llm-exporter.rules.yml"
ALERTS = PROMETHEUS_DIR / "rules" / "llm-exporter.alerts.yml"
PROMTOOL_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
AM_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
ENTRYPOINT = ALERTMANAGER_DIR / "entrypoint.sh"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/llm-exporter/llm-exporter/blob/main/docs/runbooks.md#"
SEVERITY_RECEIVER = {"critical": "critical", "warning": "warning", "info": "info-digest"}


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def recording_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def alert_id(rule: dict[str, Any]) -> str:
    labels = rule["labels"]
    window = f"[{labels['long']}/{labels['short']}]" if "long" in labels else ""
    return rule["alert"] + window


# --- the real tools ---------------------------------------------------------------------------


def test_promtool_check_config() -> None:
    """prometheus.yml is valid and loads both rule files (paths relative to the config)."""
    result = run(
        require_binary("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


def test_promtool_check_rules_with_lint() -> None:
    """Both rule files pass `promtool check rules --lint=all --lint-fatal` (2.42 supports both)."""
    promtool = require_binary("promtool")
    result = run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(RULES), str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


@pytest.fixture(scope="module")
def promtool_test_results() -> dict[Path, tuple[int, str]]:
    """Run `promtool test rules` on every unit-test file at once (they take seconds each)."""
    promtool = require_binary("promtool")
    running = {
        path: subprocess.Popen(
            [promtool, "test", "rules", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in PROMTOOL_TESTS
    }
    results = {}
    for path, process in running.items():
        output, _ = process.communicate(timeout=120)
        results[path] = (process.returncode, output)
    return results


@pytest.mark.parametrize("test_file", PROMTOOL_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(
    test_file: Path, promtool_test_results: dict[Path, tuple[int, str]]
) -> None:
    """`promtool test rules` passes for each unit-test file."""
    returncode, output = promtool_test_results[test_file]
    assert returncode == 0, output
    assert "SUCCESS" in output


def test_amtool_check_config() -> None:
    """alertmanager.yml is valid for Debian's Alertmanager 0.25 and loads the templates."""
    result = run(require_binary("amtool"), "check-config", str(AM_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 inhibit rules" in result.stdout and "6 receivers" in result.stdout


# --- routing: amtool config routes test --verify.receivers ------------------------------------

ROUTE_CASES = [
    # (labels, receiver, matched leaf route, repeat_interval = cooldown)
    (
        {"alertname": "LLMProviderDown", "severity": "critical", "provider": "openai"},
        "critical",
        '{alertname="LLMProviderDown"}',
        "5m",
    ),
    (
        {"alertname": "LLMProviderDownEscalation", "severity": "critical", "provider": "openai"},
        "escalation",
        '{alertname="LLMProviderDownEscalation"}',
        "30m",
    ),
    (
        {"alertname": "LLMProviderAPIKeyRejected", "severity": "critical", "provider": "openai"},
        "critical",
        '{severity="critical"}',
        "1h",
    ),
    (
        {"alertname": "LLMExporterDown", "severity": "critical", "instance": "exporter:9820"},
        "critical",
        '{severity="critical"}',
        "1h",
    ),
    (
        {"alertname": "LLMProviderHighLatency", "severity": "warning", "provider": "gemini"},
        "warning",
        '{alertname="LLMProviderHighLatency"}',
        "10m",
    ),
    (
        {"alertname": "LLMProviderErrorRateHigh", "severity": "warning", "provider": "gemini"},
        "warning",
        '{alertname=~"LLMProviderErrorRate(High|Spike)"}',
        "15m",
    ),
    (
        {"alertname": "LLMProviderErrorRateSpike", "severity": "warning", "provider": "gemini"},
        "warning",
        '{alertname=~"LLMProviderErrorRate(High|Spike)"}',
        "15m",
    ),
    (
        {"alertname": "LLMSessionsOverload", "severity": "warning"},
        "warning",
        '{alertname="LLMSessionsOverload"}',
        "5m",
    ),
    (
        {"alertname": "LLMProviderRateLimitHeadroomLow", "severity": "warning", "provider": "grok"},
        "warning",
        '{severity="warning"}',
        "4h",
    ),
    (
        {"alertname": "LLMCostAnomaly", "severity": "info"},
        "info-digest",
        '{alertname="LLMCostAnomaly"}',
        "1h",
    ),
    (
        {"alertname": "LLMProviderAPIKeyMissing", "severity": "info", "provider": "qwen"},
        "info-digest",
        '{severity="info"}',
        "24h",
    ),
    (
        {"alertname": "LLMWatchdog", "severity": "none"},
        "deadmans-switch",
        '{alertname="LLMWatchdog"}',
        "1m",
    ),
    ({"alertname": "SomethingElse", "severity": "page"}, "default", "default-route", "4h"),
]


def route_path(labels: dict[str, str], receiver: str) -> list[str]:
    """Run amtool's routing test; return the matched route path (fails on a wrong receiver)."""
    result = run(
        require_binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        f"--verify.receivers={receiver}",
        "--tree",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, f"{labels} did not route to {receiver}:\n{result.stdout}"
    nodes = [
        re.sub(r"^[\s│├└─.]*", "", line).split("  receiver:")[0].strip()
        for line in result.stdout.splitlines()
        if "─" in line
    ]
    return [n for n in nodes if n]


def effective_route(path: list[str]) -> dict[str, Any]:
    """Settings of the route at `path`, inherited down the tree as Alertmanager does."""
    route = yaml.safe_load(AM_CONFIG.read_text())["route"]
    settings = {
        k: route[k] for k in ("group_by", "group_wait", "group_interval", "repeat_interval")
    }
    for node in path[1:]:
        route = next(
            r for r in route.get("routes", []) if "{" + ", ".join(r["matchers"]) + "}" == node
        )
        settings.update({k: v for k, v in route.items() if k in settings})
    return settings


@pytest.mark.parametrize(
    ("labels", "receiver", "leaf", "repeat"),
    ROUTE_CASES,
    ids=[c[0]["alertname"] for c in ROUTE_CASES],
)
def test_route(labels: dict[str, str], receiver: str, leaf: str, repeat: str) -> None:
    """Each route delivers to the expected receiver with the spec's cooldown."""
    path = route_path(labels, receiver)
    assert path[-1] == leaf
    settings = effective_route(path)
    assert settings["repeat_interval"] == repeat
    digest = leaf == '{severity="info"}'
    assert settings["group_by"] == (["severity"] if digest else ["alertname", "provider"])


def test_route_check_fails_on_a_wrong_receiver() -> None:
    """The amtool check used above does fail when the receiver is not the expected one."""
    result = run(
        require_binary("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={AM_CONFIG}",
        "--verify.receivers=warning",
        "alertname=LLMProviderDown",
        "severity=critical",
    )
    assert result.returncode != 0


def test_every_route_is_exercised() -> None:
    """ROUTE_CASES reach every route of the tree at least once."""
    route = yaml.safe_load(AM_CONFIG.read_text())["route"]

    def leaves(r: dict[str, Any]) -> set[str]:
        own = {"{" + ", ".join(r["matchers"]) + "}"} if "matchers" in r else {"default-route"}
        return own.union(*(leaves(c) for c in r.get("routes", [])))

    assert {leaf for _, _, leaf, _ in ROUTE_CASES} == leaves(route)


@pytest.mark.parametrize("rule", alert_rules(), ids=alert_id)
def test_every_alert_routes_by_its_severity(rule: dict[str, Any]) -> None:
    """Each alert of the rule file reaches the receiver its severity promises."""
    labels = {"alertname": rule["alert"], "provider": "openai", **rule["labels"]}
    special = {"LLMProviderDownEscalation": "escalation", "LLMWatchdog": "deadmans-switch"}
    receiver = special.get(rule["alert"]) or SEVERITY_RECEIVER[labels["severity"]]
    route_path(labels, receiver)


# --- alert conventions ---------------------------------------------------------------------------


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the headings in docs/runbooks.md."""
    anchors = set()
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("rule", alert_rules(), ids=alert_id)
def test_alert_follows_conventions(rule: dict[str, Any]) -> None:
    """Severity, static summary sentence, templated description, runbook section that exists."""
    assert re.fullmatch(r"LLM([A-Z][a-z0-9]*|API)+", rule["alert"]), "CamelCase with LLM prefix"
    severity = rule["labels"]["severity"]
    assert severity in SEVERITY_RECEIVER or (rule["alert"] == "LLMWatchdog" and severity == "none")
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert (
        re.fullmatch(r"[A-Za-z].*\.", annotations["summary"]) and "{{" not in annotations["summary"]
    )
    assert "{{" in annotations["description"]
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"] == RUNBOOK_BASE + anchor
    assert anchor in runbook_anchors(), f"docs/runbooks.md has no '## {rule['alert']}' section"
    if rule["alert"].startswith("LLMProvider") or rule["alert"].startswith("LLMProbe"):
        assert "provider" in rule["expr"], "provider alerts keep the provider label"


@functools.cache
def promtool_alert_cases() -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """alertname -> [(test group, alert_rule_test case)] over all promtool test files."""
    cases: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for path in PROMTOOL_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append((group, case))
    return cases


def minutes(duration: str) -> float:
    units = {"s": 1 / 60, "m": 1, "h": 60}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


@pytest.mark.parametrize("rule", alert_rules(), ids=alert_id)
def test_alert_has_silent_and_firing_unit_tests(rule: dict[str, Any]) -> None:
    """A promtool case fires with exact labels and annotations, and the same group is silent one
    evaluation (1m) earlier."""
    cases = promtool_alert_cases().get(rule["alert"], [])
    firing = [
        (group, case)
        for group, case in cases
        for exp in case.get("exp_alerts") or []
        if all(exp["exp_labels"].get(k) == v for k, v in rule["labels"].items())
        and set(exp.get("exp_annotations", {})) == {"summary", "description", "runbook_url"}
        and exp["exp_annotations"]["summary"] == rule["annotations"]["summary"]
    ]
    assert firing, f"no promtool case sees {alert_id(rule)} firing with its annotations"
    if "for" not in rule:
        return
    silent_before = [
        (group, case)
        for group, case in firing
        if minutes(case["eval_time"]) >= minutes(rule["for"])
        and any(
            other["alertname"] == rule["alert"]
            and not other.get("exp_alerts")
            and minutes(other["eval_time"]) == minutes(case["eval_time"]) - 1
            for other in group["alert_rule_test"]
        )
    ]
    assert silent_before, f"no case shows {alert_id(rule)} silent one evaluation before it fires"


def test_every_recording_rule_is_tested_for_values() -> None:
    """Each recorded series is asserted by a promql_expr_test."""
    exprs = " ".join(
        case["expr"]
        for path in PROMTOOL_TESTS
        for group in yaml.safe_load(path.read_text())["tests"]
        for case in group.get("promql_expr_test", [])
    )
    untested = [
        r["record"]
        for r in recording_rules()
        if not re.search(re.escape(r["record"]) + r"(?![\w:])", exprs)
    ]
    assert not untested


def test_threshold_defaults_match_the_exporter() -> None:
    """The rules' fallback thresholds are the exporter's defaults, name for name."""
    from exporter.config import Thresholds

    rule = next(
        r for r in recording_rules() if r["record"] == "name:llm_alert_threshold:max_or_default"
    )
    defaults = {
        name: float(value)
        for value, name in re.findall(r'vector\(([\d.]+)\), "name", "(\w+)"', rule["expr"])
    }
    assert defaults == {k: float(v) for k, v in Thresholds().model_dump().items()}


def test_prometheus_scrapes_the_compose_services() -> None:
    """Job names and addresses the rules and docker compose rely on."""
    doc = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    assert set(jobs) == {"llm-exporter", "prometheus", "alertmanager"}
    # the exporter is found by DNS: `exporter` always, `demo` under the compose demo profile
    (dns,) = jobs["llm-exporter"]["dns_sd_configs"]
    assert (dns["names"], dns["type"], dns["port"]) == (["exporter", "demo"], "A", 9820)
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"
    ]


# --- templates and the entrypoint --------------------------------------------------------------


def render(template: str, data: dict[str, Any], tmp_path: Path, *globs: str) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    globs = globs or (str(ALERTMANAGER_DIR / "templates" / "*.tmpl"),)
    result = run(
        require_binary("amtool"),
        "template",
        "render",
        *(f"--template.glob={g}" for g in globs),
        f"--template.data={data_file}",
        f"--template.text={{{{ template {template!r} . }}}}".replace("'", '"'),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def notification(status: str, alerts: list[dict[str, str]]) -> dict[str, Any]:
    common = dict(set.intersection(*(set(a.items()) for a in alerts)))
    return {
        "receiver": "critical",
        "status": status,
        "externalURL": "http://am:9093",
        "groupLabels": {},
        "commonLabels": common,
        "commonAnnotations": {},
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "S.", "description": "D.", "runbook_url": "https://r"},
                "startsAt": "2026-01-01T00:00:00Z",
                "endsAt": "2026-01-01T00:05:00Z",
            }
            for labels in alerts
        ],
    }


def test_titles_read_well(tmp_path: Path) -> None:
    """Firing, resolved and digest titles, and the Slack colour by severity."""
    down = {"alertname": "LLMProviderDown", "provider": "openai", "severity": "critical"}
    assert render("llm.title", notification("firing", [down]), tmp_path) == (
        "[FIRING:1] LLMProviderDown openai (critical)"
    )
    assert render("llm.title", notification("resolved", [down]), tmp_path) == (
        "[RESOLVED] LLMProviderDown openai (critical)"
    )
    digest = notification(
        "firing",
        [
            {"alertname": "LLMProviderAPIKeyMissing", "provider": "grok", "severity": "info"},
            {"alertname": "LLMUnpricedRequests", "provider": "qwen", "severity": "info"},
        ],
    )
    assert render("llm.title", digest, tmp_path) == "[FIRING:2] LLM alert digest (info)"
    assert render("llm.slack.color", notification("firing", [down]), tmp_path) == "danger"
    assert render("llm.slack.color", notification("resolved", [down]), tmp_path) == "good"


def run_entrypoint(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(
        "/bin/sh",
        str(ENTRYPOINT),
        f"--config.file={AM_CONFIG}",
        "--storage.path=/data",
        env={
            "ALERTMANAGER_BIN": "/bin/echo",
            "LLM_ALERTMANAGER_RUNTIME_DIR": str(tmp_path / "rt"),
            **env,
        },
    )


def test_entrypoint_renders_env_into_a_valid_config(tmp_path: Path) -> None:
    """Env vars become a rendered config amtool accepts, secret files and address templates."""
    password_file = tmp_path / "smtp-password"
    password_file.write_text("pa|ss&word")
    result = run_entrypoint(
        tmp_path,
        {
            "ALERT_EMAIL": "ops@example.org, Team <team@example.org>",
            "SMTP_FROM": "alerts@example.org",
            "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T1/B2/secret-token",
            "SMTP_PASSWORD_FILE": str(password_file),
            "SMTP_SMARTHOST": "smtp.example.org:587",
            "SMTP_USERNAME": "alerts@example.org",
            "ALERT_WEBHOOK_URL": "https://hooks.example.org/alerts?team=llm&x=1",
        },
    )
    assert result.returncode == 0, result.stderr
    rt = tmp_path / "rt"
    # Alertmanager is exec'd on the rendered copy with the other arguments unchanged.
    assert result.stdout.split() == [
        f"--config.file={rt / 'alertmanager.yml'}",
        "--storage.path=/data",
    ]
    assert "secret-token" not in result.stdout + result.stderr
    assert "pa|ss&word" not in result.stdout + result.stderr
    assert (
        rt / "slack_webhook_url"
    ).read_text() == "https://hooks.slack.com/services/T1/B2/secret-token"
    assert (rt / "smtp_auth_password").read_text() == "pa|ss&word"
    assert (rt / "slack_webhook_url").stat().st_mode & 0o077 == 0

    rendered = yaml.safe_load((rt / "alertmanager.yml").read_text())
    assert rendered["global"]["smtp_smarthost"] == "smtp.example.org:587"
    assert rendered["global"]["smtp_auth_username"] == "alerts@example.org"
    assert rendered["global"]["smtp_require_tls"] is True
    assert rendered["global"]["slack_api_url_file"] == str(rt / "slack_webhook_url")
    assert rendered["global"]["smtp_auth_password_file"] == str(rt / "smtp_auth_password")
    assert rendered["templates"] == [str(ALERTMANAGER_DIR / "templates" / "*.tmpl"), f"{rt}/*.tmpl"]
    urls = {h["url"] for r in rendered["receivers"] for h in r.get("webhook_configs", [])}
    assert urls == {"https://hooks.example.org/alerts?team=llm&x=1"}
    check = run(require_binary("amtool"), "check-config", str(rt / "alertmanager.yml"))
    assert check.returncode == 0, check.stdout + check.stderr

    data = notification("firing", [{"alertname": "A", "severity": "critical"}])
    globs = rendered["templates"]
    assert (
        render("llm.email.to", data, tmp_path, *globs) == "ops@example.org, Team <team@example.org>"
    )
    assert render("llm.email.from", data, tmp_path, *globs) == "alerts@example.org"
    # Without ALERT_ESCALATION_EMAIL the escalation goes to ALERT_EMAIL.
    assert render("llm.email.escalation_to", data, tmp_path, *globs) == (
        "ops@example.org, Team <team@example.org>"
    )


def test_entrypoint_without_env_keeps_the_shipped_defaults(tmp_path: Path) -> None:
    """No destination set: same config apart from file locations, no secret files."""
    result = run_entrypoint(tmp_path, {})
    assert result.returncode == 0, result.stderr
    rt = tmp_path / "rt"
    assert not (rt / "slack_webhook_url").exists() and not (rt / "smtp_auth_password").exists()
    shipped = yaml.safe_load(AM_CONFIG.read_text())
    rendered = yaml.safe_load((rt / "alertmanager.yml").read_text())
    assert rendered["route"] == shipped["route"]
    assert rendered["inhibit_rules"] == shipped["inhibit_rules"]
    assert rendered["global"]["smtp_smarthost"] == shipped["global"]["smtp_smarthost"]
    assert (rt / "destinations.tmpl").read_text() == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ALERT_EMAIL": '{{ template "x" }}@example.org'}, "ALERT_EMAIL must be"),
        ({"ALERT_EMAIL": "nobody"}, "ALERT_EMAIL must contain an email address"),
        ({"SLACK_WEBHOOK_URL": "ftp://hooks.example/secret-token"}, "SLACK_WEBHOOK_URL must be"),
        (
            {"SLACK_WEBHOOK_URL": 'https://hooks.example/secret-token"x'},
            "SLACK_WEBHOOK_URL contains",
        ),
        ({"SMTP_SMARTHOST": "smtp.example.org"}, "SMTP_SMARTHOST must be host:port"),
        ({"SMTP_SMARTHOST": "smtp.example.org:25\nx: y"}, "SMTP_SMARTHOST must be host:port"),
        ({"ALERT_WEBHOOK_URL": "https://x.example/a b"}, "ALERT_WEBHOOK_URL contains"),
        ({"SMTP_USERNAME": 'a"b'}, "SMTP_USERNAME contains"),
        ({"SMTP_REQUIRE_TLS": "yes"}, "SMTP_REQUIRE_TLS must be true or false"),
        (
            {"SMTP_PASSWORD_FILE": "/nonexistent/secret-token"},
            "SMTP_PASSWORD_FILE names an unreadable",
        ),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
def test_entrypoint_rejects_unsafe_values(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    """Bad values stop the start-up with a message that names the variable, not its value."""
    result = run_entrypoint(tmp_path, env)
    assert result.returncode == 64
    assert message in result.stderr
    assert "secret-token" not in result.stderr and result.stdout == ""
