"""A simulator and an exporter probing it, as subprocesses on loopback, for the benchmarks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from typing import IO, Any

from exporter.defaults import PROVIDER_DEFAULTS, SIMULATOR_ROOTS
from exporter.vocab import PROVIDERS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """`llm-exporter simulate` and `llm-exporter serve` with all eight providers on it."""

    def __init__(self, name: str, provider_settings: dict[str, Any] | None = None) -> None:
        self.sim_port, self.port = free_port(), free_port()
        self.work = tempfile.mkdtemp(prefix=f"{name}-")
        cfg = os.path.join(self.work, f"{name}.yml")
        root = f"http://127.0.0.1:{self.sim_port}"
        providers = {p: {"base_url": f"{root}{SIMULATOR_ROOTS[p]}", **(provider_settings or {})}
                     for p in PROVIDERS}  # fmt: skip
        with open(cfg, "w") as fh:
            json.dump({"providers": providers, "ingest": {"token_env": None}}, fh)  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env |= {PROVIDER_DEFAULTS[p]["api_key_env"]: f"sk-{name}-{p}" for p in PROVIDERS}
        env.pop("LLM_EXPORTER_INGEST_TOKEN", None)
        py = [sys.executable, "-m", "exporter", "--log-level", "warning"]
        self.logs: IO[bytes] = open(os.path.join(self.work, "logs.txt"), "wb")  # noqa: SIM115
        listen = ["--listen", f"127.0.0.1:{self.sim_port}"]
        self.sim = subprocess.Popen([*py, "simulate", *listen], stdout=self.logs, stderr=self.logs)
        self.exp = subprocess.Popen(
            [*py, "serve", "--config", cfg, "--listen", f"127.0.0.1:{self.port}"],
            env=env, stdout=self.logs, stderr=self.logs,
        )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM both (the exporter's exit code stays in `exp.returncode`), SIGKILL stragglers."""
        for p in (self.exp, self.sim):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.logs.close()
