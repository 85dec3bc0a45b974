"""Fuzzing the config loader: a Config or a ConfigError with YAML paths, never anything else."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, _merge, build_config, load_config
from exporter.config import Config as _Config
from exporter.vocab import PROVIDERS

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# "<yaml.path>: ..." where a path is dotted keys/indices, optionally "(from $VAR)"; or the file.
PATH_LINE = re.compile(r"^(\(top level\)|[^\s:][^:]*?)(?: \(from \$[A-Z_]+\))?: \S")

KNOWN_KEYS = [
    *_Config.model_fields,
    *PROVIDERS,
    "enabled", "api", "base_url", "api_key_env", "probe_model", "models", "checks",
    "interval", "billable_interval", "timeout", "token_env", "max_body_bytes", "max_batch",
    "dedup_window", "max_series", "ttl", "max_active", "max_recent", "error_rate",
    "response_time_seconds", "overrides", "input", "output", "max_concurrent_requests",
    "save_interval", "bearer_token_env", "basic_username", "basic_password_env",
]  # fmt: skip
AUTH_KEYS = ["bearer_token_env", "basic_username", "basic_password_env", "realm"]
# Non-string keys too: YAML has `true:`, `no:`, `null:`, `1.5:`, and each must get its own path.
key = st.one_of(
    st.sampled_from(KNOWN_KEYS),
    st.text(max_size=12),
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(),
)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["30s", "5m", "0s", "-1s", "1e9h", "http://127.0.0.1:1/v1", "openai", "?"]),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key, inner, max_size=5)),
    max_leaves=20,
)
# A document that reaches into the real structure, so deep paths get validated too.
structured = st.fixed_dictionaries(
    {},
    optional={
        "providers": st.dictionaries(
            st.one_of(st.sampled_from(PROVIDERS), st.text(max_size=8), st.booleans()),
            st.one_of(st.dictionaries(st.sampled_from(KNOWN_KEYS), value, max_size=4), value),
            max_size=3,
        ),
        "thresholds": st.dictionaries(st.sampled_from(KNOWN_KEYS), value, max_size=3),
        "ingest": st.dictionaries(st.sampled_from(KNOWN_KEYS), value, max_size=3),
        "sessions": st.dictionaries(st.sampled_from(KNOWN_KEYS), value, max_size=3),
        "metrics_auth": st.one_of(
            st.dictionaries(
                st.sampled_from(AUTH_KEYS),
                st.one_of(scalar, st.sampled_from(["METRICS_TOKEN", "UNSET_VAR", "prom", "a:b"])),
                max_size=3,
            ),
            value,
        ),
        "pricing": value,
        "listen": value,
        "monitoring_enabled": value,
    },
)
env = st.dictionaries(
    st.sampled_from(
        [
            "ALERT_ERROR_RATE_THRESHOLD",
            "MONITORING_ENABLED",
            "METRICS_RETENTION_DAYS",
            "X",
            "METRICS_TOKEN",
        ]
    ),
    st.text(max_size=8),
    max_size=2,
)


def spelled(key: Any) -> str:
    """A key as YAML writes it, which is how a problem's path must name it."""
    if key is None or isinstance(key, bool):
        return {None: "null", True: "true", False: "false"}[key]
    return str(key)


def check_outcome(build: Any, doc: Any = None, path: Path | None = None) -> None:
    """`build()` gives a Config, or a ConfigError whose every problem starts with a YAML path."""
    try:
        config = build()
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must list problems"
        # A path starts at a top-level key of the document (or a field the defaults add),
        # `(top level)`, or names the file for problems with the file itself.
        roots = {"(top level)", *_Config.model_fields}
        if isinstance(doc, dict):
            roots |= {spelled(k) for k in doc}
        if path is not None:
            roots.add(str(path))
        for problem in exc.problems:
            assert isinstance(problem, str)
            assert ": " in problem, problem
            assert any(problem.startswith(r) for r in roots), (problem, sorted(roots)[:20])
            assert ".[key]" not in problem, problem  # pydantic's own step, not a YAML path
        return
    assert isinstance(config, Config)


@FUZZ
@given(raw=st.one_of(value, structured), env=env)
def test_random_documents_give_a_config_or_path_prefixed_problems(raw: Any, env: dict) -> None:
    check_outcome(lambda: build_config(raw, env=env), raw)


@FUZZ
@given(over=st.dictionaries(key, value, max_size=4), where=st.sampled_from(
    [(), ("providers", "openai"), ("providers", "gemini"), ("ingest",), ("thresholds",),
     ("pricing", "overrides", "openai"), ("metrics_auth",), ("sessions",)]
))  # fmt: skip
def test_random_dicts_merged_into_a_valid_config(over: dict, where: tuple[str, ...]) -> None:
    base: dict[str, Any] = {"ingest": {"token_env": None}, "providers": {"openai": {}}}
    patch: Any = over
    for part in reversed(where):
        patch = {part: patch}
    doc = _merge(base, patch) if all(isinstance(k, str) for k in over) else {**base, **patch}
    check_outcome(lambda: build_config(doc, env={}), doc)


@FUZZ
@given(raw=st.one_of(value, structured))
def test_yaml_round_trip_through_a_file(tmp_path_factory: Any, raw: Any) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yml"
    try:
        path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    except (yaml.YAMLError, ValueError, UnicodeEncodeError):
        return  # not representable as YAML text (e.g. lone surrogates)
    check_outcome(lambda: load_config(path, env={}), raw, path)


@settings(FUZZ, max_examples=300)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_random_bytes_in_a_file_only_ever_raise_config_error(
    tmp_path_factory: Any, data: bytes
) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "c.yml"
    path.write_bytes(data)
    try:
        doc = yaml.safe_load(data)
    except (yaml.YAMLError, RecursionError):
        doc = None
    check_outcome(lambda: load_config(path, env={}), doc, path)


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['true']\n",
        "listen: a:1\nlisten: b:2\n",
        "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nthresholds: *c\n",
        "providers: !!binary aGVsbG8=\n",
        "\ufeffproviders: {openai: {interval: 1y}}\n",
    ],
    ids=["python-tag", "duplicate-key", "aliases", "binary-tag", "bom-bad-duration"],
)
def test_hostile_yaml_is_a_config_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert all(": " in p for p in info.value.problems)


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("false: 1\n", ["false: keys must be strings, got false"]),
        ("true: 1\n", ["true: keys must be strings, got true"]),
        ("no: 1\n", ["false: keys must be strings, got false"]),  # YAML 1.1 spells false `no`
        ("null: 1\n", ["null: keys must be strings, got null"]),
        ("1: 1\n", ["1: keys must be strings, got 1"]),
        ("ingest: {on: 1}\n", ["ingest.true: keys must be strings, got true"]),
        (
            "providers: {openai: {yes: 2}}\n",
            ["providers.openai.true: keys must be strings, got true"],
        ),
        (
            "providers: {true: {}}\n",
            ["providers.true: provider ids must match [a-z][a-z0-9_]{0,31}"],
        ),
        (
            "pricing: {overrides: {openai: {false: {input: 1, output: 1}}}}\n",
            ["pricing.overrides.openai.false: keys must be strings, got false"],
        ),
    ],
)
def test_non_string_keys_are_reported_at_their_path(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == expected
