"""docker-compose.yml: a real compose parser accepts it, and it runs the shipped configs safely."""

from __future__ import annotations

import re
import shutil
import subprocess
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests._grafana_helpers import COMPOSE_FILE, REPO, load_yaml

BASE_SERVICES = {"exporter", "prometheus", "alertmanager", "grafana"}
DEMO_SERVICES = {"demo", "mailpit"}
# Container ports that may be published, each only on ${BIND_ADDRESS} (loopback by default).
PUBLISHED = {"exporter": 9820, "prometheus": 9090, "alertmanager": 9093, "grafana": 3000,
             "mailpit": 8025, "demo": 9821}
HEALTH_PORTS = {**PUBLISHED, "demo": 9820}
# Where alertmanager/entrypoint.sh writes the rendered config, secrets and address templates.
ALERTMANAGER_RUNTIME = PurePosixPath("/tmp/llm-alertmanager")
NAMED_VOLUMES = {"prometheus": "/prometheus", "alertmanager": "/alertmanager",
                 "grafana": "/var/lib/grafana"}
SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET|WEBHOOK_URL)$")
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


def compose_command() -> list[str]:
    """Debian's docker-compose (v1, parses offline), else the docker compose v2 plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False).returncode == 0:
        return [docker, "compose"]
    pytest.fail("no compose parser: install the Debian package docker-compose")


def run_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    """Run the parser with a scrubbed environment, so only env_file feeds interpolation."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(env_file.parent)}
    return subprocess.run(
        [*compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False)


@pytest.fixture(scope="module")
def empty_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def resolved(empty_env: Path) -> dict[str, Any]:
    """The parser's normalised view of the file (all profiles), with no .env at all."""
    result = run_compose("--profile", "demo", "config", env_file=empty_env)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@cache
def raw() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def services() -> dict[str, dict[str, Any]]:
    return raw()["services"]


# ---------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("profile", [[], ["--profile", "demo"]], ids=["default", "demo"])
def test_real_compose_parser_accepts_the_file_without_any_env(profile: list[str],
                                                              empty_env: Path) -> None:
    """`config -q` passes with no .env and warns about no unset variable."""
    result = run_compose(*profile, "config", "-q", env_file=empty_env)
    assert result.returncode == 0, result.stderr
    assert "not set" not in result.stderr, result.stderr


def test_env_example_parses_and_sets_every_interpolated_variable() -> None:
    """.env.example lists every variable the compose file reads, and parses with it."""
    result = run_compose("--profile", "demo", "config", "-q", env_file=REPO / ".env.example")
    assert result.returncode == 0, result.stderr
    text = COMPOSE_FILE.read_text()
    wanted = set(INTERPOLATION.findall(text))
    for service in services().values():
        env = service.get("environment", [])
        wanted |= {item for item in env if isinstance(item, str) and "=" not in item}
    declared = {line.split("=", 1)[0] for line in (REPO / ".env.example").read_text().splitlines()
                if line and not line.startswith("#")}
    assert wanted - declared == set()


def test_profiles(resolved: dict[str, Any]) -> None:
    """The base stack has no profile; the demo profile adds the simulator and a mail catcher."""
    assert set(resolved["services"]) == BASE_SERVICES | DEMO_SERVICES
    for name in BASE_SERVICES:
        assert not services()[name].get("profiles"), name
    for name in DEMO_SERVICES:
        assert services()[name]["profiles"] == ["demo"], name


# ---------------------------------------------------------------------------- images, health


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    """Every image has an explicit version tag (never latest); built images carry ours."""
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version
    for name, service in resolved["services"].items():
        image = service.get("image", "")
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image!r} is not pinned"
        if "build" in service:
            assert image == f"llm-exporter:{version.group(1)}", name
            assert Path(service["build"]["context"]) == REPO
            assert (REPO / service["build"].get("dockerfile", "Dockerfile")).is_file()


def test_every_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    """Healthchecks everywhere, probing the service's own port, never disabled."""
    for name, service in resolved["services"].items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), name
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name
        port = HEALTH_PORTS[name]
        assert str(port) in " ".join(check["test"]) or name == "mailpit", name


def test_grafana_waits_for_prometheus(resolved: dict[str, Any]) -> None:
    depends = resolved["services"]["grafana"]["depends_on"]
    assert depends["prometheus"]["condition"] == "service_healthy"


# ---------------------------------------------------------------------------- ports, volumes


