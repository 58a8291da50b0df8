"""Structured logging (structlog) with secrets scrubbed from every event.

Secret values resolved from slot URLs are collected once at start-up and
replaced by ``***`` in every rendered log line, whatever field carries them
— a URL in an exception message included.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from janus_stack.urls import MASK, redact


class SecretScrubber:
    """A structlog processor that masks known secret values and URL passwords."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return redact(text) if "://" in text and "@" in text else text

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if isinstance(value, str):
                event_dict[key] = self.scrub(value)
            elif isinstance(value, BaseException):
                event_dict[key] = self.scrub(f"{type(value).__name__}: {value}")
        return event_dict


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now*.

    structlog's PrintLogger keeps the stream it was created with; in a
    process that swaps stderr (a test runner capturing a command's output)
    it would write to a closed stream after the swap.
    """

    @classmethod
    def factory(cls, *_args: Any) -> _StderrLogger:
        return cls()

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def configure_logging(level: str, secrets: Iterable[str], *, json_output: bool = True) -> None:
    """Configure structlog for this process: JSON lines on stderr, secrets scrubbed."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            SecretScrubber(secrets),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_StderrLogger.factory,
        cache_logger_on_first_use=False,
    )
