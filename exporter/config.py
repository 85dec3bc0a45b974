"""Configuration: YAML merged over built-in defaults, validated strictly, every problem reported.

`load_config(path)` returns a frozen `Config` or raises `ConfigError` whose `problems` list
holds one `"<yaml.path>: <what is wrong>"` line per problem. Unknown keys are errors. API keys
are never in the config: a provider names the environment variable that holds its key.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.defaults import EXPORTER_PORT, PROVIDER_DEFAULTS
from exporter.durations import parse_duration
from exporter.vocab import Api, Check

Duration = Annotated[float, BeforeValidator(parse_duration)]
_PROVIDER_ID = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
_BASIC_USER = re.compile(r"[\x21-\x39\x3b-\x7e]{1,128}")  # visible ASCII except ':'


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):  # not echoed: it may be the secret pasted in by mistake
        msg = "must be the name of an environment variable (the secret goes in that variable)"
        raise ValueError(msg)
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists each one with its YAML path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 in brackets) to a (host, port) pair; ValueError when malformed."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        msg = f"expected HOST:PORT with a port 1-65535, got {value!r}"
        raise ValueError(msg)
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class ProviderConfig(_Strict):
    """One provider to probe and to accept traffic for."""

    enabled: bool = True
    api: Api
    base_url: str
    api_key_env: str
    probe_model: str
    models: list[str] = Field(min_length=1, max_length=200)
    checks: list[Check] = Field(
        default=[Check.MODELS, Check.COMPLETION, Check.STREAM], min_length=1
    )
    interval: Duration = 30.0  # free checks (models)
    billable_interval: Duration = 600.0  # completion and stream cost tokens
    timeout: Duration = 10.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"must be an http(s) URL with a host, got {value!r}"
            raise ValueError(msg)
        if parts.username or parts.password or parts.query or parts.fragment:
            msg = "must not carry credentials, a query or a fragment (keys come from api_key_env)"
            raise ValueError(msg)
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.fullmatch(value):
            msg = f"must be an environment variable name, got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("probe_model")
    @classmethod
    def _probe_model(cls, value: str) -> str:
        if not _MODEL_ID.fullmatch(value):
            msg = f"not a model id: {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if not isinstance(m, str) or not _MODEL_ID.fullmatch(m)]
        if bad:
            msg = f"not model ids: {bad!r}"
            raise ValueError(msg)
        if len(set(value)) != len(value):
            msg = "lists a model twice"
            raise ValueError(msg)
        if "other" in value:
            msg = "'other' is reserved for models outside the allow-list"
            raise ValueError(msg)
        return value

    @field_validator("checks")
    @classmethod
    def _checks(cls, value: list[Check]) -> list[Check]:
        if len(set(value)) != len(value):
            msg = "lists a check twice"
            raise ValueError(msg)
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_fits(cls, value: float, info: ValidationInfo) -> float:
        shortest = min(info.data.get("interval", 1e9), info.data.get("billable_interval", 1e9))
        if value >= shortest:
            msg = f"must be shorter than the probe interval ({value:g}s >= {shortest:g}s)"
            raise ValueError(msg)
        return value

    def interval_for(self, check: Check) -> float:
        return self.interval if check is Check.MODELS else self.billable_interval


class IngestConfig(_Strict):
    """The events API: auth, size limits and the cardinality ceiling."""

    token_env: str | None = "LLM_EXPORTER_INGEST_TOKEN"
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    max_batch: int = Field(default=5000, ge=1, le=100_000)
    dedup_window: int = Field(default=200_000, ge=0, le=10_000_000)
    max_series: int = Field(default=20_000, ge=100, le=1_000_000)
    # requests reading or applying a body at once; more are answered 503 + Retry-After
    max_concurrent_requests: int = Field(default=256, ge=1, le=100_000)


class SessionsConfig(_Strict):
    """How long a silent session lives and how many sessions are remembered."""

    ttl: Duration = 1800.0
    max_active: int = Field(default=100_000, ge=1)
    max_recent: int = Field(default=10_000, ge=1)
    # with `state_file`: also save active sessions this often (null: only at shutdown)
    save_interval: Duration | None = 60.0

    @field_validator("save_interval")
    @classmethod
    def _save_floor(cls, value: float | None) -> float | None:
        if value is not None and value < 0.1:
            msg = f"must be at least 100ms (or null for only at shutdown), got {value:g}s"
            raise ValueError(msg)
        return value


class MetricsAuthConfig(_Strict):
    """Credentials `GET /metrics` asks for: a bearer token or a basic-auth user and password.

    The secret is only ever read from the environment variable named here.
    """

    bearer_token_env: EnvName | None = None
    basic_username: str | None = None
    basic_password_env: EnvName | None = None

    @field_validator("basic_username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and not _BASIC_USER.fullmatch(value):
            msg = "must be 1-128 visible ASCII characters without ':'"
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MetricsAuthConfig:
        basic = (self.basic_username is not None, self.basic_password_env is not None)
        if self.bearer_token_env is not None and any(basic):
            msg = "give bearer_token_env or basic_username + basic_password_env, not both"
            raise ValueError(msg)
        if self.bearer_token_env is None and not all(basic):
            msg = "give bearer_token_env, or both basic_username and basic_password_env"
            raise ValueError(msg)
        return self

    @property
    def secret_env(self) -> str:
        """The environment variable that holds the token or password."""
        return self.bearer_token_env or self.basic_password_env or ""


class Thresholds(_Strict):
    """Alert thresholds, exported as `llm_alert_threshold{name}` for the rules to read."""

    response_time_seconds: float = Field(default=5.0, gt=0)
    error_rate: float = Field(default=0.05, gt=0, le=1)
    error_rate_spike: float = Field(default=0.10, gt=0, le=1)
    cost_hourly_usd: float = Field(default=50.0, gt=0)
    active_sessions: float = Field(default=1000, gt=0)
    ratelimit_headroom_ratio: float = Field(default=0.10, gt=0, le=1)
    monthly_budget_usd: float = Field(default=1000.0, gt=0)
    probe_availability_slo: float = Field(default=0.99, gt=0, lt=1)


class Price(_Strict):
    """USD per million tokens; a missing type falls back to `input` (cached) or `output`."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    reasoning: float | None = Field(default=None, ge=0)