def test_only_needed_ports_are_published_on_the_bind_address(resolved: dict[str, Any]) -> None:
    """One port per service at most, bound to 127.0.0.1 unless BIND_ADDRESS says otherwise."""
    for name, service in resolved["services"].items():
        ports = service.get("ports", [])
        if name not in PUBLISHED:
            assert not ports, f"{name} publishes {ports}"
            continue
        assert len(ports) == 1, name
        host, _published, target = re.fullmatch(r"([\d.]+):(\d+):(\d+)(?:/tcp)?",
                                               str(ports[0])).groups()
        assert host == "127.0.0.1" and int(target) == PUBLISHED[name], ports
    for name, service in services().items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), name


def test_state_lives_in_named_volumes(resolved: dict[str, Any]) -> None:
    declared = set(resolved.get("volumes", {}))
    for name, path in NAMED_VOLUMES.items():
        volumes = resolved["services"][name]["volumes"]
        named = {v.split(":")[0] for v in volumes if v.split(":")[1] == path}
        assert named and named <= declared, f"{name}: {path} is not a named volume"


def bind_mounts(name: str) -> dict[str, str]:
    """Container path -> repo-relative source of a service's ./ bind mounts (all read-only)."""
    mounts = {}
    for volume in services()[name].get("volumes", []):
        parts = volume.split(":")
        if parts[0].startswith("./"):
            assert parts[-1] == "ro", f"{name}: {volume} must be read-only"
            assert (REPO / parts[0]).exists(), f"{name}: {parts[0]} does not exist"
            mounts[parts[1]] = parts[0]
    return mounts


def flag(name: str, option: str) -> str:
    """The value of --option=value in a service's command."""
    values = [arg.split("=", 1)[1] for arg in services()[name]["command"]
              if arg.startswith(f"--{option}=")]
    assert len(values) == 1, f"{name}: --{option}"
    return values[0]


def container_to_repo(mounts: dict[str, str], container_path: str) -> Path | None:
    """Map a path inside the container back to the repo through the bind mounts."""
    path = PurePosixPath(container_path)
    for target, source in mounts.items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return REPO / source / path.relative_to(target)
    return None


def test_prometheus_runs_the_shipped_config_and_rules() -> None:
    mounts = bind_mounts("prometheus")
    assert mounts[flag("prometheus", "config.file")] == "./prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/rules"] == "./prometheus/rules"
    config = load_yaml(REPO / "prometheus" / "prometheus.yml")
    rule_files = config.get("rule_files", [])
    assert rule_files, "the shipped prometheus.yml loads no rules"
    shipped = sorted(p.name for p in (REPO / "prometheus" / "rules").glob("*.y*ml"))
    for pattern in rule_files:
        pattern = str(PurePosixPath("/etc/prometheus") / pattern)  # relative to the config
        local = container_to_repo(mounts, pattern)
        assert local is not None, f"rule_files {pattern} is not mounted"
        assert [n for n in shipped if fnmatch(n, local.name)], f"{pattern} matches no rules"


def scrape_hosts(config: dict[str, Any]) -> set[str]:
    hosts = set()
    for job in config.get("scrape_configs", []):
        for static in job.get("static_configs", []):
            hosts |= {t.rsplit(":", 1)[0] for t in static.get("targets", [])}
        for dns in job.get("dns_sd_configs", []):
            hosts |= set(dns.get("names", []))
    return hosts


def test_prometheus_config_addresses_compose_services() -> None:
    """Every scrape and Alertmanager host in the shipped prometheus.yml is a compose service."""
    config = load_yaml(REPO / "prometheus" / "prometheus.yml")
    hosts = scrape_hosts(config) - {"localhost", "127.0.0.1"}
    for am in config.get("alerting", {}).get("alertmanagers", []):
        for static in am.get("static_configs", []):
            hosts |= {t.rsplit(":", 1)[0] for t in static.get("targets", [])}
    assert "exporter" in hosts and "alertmanager" in hosts
    assert hosts <= set(services()), hosts - set(services())


def test_demo_profile_exporter_is_scraped_without_a_down_target_otherwise() -> None:
    """`--profile demo` must feed the dashboards, yet plain `up` must not see a dead target.

    A static `demo:9820` target would be down without the profile (LLMExporterDown fires), so
    the shipped job must discover `demo` by DNS, which simply finds nothing when it is absent.
    """
    config = load_yaml(REPO / "prometheus" / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "llm-exporter"]
    static = {t for s in job.get("static_configs", []) for t in s.get("targets", [])}
    dns = {n for d in job.get("dns_sd_configs", []) for n in d.get("names", [])}
    assert "demo:9820" not in static, "a static demo target is down without the demo profile"
    assert "demo" in dns, "the demo profile's exporter (service demo) is never scraped"
    assert all(d.get("port") == 9820 for d in job.get("dns_sd_configs", []))


