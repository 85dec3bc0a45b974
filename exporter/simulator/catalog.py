"""Which model ids each simulated provider serves: the allow-list plus a few it does not list."""

from __future__ import annotations

from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS

# Ids a real account also sees, outside the exporter's default allow-lists.
EXTRA_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("text-embedding-3-small", "gpt-5.4-pro"),
    "anthropic": ("claude-sonnet-4-5", "claude-opus-4-8"),
    "gemini": ("gemini-flash-latest", "gemini-embedding-001"),
    "mistral": ("codestral-latest", "mistral-embed"),
    "grok": ("grok-build-0.1", "grok-4.3-mini"),
    "qwen": ("qwen-turbo", "qwen3-coder-plus"),
    "deepseek": ("deepseek-v4-flash", "deepseek-v4-flash-vision-exp"),
    "kimi_k2": ("kimi-k2.5", "moonshot-v1-auto"),
}
OWNERS: dict[str, str] = {
    "openai": "openai",
    "mistral": "mistralai",
    "grok": "xai",
    "qwen": "system",
    "deepseek": "deepseek",
    "kimi_k2": "moonshot",
}
CREATED = 1_760_000_000  # a fixed epoch so answers are reproducible


def family(provider: str) -> str:
    """The wire family (openai, anthropic or gemini) a provider speaks."""
    return str(PROVIDER_DEFAULTS[provider]["api"])


def root(provider: str) -> str:
    """The provider's API root on the simulator."""
    return SIMULATOR_ROOTS[provider]


def models(provider: str) -> list[str]:
    """Every model id the provider serves, allow-listed ones first."""
    listed = list(PROVIDER_DEFAULTS[provider]["models"])
    probe = str(PROVIDER_DEFAULTS[provider]["probe_model"])
    extra = [m for m in (probe, *EXTRA_MODELS.get(provider, ())) if m not in listed]
    return listed + list(dict.fromkeys(extra))


def serves(provider: str, model: str) -> bool:
    """True when `model` is one the provider would answer for."""
    return model in models(provider)


def display_name(model: str) -> str:
    """A human name like the ones Anthropic and Gemini list."""
    return " ".join(part.capitalize() for part in model.replace("-", " ").split())
