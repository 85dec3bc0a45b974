"""Command line: `llm-exporter serve|check-config|simulate|demo`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from exporter import __version__
from exporter.config import ConfigError, load_config, parse_listen
from exporter.defaults import EXPORTER_PORT, SIMULATOR_PORT
from exporter.redact import RedactingFilter, SecretRegistry
from exporter.report import add_report_parser, cmd_report

log = logging.getLogger("exporter")


def _listen(value: str) -> tuple[str, int]:
    try:
        return parse_listen(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-exporter",
        description="Prometheus exporter for LLM providers: probes, traffic, cost and sessions.",
    )
    parser.add_argument("--version", action="version", version=f"llm-exporter {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the exporter (default)")
    serve.add_argument(
        "--config",
        default=os.environ.get("LLM_EXPORTER_CONFIG"),
        help="YAML config (env LLM_EXPORTER_CONFIG); built-in defaults without it",
    )
    serve.add_argument(
        "--listen", type=_listen, help=f"HOST:PORT (default 0.0.0.0:{EXPORTER_PORT})"
    )
    check = sub.add_parser("check-config", help="validate a config file and list every problem")
    check.add_argument("file")
    sim = sub.add_parser("simulate", help="serve the eight providers' wire formats on loopback")
    sim.add_argument("--listen", type=_listen, default=("127.0.0.1", SIMULATOR_PORT))
    demo = sub.add_parser("demo", help="simulator + exporter + synthetic traffic, no keys needed")
    demo.add_argument("--listen", type=_listen, default=("127.0.0.1", EXPORTER_PORT))
    demo.add_argument(
        "--simulator-listen",
        type=_listen,
        default=("127.0.0.1", SIMULATOR_PORT),
        help="where the demo's simulator listens",
    )
    demo.add_argument("--rate", type=float, default=4.0, help="synthetic calls per second")
    add_report_parser(sub)
    return parser


def setup_logging(level: str, secrets: SecretRegistry) -> None:
    """Log to stderr through a filter that scrubs every secret the app registers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def cmd_check_config(path: str) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    enabled = ", ".join(config.enabled_providers()) or "none"
    print(f"{path}: OK ({len(config.enabled_providers())} providers enabled: {enabled})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from exporter.runner import serve

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return 1
    host, port = args.listen or parse_listen(config.listen)
    secrets = SecretRegistry()
    setup_logging(args.log_level, secrets)
    return _run(serve(config, host, port, config_path=args.config, secrets=secrets))


def cmd_simulate(args: argparse.Namespace) -> int:
    from exporter.simulator import serve

    setup_logging(args.log_level, SecretRegistry())
    host, port = args.listen
    print(f"simulator: serving eight providers on http://{host}:{port}", flush=True)
    return _run(serve(host, port))


def cmd_demo(args: argparse.Namespace) -> int:
    from exporter.demo import run_demo

    secrets = SecretRegistry()
    setup_logging(args.log_level, secrets)
    return _run(run_demo(args.listen, args.simulator_listen, rate=args.rate, secrets=secrets))


def _run(coro: object) -> int:
    """Run until SIGINT/SIGTERM, then let the coroutine's own cleanup finish."""

    async def main() -> int:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            result = await task
        except asyncio.CancelledError:
            return 0
        return int(result or 0)

    try:
        return asyncio.run(main())
    except OSError as exc:  # e.g. address already in use
        print(f"llm-exporter: {exc.strerror or exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or sys.argv[1:]), "serve"])
    if args.command == "check-config":
        return cmd_check_config(args.file)
    if args.command == "simulate":
        return cmd_simulate(args)
    if args.command == "demo":
        return cmd_demo(args)
    if args.command == "report":
        return cmd_report(args)
    return cmd_serve(args)
