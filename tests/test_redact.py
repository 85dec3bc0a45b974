"""Secrets never survive redaction: raw, URL-encoded, in log messages, args and tracebacks."""

from __future__ import annotations

import io
import logging

import pytest

from exporter.redact import REDACTED, RedactingFilter, SecretRegistry, redact

KEY = "sk-live/abc+def=ghi 123"  # characters that URL-encode differently per style


@pytest.mark.parametrize(
    "text",
    [
        f"plain {KEY} end",
        "path https://x/v1?key=sk-live%2Fabc%2Bdef%3Dghi%20123 end",
        "query key=sk-live%2Fabc%2Bdef%3Dghi+123 end",
        "safe-slash sk-live/abc%2Bdef%3Dghi%20123 end",
        f"twice {KEY}{KEY}",
    ],
)
def test_every_form_is_replaced(text: str) -> None:
    out = redact(text, [KEY])
    assert REDACTED in out and "abc" not in out and "ghi" not in out


def test_nothing_to_redact() -> None:
    assert redact("hello", [None, ""]) == "hello"
    assert redact("hello", []) == "hello"


def test_longest_secret_wins() -> None:
    """A secret that contains another is replaced whole, not partially."""
    out = redact("token abcdef", ["abc", "abcdef"])
    assert out == f"token {REDACTED}"


def test_registry_add_and_ignore_empty() -> None:
    registry = SecretRegistry(["first-secret", None, ""])
    assert len(registry) == 1
    registry.add("second-secret")
    out = registry.redact("first-secret and second-secret and plain")
    assert out == f"{REDACTED} and {REDACTED} and plain"


def make_logger(registry: SecretRegistry) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(registry))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"test.redact.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_filter_scrubs_message_args_exception_and_stack() -> None:
    registry = SecretRegistry([KEY])
    logger, stream = make_logger(registry)
    logger.debug("msg %s", KEY)
    logger.info(f"inline {KEY}")
    logger.warning("dict %(k)s", {"k": KEY})
    try:
        raise RuntimeError(f"failed with {KEY}")
    except RuntimeError:
        logger.exception("boom")
    logger.error("stack", stack_info=True, extra={})
    text = stream.getvalue()
    assert KEY not in text and "abc+def" not in text
    assert text.count(REDACTED) >= 4
    assert "RuntimeError: failed with [REDACTED]" in text
    assert "Stack (most recent call last)" in text


def test_filter_survives_bad_format_and_keeps_record() -> None:
    registry = SecretRegistry([KEY])
    logger, stream = make_logger(registry)
    logger.info("two %s %s", KEY)  # wrong arity: still logged, still scrubbed
    text = stream.getvalue()
    assert text.startswith("INFO") and KEY not in text and REDACTED in text


def test_filter_with_empty_registry_passes_text_through() -> None:
    logger, stream = make_logger(SecretRegistry())
    logger.info("hello %s", "world")
    assert stream.getvalue() == "INFO hello world\n"
