"""The simulator's mutable state: per-provider fault settings, counters, rate windows, caches."""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from exporter.simulator.ratelimits import RateWindow, limits_for
from exporter.simulator.turns import PromptCache
from exporter.vocab import PROVIDERS

MODES: tuple[str, ...] = (
    "ok",
    "down",
    "slow",
    "hang",
    "rate_limit",
    "overloaded",
    "auth",
    "server_error",
    "malformed",
    "billing",
    "echo_key",
)
MAX_LATENCY_MS = 600_000.0
_DEFAULT_LATENCY_MS = {"slow": (3000.0, 5000.0)}
_FAST_LATENCY_MS = (20.0, 80.0)
_DEFAULT_TOKEN_DELAY_MS = {"slow": 250.0}
_FAST_TOKEN_DELAY_MS = 5.0


@dataclass
class Fault:
    """How one provider misbehaves; None latency/token delay means the mode's default."""

    mode: str = "ok"
    latency_ms: float | None = None
    error_rate: float = 0.0
    token_delay_ms: float | None = None


def _number(name: str, value: object, low: float, high: float) -> float:
    """A finite number in [low, high] or ValueError naming the field."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


class SimState:
    """Everything the simulator remembers between requests; one instance per app."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults: dict[str, Fault] = {}
        self.windows: dict[str, RateWindow] = {}
        self.requests: dict[str, int] = {}
        self.in_flight: dict[str, int] = {}
        self.cache = PromptCache()
        self.closing = False
        self.reset()

    def reset(self) -> None:
        """Every provider back to mode ok with fresh counters, rate windows and caches."""
        self.rng.seed(self.seed)
        self.faults = {p: Fault() for p in PROVIDERS}
        self.windows = {p: RateWindow(limits_for(p)) for p in PROVIDERS}
        self.requests = dict.fromkeys(PROVIDERS, 0)
        self.in_flight = self.in_flight or dict.fromkeys(PROVIDERS, 0)
        self.cache.clear()

    def set_mode(
        self,
        provider: str,
        mode: str,
        *,
        latency_ms: float | None = None,
        error_rate: float | None = None,
        token_delay_ms: float | None = None,
    ) -> None:
        """Replace one provider's fault settings; ValueError on an unknown provider or mode."""
        if provider not in self.faults:
            raise ValueError(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r} (one of {', '.join(MODES)})")
        fault = Fault(mode=mode)
        if latency_ms is not None:
            fault.latency_ms = _number("latency_ms", latency_ms, 0.0, MAX_LATENCY_MS)
        if error_rate is not None:
            fault.error_rate = _number("error_rate", error_rate, 0.0, 1.0)
        if token_delay_ms is not None:
            fault.token_delay_ms = _number("token_delay_ms", token_delay_ms, 0.0, 60_000.0)
        self.faults[provider] = fault

    def provider_snapshot(self, provider: str) -> dict[str, Any]:
        """One provider's fault settings and counters as JSON-ready data."""
        window = self.windows[provider]
        return {
            **asdict(self.faults[provider]),
            "requests": self.requests[provider],
            "in_flight": self.in_flight[provider],
            "ratelimit_remaining": window.remaining(time.monotonic()),
        }

    def snapshot(self) -> dict[str, Any]:
        """Every provider's state, keyed by provider id."""
        return {"seed": self.seed, "providers": {p: self.provider_snapshot(p) for p in PROVIDERS}}

    def latency_s(self, provider: str) -> float:
        """Seconds to wait before answering: exact when set, else the mode's jittered default."""
        fault = self.faults[provider]
        if fault.latency_ms is not None:
            return fault.latency_ms / 1000
        low, high = _DEFAULT_LATENCY_MS.get(fault.mode, _FAST_LATENCY_MS)
        return self.rng.uniform(low, high) / 1000

    def token_delay_s(self, provider: str) -> float:
        """Seconds between streamed chunks."""
        fault = self.faults[provider]
        if fault.token_delay_ms is not None:
            return fault.token_delay_ms / 1000
        return _DEFAULT_TOKEN_DELAY_MS.get(fault.mode, _FAST_TOKEN_DELAY_MS) / 1000

    def roll_error(self, provider: str) -> bool:
        """True when this request should fail with a server error (error_rate)."""
        rate = self.faults[provider].error_rate
        return rate > 0 and self.rng.random() < rate

    def request_id(self, prefix: str = "req_") -> str:
        """A fresh opaque id for request-id headers and response ids."""
        return f"{prefix}{self.rng.getrandbits(96):024x}"


SIM_STATE: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
