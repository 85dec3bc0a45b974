"""Built-in settings for the eight providers; a user's config is merged over these."""

from __future__ import annotations

from typing import Any

# Default listen addresses. The Prometheus wiki's 9100-9999 range is fully allocated,
# so these are documented in the README rather than registered there.
EXPORTER_PORT = 9820
SIMULATOR_PORT = 9821

# One entry per provider id: wire family, API root (version included, paths are appended),
# the env var holding the key, the cheapest sensible probe model and the label allow-list.
PROVIDER_DEFAULTS: dict[str, dict[str, Any]] = {
    "openai": {
        "api": "openai",
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "OPENAI_API_KEY",
        "probe_model": "gpt-6-luna",
        "models": ["gpt-6-luna", "gpt-6-sol", "gpt-6.1-sol", "gpt-5.4-nano", "gpt-5.4-mini"],
    },
    "anthropic": {
        "api": "anthropic",
        "base_url": "https://api.anthropic.com/v1",
        "api_key_env": "ANTHROPIC_API_KEY",
        "probe_model": "claude-haiku-4-5",
        "models": ["claude-haiku-4-5", "claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5"],
    },
    "gemini": {
        "api": "gemini",
        "base_url": "https://generativelanguage.googleapis.com/v1beta",
        "api_key_env": "GEMINI_API_KEY",
        "probe_model": "gemini-2.5-flash-lite",
        "models": [
            "gemini-2.5-flash-lite",
            "gemini-3.1-flash-lite",
            "gemini-3.8-flash",
            "gemini-3.1-pro-preview",
        ],
    },
    "mistral": {
        "api": "openai",
        "base_url": "https://api.mistral.ai/v1",
        "api_key_env": "MISTRAL_API_KEY",
        "probe_model": "ministral-3b-latest",
        "models": [
            "ministral-3b-latest",
            "mistral-small-latest",
            "mistral-medium-latest",
            "mistral-large-latest",
        ],
    },
    "grok": {
        "api": "openai",
        "base_url": "https://api.x.ai/v1",
        "api_key_env": "XAI_API_KEY",
        "probe_model": "grok-4.20-0309-non-reasoning",
        "models": ["grok-4.20-0309-non-reasoning", "grok-4.3", "grok-4.6", "grok-4.7"],
    },
    "qwen": {
        "api": "openai",
        "base_url": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "api_key_env": "DASHSCOPE_API_KEY",
        "probe_model": "qwen-flash",
        "models": ["qwen-flash", "qwen3.8-flash", "qwen-plus", "qwen3.8-max"],
    },
    "deepseek": {
        "api": "openai",
        "base_url": "https://api.deepseek.com",
        "api_key_env": "DEEPSEEK_API_KEY",
        "probe_model": "deepseek-flash",
        "models": ["deepseek-flash", "deepseek-v4-pro"],
    },
    "kimi_k2": {
        "api": "openai",
        "base_url": "https://api.moonshot.ai/v1",
        "api_key_env": "MOONSHOT_API_KEY",
        "probe_model": "kimi-k2.6",
        "models": ["kimi-k2.6", "kimi-k2.7-code", "kimi-k3", "kimi-k3.1-pro"],
    },
}

# API roots the simulator serves, relative to its address (see DESIGN.md "Simulator").
SIMULATOR_ROOTS: dict[str, str] = {
    "openai": "/openai/v1",
    "anthropic": "/anthropic/v1",
    "gemini": "/gemini/v1beta",
    "mistral": "/mistral/v1",
    "grok": "/grok/v1",
    "qwen": "/qwen/v1",
    "deepseek": "/deepseek/v1",
    "kimi_k2": "/kimi_k2/v1",
}