class PricingConfig(_Strict):
    overrides: dict[str, dict[str, Price]] = {}


class Config(_Strict):
    """The whole exporter configuration."""

    listen: str = f"0.0.0.0:{EXPORTER_PORT}"
    monitoring_enabled: bool = True
    providers: dict[str, ProviderConfig]
    ingest: IngestConfig = IngestConfig()
    sessions: SessionsConfig = SessionsConfig()
    thresholds: Thresholds = Thresholds()
    pricing: PricingConfig = PricingConfig()
    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    dashboard_refresh_interval: Duration = 5.0
    metrics_retention_days: int = Field(default=15, ge=1)
    state_file: str | None = None  # active sessions are written here on stop, restored on start
    metrics_auth: MetricsAuthConfig | None = None  # credentials for GET /metrics; None: open

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("providers")
    @classmethod
    def _provider_ids(cls, value: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        bad = [p for p in value if not _PROVIDER_ID.fullmatch(p)]
        if bad:
            msg = f"provider ids must match [a-z][a-z0-9_]*, got {bad!r}"
            raise ValueError(msg)
        return value

    def enabled_providers(self) -> dict[str, ProviderConfig]:
        return {p: c for p, c in self.providers.items() if c.enabled}


# Original-spec environment variables: they replace built-in defaults; a config file value wins.
ENV_THRESHOLDS: dict[str, str] = {
    "ALERT_RESPONSE_TIME_THRESHOLD": "response_time_seconds",
    "ALERT_ERROR_RATE_THRESHOLD": "error_rate",
    "ALERT_COST_HOURLY_THRESHOLD": "cost_hourly_usd",
}
ENV_TOP_LEVEL: dict[str, str] = {
    "MONITORING_ENABLED": "monitoring_enabled",
    "METRICS_RETENTION_DAYS": "metrics_retention_days",
    "DASHBOARD_REFRESH_INTERVAL": "dashboard_refresh_interval",
    "PROMETHEUS_URL": "prometheus_url",
    "ALERTMANAGER_URL": "alertmanager_url",
}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for var, key in ENV_THRESHOLDS.items():
        if env.get(var, "").strip():
            layer.setdefault("thresholds", {})[key] = env[var].strip()
    for var, key in ENV_TOP_LEVEL.items():
        if env.get(var, "").strip():
            layer[key] = env[var].strip()
    return layer


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


_MISSING = object()


def yaml_key(key: object) -> str:
    """A mapping key as YAML spells it: `true`, `false`, `null`, else its text."""
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    return str(key)


def _doc_parts(loc: tuple[int | str, ...], doc: object) -> list[str]:
    """Pydantic's `loc` spelled with the document's own keys.

    Pydantic reports a boolean key as 0/1 and other non-string keys as text, and adds a
    `[key]` step for a bad key; walking the document gives each step back as written.
    """
    parts: list[str] = []
    node: object = doc
    for step in loc:
        if step == "[key]":
            continue
        found: object = _MISSING
        if isinstance(node, Mapping):
            for key in node:  # exact key first, then a key pydantic re-spelled (True -> 1)
                if type(key) is type(step) and key == step:
                    found = key
                    break
            else:
                found = next((k for k in node if k == step or str(k) == str(step)), _MISSING)
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            parts.append(str(step))
            node = node[step]
            continue
        if found is _MISSING:
            parts.append(str(step))
            node = None
        else:
            parts.append(yaml_key(found))
            node = node[found]  # type: ignore[index]
    return parts


def _path(loc: tuple[int | str, ...], env_keys: set[tuple[str, ...]], doc: object = None) -> str:
    parts = _doc_parts(loc, doc)
    path = ".".join(parts) or "(top level)"
    if tuple(parts) in env_keys:
        var = next(v for v, k in {**ENV_THRESHOLDS, **ENV_TOP_LEVEL}.items() if k == parts[-1])
        path += f" (from ${var})"
    return path


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc`, to suggest a close key name."""
    model: type[BaseModel] = Config
    parts = list(loc[:-1])
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        sub = field.annotation
        if sub is not None and getattr(sub, "__origin__", None) is dict:
            sub = sub.__args__[1]
            if parts:
                parts.pop(0)  # the dict key (provider id)
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            model = sub
        else:
            return None
    return model


def _describe(err: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
        return f"unknown key (did you mean {close[0]!r}?)" if close else "unknown key"
    if kind == "too_short" and err.get("ctx", {}).get("min_length") == 1:
        return "must not be empty"
    if kind == "missing":
        return "required key is missing"
    if kind == "invalid_key" or (kind == "string_type" and err["loc"][-1:] == ("[key]",)):
        return f"keys must be strings, got {yaml_key(err.get('input'))}"
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if kind == "enum" and "expected" in err.get("ctx", {}):
        return f"must be one of {err['ctx']['expected']}, got {err['input']!r}"
    msg = msg.replace("Input should be", "must be").replace("List should have", "must have")
    if "input" in err and kind not in ("value_error", "assertion_error"):
        msg += f", got {err['input']!r}"
    return msg


def build_config(raw: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> Config:
    """Validate a parsed YAML document merged over the defaults and the environment."""
    env = os.environ if env is None else env
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"(top level): must be a mapping, got {type(raw).__name__}"])
    env_layer = _env_layer(env)
    doc = _merge(env_layer, raw)
    user_providers = doc.get("providers") or {}
    if not isinstance(user_providers, Mapping):
        problems.append(f"providers: must be a mapping, got {type(user_providers).__name__}")
        user_providers = {}
    providers: dict[str, Any] = {}
    for pid in dict.fromkeys([*PROVIDER_DEFAULTS, *user_providers]):
        over = user_providers.get(pid)
        if not isinstance(pid, str) or not _PROVIDER_ID.fullmatch(pid):
            problems.append(
                f"providers.{yaml_key(pid)}: provider ids must match [a-z][a-z0-9_]{{0,31}}"
            )
            continue
        if over is not None and not isinstance(over, Mapping):
            problems.append(f"providers.{pid}: must be a mapping, got {type(over).__name__}")
            continue
        providers[pid] = _merge(PROVIDER_DEFAULTS.get(pid, {}), over or {})
    doc["providers"] = providers
    env_keys = {("thresholds", k) for k in env_layer.get("thresholds", {})} | {
        (k,) for k in env_layer if k != "thresholds"
    }
    try:
        config = Config.model_validate(doc)
    except ValidationError as exc:
        problems += [
            f"{_path(e['loc'], env_keys, doc)}: {_describe(e, _model_at(e['loc']))}"
            for e in exc.errors()
        ]
    pricing = doc.get("pricing")
    overrides = pricing.get("overrides") if isinstance(pricing, Mapping) else None
    if isinstance(overrides, Mapping):
        problems += [
            f"pricing.overrides.{pid}: not a configured provider"
            for pid in overrides
            if isinstance(pid, str) and pid not in providers
        ]
    problems += _unset_secrets(doc.get("metrics_auth"), env)
    if problems:
        raise ConfigError(problems)
    return config


def _unset_secrets(auth: object, env: Mapping[str, str]) -> list[str]:
    """A problem for each secret variable that `metrics_auth` names but the environment lacks."""
    if not isinstance(auth, Mapping):
        return []
    return [
        f"metrics_auth.{key}: environment variable {name} is not set or empty"
        for key in ("bearer_token_env", "basic_password_env")
        if isinstance(name := auth.get(key), str)
        and _ENV_NAME.fullmatch(name)
        and not env.get(name, "").strip()
    ]


def load_config(
    path: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None
) -> Config:
    """Read and validate a YAML file; None means built-in defaults (plus the environment)."""
    if path is None:
        return build_config({}, env)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.load(fh, Loader=_UniqueKeyLoader)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: nested too deeply"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
        raise ConfigError([f"{path}: invalid YAML{where}: {problem}"]) from None
    return build_config(raw, env)
