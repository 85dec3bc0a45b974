"""Collectors for probe, provider, exporter and host families: they only read in-memory state."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import Metric

from exporter.exposition import counter, gauge, histogram
from exporter.host import HostSampler
from exporter.probestate import ProbeStore
from exporter.vocab import PHASES, RATELIMIT_RESOURCES, Reason

_CACHED = "Set by the background prober, not per scrape: probes cost money and quota."


class ProbeCollector:
    """`llm_probe_*` and `llm_provider_*` families from the ProbeStore."""

    def __init__(self, store: ProbeStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        pc = ["provider", "check"]
        success = gauge("llm_probe_success", f"1 if the last probe succeeded. {_CACHED}", labels=pc)
        duration = histogram(
            "llm_probe_duration_seconds", f"Duration of successful probes. {_CACHED}", labels=pc
        )
        phase = gauge(
            "llm_probe_phase_seconds",
            f"Seconds from request start to each phase of the last probe. {_CACHED}",
            labels=[*pc, "phase"],
        )
        probes = counter("llm_probes", "Probes run.", labels=pc)
        failures = counter("llm_probe_failures", "Failed probes by reason.", labels=[*pc, "reason"])
        last_run = gauge(
            "llm_probe_last_run_timestamp_seconds", "When the last probe finished.", labels=pc
        )
        last_ok = gauge(
            "llm_probe_last_success_timestamp_seconds",
            "When the last successful probe finished.",
            labels=pc,
        )
        interval = gauge(
            "llm_probe_interval_seconds", "Configured seconds between probes.", labels=pc
        )
        tokens = counter(
            "llm_probe_tokens", "Tokens spent by probes.", labels=["provider", "token_type"]
        )
        cost = counter(
            "llm_probe_cost_usd", "USD spent by probes (known prices only).", labels=["provider"]
        )
        up = gauge(
            "llm_provider_up",
            f"1 when every enabled check's last probe succeeded. {_CACHED}",
            labels=["provider"],
        )
        info = gauge(
            "llm_provider_info",
            "Provider settings; always 1.",
            labels=["provider", "api", "host", "probe_model"],
        )
        key = gauge(
            "llm_provider_api_key_configured",
            "1 when the provider's API key env var is set; 0 means not configured (not down).",
            labels=["provider"],
        )
        available = gauge(
            "llm_provider_model_available",
            f"1 when an allow-listed model is in the provider's model list. {_CACHED}",
            labels=["provider", "model"],
        )
        rl = {
            kind: gauge(
                f"llm_provider_ratelimit_{kind}",
                f"Rate-limit {kind.replace('_', ' ')} from the last probe's headers. {_CACHED}",
                labels=["provider", "resource"],
            )
            for kind in ("limit", "remaining", "reset_seconds")
        }
        for pid, ps in self._store.providers.items():
            info.add_metric([pid, ps.api, ps.host, ps.probe_model], 1)
            key.add_metric([pid], 1 if ps.key_configured else 0)
            is_up = ps.up()
            if is_up is not None:
                up.add_metric([pid], 1 if is_up else 0)
            for check, cs in ps.checks.items():
                labels = [pid, str(check)]
                interval.add_metric(labels, cs.interval)
                probes.add_metric(labels, cs.probes)
                for reason in Reason:
                    failures.add_metric([*labels, str(reason)], cs.failures.get(reason, 0))
                duration.add_metric(labels, cs.duration)
                if cs.last is not None:
                    success.add_metric(labels, 1 if cs.last.success else 0)
                    for name in PHASES:
                        if name in cs.last.phases:
                            phase.add_metric([*labels, name], cs.last.phases[name])
                if cs.last_run is not None:
                    last_run.add_metric(labels, cs.last_run)
                if cs.last_success is not None:
                    last_ok.add_metric(labels, cs.last_success)
            for token_type, n in sorted(ps.tokens.items()):
                tokens.add_metric([pid, token_type], n)
            if ps.key_configured:
                cost.add_metric([pid], ps.cost_usd)
            if ps.models_seen is not None:
                for model in ps.allowed_models:
                    available.add_metric([pid, model], 1 if model in ps.models_seen else 0)
            for resource in RATELIMIT_RESOURCES:
                limits = ps.ratelimits.get(resource)
                if limits is None:
                    continue
                for kind, value in (
                    ("limit", limits.limit),
                    ("remaining", limits.remaining),
                    ("reset_seconds", limits.reset_seconds),
                ):
                    if value is not None:
                        rl[kind].add_metric([pid, resource], value)
        yield from (success, duration, phase, probes, failures, last_run, last_ok, interval)
        yield from (tokens, cost, up, info, key, available, *rl.values())


class ExporterCollector:
    """`llm_exporter_build_info`, reload state, alert thresholds and host usage ratios."""

    def __init__(
        self,
        version: str,
        thresholds: Callable[[], dict[str, float]],
        reload_ok: Callable[[], bool],
        host: HostSampler,
    ) -> None:
        self._version = version
        self._thresholds = thresholds
        self._reload_ok = reload_ok
        self._host = host

    def collect(self) -> Iterator[Metric]:
        build = gauge(
            "llm_exporter_build_info", "Version of llm-exporter; always 1.", labels=["version"]
        )
        build.add_metric([self._version], 1)
        yield build
        yield gauge(
            "llm_exporter_config_last_reload_successful",
            "1 if the last configuration load succeeded.",
            value=1 if self._reload_ok() else 0,
        )
        threshold = gauge(
            "llm_alert_threshold",
            "Alert thresholds from config and env, for the alert rules to read.",
            labels=["name"],
        )
        for name, value in sorted(self._thresholds().items()):
            threshold.add_metric([name], value)
        yield threshold
        sample = self._host.latest
        for name, value, what in (
            ("cpu", sample.cpu, "CPU in use across all cores"),
            ("memory", sample.memory, "Memory in use"),
            ("disk", sample.disk, "Disk space in use on the data volume"),
        ):
            if value is not None:
                yield gauge(f"llm_host_{name}_usage_ratio", f"{what}, 0..1 (psutil).", value=value)
