"""End to end: real Prometheus and Alertmanager deliver, escalate, inhibit and resolve alerts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests._alert_sinks import ScrapeTarget, email_text, scrape_target
from tests._alert_stack import AlertingStack, alerting_stack, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Every `for:` and Alertmanager timing is divided by 120: 2m -> 1s, 30m -> 15s, 10m -> 5s.
FACTOR = 1 / 120
EMAIL_ENV = {
    "ALERT_EMAIL": "oncall-test@example.org",
    "SMTP_FROM": "LLM alerts <alerts-test@example.org>",
    "ALERT_ESCALATION_EMAIL": "escalation-test@example.org",
}
PROVIDERS = ("openai", "anthropic")


def healthy_exposition() -> dict[str, float]:
    """What a healthy exporter with two keyed providers reports (the parts these alerts read)."""
    samples: dict[str, float] = {}
    for p in PROVIDERS:
        samples[f'llm_provider_up{{provider="{p}"}}'] = 1
        samples[f'llm_provider_api_key_configured{{provider="{p}"}}'] = 1
        samples[f'llm_probe_failures_total{{provider="{p}",check="models",reason="timeout"}}'] = 0
        samples[f'llm_provider_ratelimit_remaining{{provider="{p}",resource="requests"}}'] = 900
        samples[f'llm_provider_ratelimit_limit{{provider="{p}",resource="requests"}}'] = 1000
    samples['llm_alert_threshold{name="ratelimit_headroom_ratio"}'] = 0.1
    return samples


def _alerts(payload: dict[str, Any], alertname: str, provider: str) -> list[dict[str, Any]]:
    return [
        a
        for a in payload.get("alerts", [])
        if a["labels"].get("alertname") == alertname and a["labels"].get("provider") == provider
    ]


def webhook_has(alertname: str, provider: str, status: str, receiver: str) -> Callable[[Any], bool]:
    def check(payload: dict[str, Any]) -> bool:
        return (
            payload.get("status") == status
            and payload.get("receiver") == receiver
            and bool(_alerts(payload, alertname, provider))
        )

    return check


def slack_has(alertname: str, provider: str, status: str) -> Callable[[Any], bool]:
    def check(payload: dict[str, Any]) -> bool:
        return any(
            f"[{status.upper()}" in a.get("title", "") and f"{alertname} {provider}" in a["title"]
            for a in payload.get("attachments", [])
        )

    return check


def email_has(alertname: str, provider: str, status: str) -> Callable[[Any], bool]:
    def check(record: dict[str, Any]) -> bool:
        subject = str(record["message"]["Subject"])
        return f"[{status.upper()}" in subject and f"{alertname} {provider}" in subject

    return check


@pytest.fixture
async def target() -> AsyncIterator[ScrapeTarget]:
    async with scrape_target(healthy_exposition()) as t:
        yield t


@pytest.fixture
async def stack(tmp_path: Path, target: ScrapeTarget) -> AsyncIterator[AlertingStack]:
    async with alerting_stack(tmp_path, exporter=target.address, factor=FACTOR, env=EMAIL_ENV) as s:
        yield s


async def test_provider_down_is_delivered_escalated_inhibits_and_resolves(
    stack: AlertingStack, target: ScrapeTarget
) -> None:
    """openai down: page on three channels, escalate, mute its rate-limit alert, then resolve."""

    # Prometheus scrapes the target and has evaluated the rules once.
    async def scraped() -> bool:
        up = await stack.prometheus_query('up{job="llm-exporter"} == 1')
        threshold = await stack.prometheus_query("name:llm_alert_threshold:max_or_default")
        return bool(up) and len(threshold) == 8

    await wait_until(scraped, 20, "the first scrape and rule evaluation")
    assert not stack.webhook.received, "a healthy target must not notify"

    # openai down after three failed probes; both providers nearly out of rate limit (5 % left,
    # threshold 10 %).
    t0 = time.monotonic()
    target.put('llm_provider_up{provider="openai"}', 0)
    target.put('llm_probe_failures_total{provider="openai",check="models",reason="timeout"}', 3)
    for p in PROVIDERS:
        target.put(f'llm_provider_ratelimit_remaining{{provider="{p}",resource="requests"}}', 50)

    page = await stack.webhook.wait_for(
        webhook_has("LLMProviderDown", "openai", "firing", "critical"), 30, "provider-down page"
    )
    alert = _alerts(page.body, "LLMProviderDown", "openai")[0]
    assert alert["labels"] == {
        "alertname": "LLMProviderDown",
        "provider": "openai",
        "job": "llm-exporter",
        "severity": "critical",
        "source": "probe",
    }
    assert alert["annotations"]["summary"] == "LLM provider is down."
    assert alert["annotations"]["runbook_url"].endswith("docs/runbooks.md#llmproviderdown")
    assert page.body["groupLabels"] == {"alertname": "LLMProviderDown", "provider": "openai"}

    slack = await stack.slack.wait_for(
        slack_has("LLMProviderDown", "openai", "firing"), 10, "provider-down Slack message"
    )
    attachment = slack.body["attachments"][0]
    assert attachment["color"] == "danger"
    assert attachment["title_link"].endswith("#llmproviderdown")
    assert "provider=openai" in attachment["text"] and "severity=critical" in attachment["text"]

    mail = await stack.smtp.wait_for(
        email_has("LLMProviderDown", "openai", "firing"), 10, "provider-down email"
    )
    assert mail.body["rcpt_tos"] == ["oncall-test@example.org"]
    assert "alerts-test@example.org" in str(mail.body["message"]["From"])
    assert "Probes of openai (job llm-exporter) have been failing" in email_text(
        mail.body["message"]
    )
    time_to_page = {
        name: r.at - t0 for name, r in (("webhook", page), ("slack", slack), ("email", mail))
    }

    # anthropic's rate-limit warning reaches Slack and the webhook; openai's is inhibited.
    warning = await stack.webhook.wait_for(
        webhook_has("LLMProviderRateLimitHeadroomLow", "anthropic", "firing", "warning"),
        30,
        "anthropic rate-limit warning",
    )
    await stack.slack.wait_for(
        slack_has("LLMProviderRateLimitHeadroomLow", "anthropic", "firing"),
        10,
        "anthropic rate-limit Slack message",
    )
    muted = await stack.alertmanager_alerts(
        alertname="LLMProviderRateLimitHeadroomLow", provider="openai"
    )
    assert len(muted) == 1 and muted[0]["status"]["state"] == "suppressed", muted
    down = await stack.alertmanager_alerts(alertname="LLMProviderDown", provider="openai")
    assert muted[0]["status"]["inhibitedBy"] == [down[0]["fingerprint"]]

    # Still down after 30 (scaled) minutes: the escalation receiver is notified.
    escalation = await stack.webhook.wait_for(
        webhook_has("LLMProviderDownEscalation", "openai", "firing", "escalation"),
        40,
        "escalation",
    )
    escalation_mail = await stack.smtp.wait_for(
        email_has("LLMProviderDownEscalation", "openai", "firing"), 10, "escalation email"
    )
    assert escalation_mail.body["rcpt_tos"] == ["escalation-test@example.org"]
    assert str(escalation_mail.body["message"]["Subject"]).startswith("ESCALATION ")

    # The inhibited alert never reached a channel, though it fired as long as anthropic's.
    assert not stack.webhook.matching(
        lambda p: bool(_alerts(p, "LLMProviderRateLimitHeadroomLow", "openai"))
    )
    assert not stack.slack.matching(
        slack_has("LLMProviderRateLimitHeadroomLow", "openai", "firing")
    )

    # openai recovers (and its rate limit too): resolved notifications on all three channels.
    t1 = time.monotonic()
    target.put('llm_provider_up{provider="openai"}', 1)
    target.put('llm_provider_ratelimit_remaining{provider="openai",resource="requests"}', 900)
    resolved = await stack.webhook.wait_for(
        webhook_has("LLMProviderDown", "openai", "resolved", "critical"), 30, "resolved webhook"
    )
    assert _alerts(resolved.body, "LLMProviderDown", "openai")[0]["status"] == "resolved"
    await stack.slack.wait_for(
        slack_has("LLMProviderDown", "openai", "resolved"), 10, "resolved Slack message"
    )
    await stack.smtp.wait_for(
        email_has("LLMProviderDown", "openai", "resolved"), 10, "resolved email"
    )
    print(
        "\ntime to page (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in time_to_page.items())
        + f"; warning {warning.at - t0:.1f}; escalation {escalation.at - t0:.1f}"
        + f"; resolved {resolved.at - t1:.1f}"
    )


ACTIVE, MUTED = "active", "suppressed"


def _case(state: str, alertname: str, severity: str, **labels: str) -> tuple[dict[str, str], str]:
    return {"alertname": alertname, "severity": severity, "job": "llm-exporter", **labels}, state


# One source and its targets per inhibit rule, plus controls that must stay active.
INHIBITION_CASES: list[tuple[dict[str, str], str]] = [
    # LLMProviderDown mutes latency, error-rate, rate-limit and burn alerts of that provider.
    _case(ACTIVE, "LLMProviderDown", "critical", provider="openai", source="probe"),
    _case(MUTED, "LLMProviderHighLatency", "warning", provider="openai", source="traffic"),
    _case(MUTED, "LLMProviderErrorRateSpike", "warning", provider="openai", source="traffic"),
    _case(
        MUTED,
        "LLMProviderRateLimitHeadroomLow",
        "warning",
        provider="openai",
        resource="tokens",
        source="probe",
    ),
    _case(
        MUTED,
        "LLMProviderErrorBudgetBurn",
        "warning",
        provider="openai",
        long="1d",
        short="2h",
        source="probe",
    ),
    _case(ACTIVE, "LLMProviderHighLatency", "warning", provider="anthropic", source="traffic"),
    # A rejected key or exhausted billing mutes down/escalation and the symptoms.
    _case(ACTIVE, "LLMProviderAPIKeyRejected", "critical", provider="mistral", source="probe"),
    _case(MUTED, "LLMProviderDown", "critical", provider="mistral", source="probe"),
    _case(MUTED, "LLMProviderDownEscalation", "critical", provider="mistral", source="probe"),
    _case(ACTIVE, "LLMProviderBillingExhausted", "critical", provider="deepseek", source="probe"),
    _case(MUTED, "LLMProviderErrorRateHigh", "warning", provider="deepseek", source="traffic"),
    # An error-rate spike mutes the sustained error-rate alert.
    _case(ACTIVE, "LLMProviderErrorRateSpike", "warning", provider="gemini", source="traffic"),
    _case(MUTED, "LLMProviderErrorRateHigh", "warning", provider="gemini", source="traffic"),
    # The burn-rate page mutes the burn-rate ticket.
    _case(
        ACTIVE,
        "LLMProviderErrorBudgetBurn",
        "critical",
        provider="grok",
        long="1h",
        short="5m",
        source="probe",
    ),
    _case(
        MUTED,
        "LLMProviderErrorBudgetBurn",
        "warning",
        provider="grok",
        long="3d",
        short="6h",
        source="probe",
    ),
    # Exporter down in job llm-exporter-eu mutes that job's probe alerts only.
    _case(ACTIVE, "LLMExporterDown", "critical", job="llm-exporter-eu", instance="eu:9820"),
    _case(
        MUTED,
        "LLMProbeStale",
        "warning",
        job="llm-exporter-eu",
        provider="qwen",
        check="models",
        source="probe",
    ),
    _case(
        MUTED,
        "LLMProviderDown",
        "critical",
        job="llm-exporter-eu",
        provider="kimi_k2",
        source="probe",
    ),
    _case(ACTIVE, "LLMCostAnomaly", "info", job="llm-exporter-eu", source="traffic"),
    _case(ACTIVE, "LLMProbeStale", "warning", provider="qwen", check="models", source="probe"),
]


@pytest.fixture
async def alertmanager_only(tmp_path: Path) -> AsyncIterator[AlertingStack]:
    async with alerting_stack(tmp_path, exporter=None, factor=FACTOR, env=EMAIL_ENV) as s:
        yield s


async def test_inhibit_rules_mute_exactly_the_dependent_alerts(
    alertmanager_only: AlertingStack,
) -> None:
    """Posted alerts: each inhibit rule mutes its targets, and muted alerts are never delivered."""
    stack = alertmanager_only
    await stack.post_alerts(
        [{"labels": labels, "annotations": {"summary": "test."}} for labels, _ in INHIBITION_CASES]
    )

    def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(labels.items()))

    expected = {key(labels): state for labels, state in INHIBITION_CASES}

    async def states() -> dict[tuple[tuple[str, str], ...], str]:
        return {key(a["labels"]): a["status"]["state"] for a in await stack.alertmanager_alerts()}

    async def all_received() -> bool:
        return len(await states()) == len(expected)

    await wait_until(all_received, 10, "Alertmanager to receive every posted alert")
    assert await states() == expected

    # Active critical and warning alerts reach the webhook; suppressed ones never do.
    delivered_keys: set[tuple[tuple[str, str], ...]] = set()

    async def all_active_delivered() -> bool:
        for payload in stack.webhook.received:
            delivered_keys.update(key(a["labels"]) for a in payload.body["alerts"])
        wanted = {
            key(labels)
            for labels, state in INHIBITION_CASES
            if state == ACTIVE and labels["severity"] in ("critical", "warning")
        }
        return wanted <= delivered_keys

    await wait_until(all_active_delivered, 20, "active alerts to reach the webhook")
    suppressed = {key(labels) for labels, state in INHIBITION_CASES if state == MUTED}
    assert not delivered_keys & suppressed
