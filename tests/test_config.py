"""Config loading: defaults, merging, env vars, and one file per validation rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, build_config, load_config
from exporter.defaults import PROVIDER_DEFAULTS
from exporter.vocab import Check

TESTDATA = Path(__file__).parent / "testdata"
INVALID = sorted(TESTDATA.glob("invalid-*.yml"))


def expected_problems(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [
        line.removeprefix("# expect: ").replace("{file}", str(path))
        for line in lines
        if line.startswith("# expect: ")
    ]


def test_there_is_one_file_per_rule() -> None:
    """The table below is not empty and every file states what it expects."""
    assert len(INVALID) >= 20
    assert all(expected_problems(p) for p in INVALID)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_lists_every_problem_with_its_path(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == expected_problems(path)


def test_defaults_cover_the_eight_providers() -> None:
    config = load_config(None, env={})
    assert list(config.providers) == list(PROVIDER_DEFAULTS)
    openai = config.providers["openai"]
    assert openai.base_url == "https://api.openai.com/v1"
    assert openai.checks == [Check.MODELS, Check.COMPLETION, Check.STREAM]
    assert openai.interval == 30.0
    assert openai.billable_interval == 600.0
    assert config.listen == "0.0.0.0:9820"


def test_user_values_merge_over_defaults() -> None:
    config = build_config({"providers": {"anthropic": {"interval": "1m", "timeout": "5s"}}}, env={})
    anthropic = config.providers["anthropic"]
    assert (anthropic.interval, anthropic.timeout) == (60.0, 5.0)
    assert anthropic.base_url == PROVIDER_DEFAULTS["anthropic"]["base_url"]


def test_good_example_loads() -> None:
    config = load_config(TESTDATA / "good.yml", env={})
    assert not config.providers["gemini"].enabled
    assert "gemini" not in config.enabled_providers()
    assert config.providers["local_vllm"].checks == [Check.MODELS]


def test_limits_persistence_and_auth_defaults() -> None:
    config = load_config(None, env={})
    assert config.ingest.max_concurrent_requests == 256
    assert config.sessions.save_interval == 60.0
    assert config.metrics_auth is None
    off = build_config({"sessions": {"save_interval": None}}, env={})
    assert off.sessions.save_interval is None
    assert build_config({"sessions": {"save_interval": "5s"}}, env={}).sessions.save_interval == 5


def test_original_env_vars_set_thresholds_and_config_wins() -> None:
    env = {
        "ALERT_RESPONSE_TIME_THRESHOLD": "2.5",
        "ALERT_ERROR_RATE_THRESHOLD": "0.2",
        "ALERT_COST_HOURLY_THRESHOLD": "10",
        "MONITORING_ENABLED": "false",
        "METRICS_RETENTION_DAYS": "30",
        "DASHBOARD_REFRESH_INTERVAL": "10",
    }
    config = build_config({}, env=env)
    assert config.thresholds.response_time_seconds == 2.5
    assert config.thresholds.error_rate == 0.2
    assert config.thresholds.cost_hourly_usd == 10
    assert config.monitoring_enabled is False
    assert config.metrics_retention_days == 30
    assert config.dashboard_refresh_interval == 10
    config = build_config({"thresholds": {"error_rate": 0.3}}, env=env)
    assert config.thresholds.error_rate == 0.3


def test_bad_env_var_is_named_in_the_problem() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({}, env={"ALERT_ERROR_RATE_THRESHOLD": "lots"})
    assert info.value.problems == [
        "thresholds.error_rate (from $ALERT_ERROR_RATE_THRESHOLD): must be a valid number, "
        "unable to parse string as a number, got 'lots'"
    ]


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as info:
        load_config(missing, env={})
    assert info.value.problems == [f"{missing}: cannot read: No such file or directory"]


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("")
    assert load_config(empty, env={}) == load_config(None, env={})


def test_check_config_command_exit_codes() -> None:
    good = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(TESTDATA / "good.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "OK" in good.stdout
    bad_path = TESTDATA / "invalid-new-provider-incomplete.yml"
    bad = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(bad_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    for problem in expected_problems(bad_path):
        assert problem in bad.stderr