def test_alertmanager_runs_the_shipped_config_and_templates() -> None:
    """The shipped config, templates and entrypoint; runtime files only under a tmpfs /tmp."""
    mounts = bind_mounts("alertmanager")
    assert mounts[flag("alertmanager", "config.file")] == "./alertmanager/alertmanager.yml"
    assert mounts["/etc/alertmanager/templates"] == "./alertmanager/templates"
    service = services()["alertmanager"]
    entrypoint = service["entrypoint"]
    assert entrypoint[0] == "/bin/sh"
    assert container_to_repo(mounts, entrypoint[1]) == REPO / "alertmanager" / "entrypoint.sh"
    assert "/tmp" in service["tmpfs"]
    config = load_yaml(REPO / "alertmanager" / "alertmanager.yml")
    for pattern in config.get("templates", []):
        path = PurePosixPath("/etc/alertmanager") / pattern
        if ALERTMANAGER_RUNTIME in path.parents:
            continue  # address templates the entrypoint writes at start-up
        local = container_to_repo(mounts, str(path))
        assert local is not None, f"template {path} is not mounted"
        assert list(local.parent.glob(local.name)), f"{path} matches no template"
    for key, value in config["global"].items():
        if key.endswith("_file"):
            assert ALERTMANAGER_RUNTIME in PurePosixPath(value).parents, key
    assert flag("alertmanager", "cluster.listen-address") == "", "single node: no gossip"


def test_alertmanager_gets_every_destination_the_entrypoint_reads() -> None:
    """Each variable alertmanager/entrypoint.sh renders in is passed from .env."""
    script = (REPO / "alertmanager" / "entrypoint.sh").read_text()
    read = set(re.findall(r"\b((?:ALERT|SMTP|SLACK)_[A-Z_]+)\b", script))
    read = {name for name in read if not name.endswith("_FILE")}
    passed = {item.partition("=")[0] for item in services()["alertmanager"]["environment"]}
    assert read and read <= passed, read - passed


def test_grafana_mounts_provisioning_and_dashboards() -> None:
    mounts = bind_mounts("grafana")
    assert mounts == {"/etc/grafana/provisioning": "./grafana/provisioning",
                      "/etc/grafana/dashboards": "./grafana/dashboards"}
    env = dict(item.split("=", 1) for item in services()["grafana"]["environment"])
    home = container_to_repo(mounts, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


# ---------------------------------------------------------------------------- exporter, secrets


def test_exporter_and_demo_commands() -> None:
    """The exporter serves on 9820; the demo profile runs simulator + exporter + traffic."""
    assert services()["exporter"]["command"] == ["serve", "--listen", "0.0.0.0:9820"]
    demo = services()["demo"]["command"]
    assert demo[:3] == ["demo", "--listen", "0.0.0.0:9820"]
    assert demo[demo.index("--simulator-listen") + 1] == "0.0.0.0:9821"
    for name in ("exporter", "demo"):
        assert services()[name]["read_only"] is True
        assert services()[name]["cap_drop"] == ["ALL"]


def test_no_secret_values_in_the_compose_file() -> None:
    """Keys, tokens and passwords only come from the environment (.env), never literals."""
    for name, service in services().items():
        for item in service.get("environment", []):
            key, sep, value = item.partition("=")
            if SECRET_NAME.search(key):
                assert not sep or INTERPOLATION.fullmatch(value), f"{name}: {key} is inline"


def test_env_example_holds_no_secrets() -> None:
    for line in (REPO / ".env.example").read_text().splitlines():
        key, _, value = line.partition("=")
        if SECRET_NAME.search(key) and not key.startswith("#"):
            assert value == "" or value == "admin", f".env.example sets {key}"


def test_no_real_env_file_is_committed() -> None:
    """.env is ignored by git and by the Docker build context, and not tracked."""
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", ".env"], cwd=REPO,
                             capture_output=True, text=True, check=False)
    assert tracked.returncode != 0, ".env is tracked by git"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env is not in .gitignore"
    dockerignore = (REPO / ".dockerignore").read_text().splitlines()
    assert dockerignore[next(i for i, x in enumerate(dockerignore) if x and x[0] != "#")] == "*"
    assert ".env" in dockerignore and "!.env" not in dockerignore


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    assert "FROM python:3.11-slim" in lines
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any(line.startswith("HEALTHCHECK ") for line in lines)
    assert "EXPOSE 9820" in lines
    assert 'ENTRYPOINT ["llm-exporter"]' in lines
    assert any("pip install ." in line for line in lines)
