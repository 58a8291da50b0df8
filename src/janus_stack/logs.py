"""Structured logging (structlog) with secrets scrubbed from every event.

Every log line of the process is one JSON object on stderr: structlog's
own loggers and the standard library's (``logging.getLogger(...)``, used by
the API, the queue and the engine) go through the same processors, so
each line carries the fields bound in context — the ``request_id`` of the
API request or queued task it belongs to — and is scrubbed the same way.

Secret values resolved from slot URLs are collected once at start-up and
replaced by ``***`` in every rendered log line, whatever field carries them
— a URL in an exception message or a traceback included. API tokens
(``jns_<prefix>_<secret>``) keep their public prefix only, and a bearer
credential is masked whole.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from janus_stack.urls import MASK, redact

_HANDLER_NAME = "janus"
API_TOKEN = re.compile(r"\b(jns_[A-Za-z0-9]{1,32})_[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")


class SecretScrubber:
    """A structlog processor that masks known secrets, API tokens and URL passwords."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        if "jns_" in text:
            text = API_TOKEN.sub(rf"\1_{MASK}", text)
        if "earer" in text:
            text = _BEARER.sub(rf"\1{MASK}", text)
        return redact(text) if "://" in text and "@" in text else text

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        if isinstance(value, dict):
            return {key: self._value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._value(item) for item in value]
        return value

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key != "_record":  # the standard library's record, kept for the formatter
                event_dict[key] = self._value(value)
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


class _StderrHandler(logging.Handler):
    """The standard library's side of ``_StderrLogger``: the current ``sys.stderr``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:
            self.handleError(record)


def configure_logging(level: str, secrets: Iterable[str], *, json_output: bool = True) -> None:
    """Configure both logging systems of this process: JSON lines on stderr, secrets scrubbed."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        SecretScrubber(secrets),
    ]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_StderrLogger.factory,
        cache_logger_on_first_use=False,
    )
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    _remove_handler(root)
    root.addHandler(handler)
    root.setLevel(numeric)


def reset_logging() -> None:
    """Undo ``configure_logging`` (tests run many commands in one process)."""
    structlog.reset_defaults()
    root = logging.getLogger()
    _remove_handler(root)
    root.setLevel(logging.WARNING)


def _remove_handler(root: logging.Logger) -> None:
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
