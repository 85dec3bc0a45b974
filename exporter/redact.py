"""Keeps API keys out of text: a secret registry, a scrub function and a logging filter."""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"


def _forms(secret: str) -> set[str]:
    """The secret as written and in its URL-encoded spellings (path and query style)."""
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)} - {""}


def _pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    forms = {form for secret in secrets if secret for form in _forms(secret)}
    if not forms:
        return None
    # Longest first, so a secret that contains another is replaced whole.
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret (and its URL-encoded form) replaced by `[REDACTED]`."""
    pattern = _pattern(s for s in secrets if s)
    return pattern.sub(REDACTED, text) if pattern else text


class SecretRegistry:
    """The secrets one app knows about; empty strings and None are ignored."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Register more secrets (thread-safe; log records may be scrubbed from any thread)."""
        with self._lock:
            self._secrets = self._secrets | {s for s in secrets if s}
            self._pattern = _pattern(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by `[REDACTED]`."""
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern else text


class RedactingFilter(logging.Filter):
    """Scrubs a record's message, arguments, exception and stack text; never drops a record.

    The message is rendered (msg % args) and scrubbed, and the exception text is pre-formatted,
    scrubbed and stored in `exc_text` with `exc_info` cleared, so no formatter can re-render
    the raw exception. Attach it to handlers (a logger filter does not see child loggers).
    """

    def __init__(self, registry: SecretRegistry, name: str = "") -> None:
        super().__init__(name)
        self._registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        scrub = self._registry.redact
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record (or leak its args)
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = scrub(message), None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True
