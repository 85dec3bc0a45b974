"""Probers, one per wire family, behind one signature (blackbox_exporter's `Probers` map).

`PROBERS[api](session, target, check) -> ProbeResult` never raises for provider behaviour;
only cancellation propagates. Attach `make_trace_config()` (and, for a separate `tls` phase,
a connector built with `make_ssl_context()`) to the shared ClientSession to get phase timings.
"""

from __future__ import annotations

from exporter.providers import anthropic, gemini, openai
from exporter.providers.base import ProbeFn
from exporter.providers.timing import make_ssl_context, make_trace_config
from exporter.vocab import Api

PROBERS: dict[str, ProbeFn] = {
    Api.OPENAI.value: openai.probe,
    Api.ANTHROPIC.value: anthropic.probe,
    Api.GEMINI.value: gemini.probe,
}

__all__ = ["PROBERS", "make_ssl_context", "make_trace_config"]
