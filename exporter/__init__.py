"""llm-exporter: probes LLM providers and records an orchestrator's traffic for Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llm-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
