"""Durations the Prometheus way: `500ms`, `30s`, `5m`, `1h30m`, or a number of seconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")  # env vars arrive as strings: "10" means 10 s
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")


def parse_duration(value: object) -> float:
    """Seconds from a duration string or number; ValueError with a readable message otherwise."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number or (isinstance(value, str) and _NUMBER.fullmatch(value.strip())):
        seconds = float(value)  # type: ignore[arg-type]
    elif isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(value.strip()))
    else:
        msg = f"invalid duration {value!r} (use e.g. 30s, 5m, 1h)"
        raise ValueError(msg)
    if seconds <= 0:
        msg = f"duration must be positive, got {value!r}"
        raise ValueError(msg)
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling, for messages and docs: 90 -> '1m30s'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out, rest = [], seconds
    for unit in ("d", "h", "m"):
        n, rest = divmod(rest, _UNITS[unit])
        if n:
            out.append(f"{int(n)}{unit}")
    if rest or not out:
        out.append(f"{rest:g}s")
    return "".join(out)
