"""The request ID: one per API request, followed into logs, events, spans and queued tasks.

The API assigns it (keeping a client's ``X-Request-ID`` when it is a sane
token) and binds it here for the duration of the request. Binding uses
context variables, so it follows the request onto the worker threads that
run Janus calls (anyio copies the context) and into structlog's context,
which puts it on every log line. A queued task carries it in its trace
context, and the worker binds it again while the task runs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import structlog

from janus_stack.logs import API_TOKEN

REQUEST_ID_HEADER = "x-request-id"
REQUEST_ID_KEY = "request_id"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_current: ContextVar[str | None] = ContextVar("janus_request_id", default=None)


def current_request_id() -> str | None:
    """The request ID bound to this context (an API request or a task it queued), if any."""
    return _current.get()


def accept_request_id(offered: str | None) -> str:
    """The client's ID when it is a sane token (1-128 of ``A-Za-z0-9._:-``), else a new one.

    Anything else (a long string, spaces, control characters) is replaced
    rather than refused: a request ID must never be the reason a request
    fails, and an unchecked one could forge log lines. An ID shaped like an
    API token is replaced too: it would be stored in the event log.
    """
    if offered is not None and _SANE.fullmatch(offered) and not API_TOKEN.search(offered):
        return offered
    return uuid.uuid4().hex


def with_request_id(payload: dict[str, Any]) -> dict[str, Any]:
    """An event payload plus the current request ID under ``request_id``.

    A payload that already names a ``request_id`` keeps its own; anything
    that is not a dict is returned untouched for the event log to refuse.
    """
    request_id = _current.get()
    if request_id is None or not isinstance(payload, dict) or REQUEST_ID_KEY in payload:
        return payload
    return {**payload, REQUEST_ID_KEY: request_id}


@contextmanager
def bound_request_id(request_id: str | None) -> Iterator[None]:
    """Make ``request_id`` current (and a structlog field) inside the block; None binds nothing."""
    if request_id is None:
        yield
        return
    token = _current.set(request_id)
    try:
        with structlog.contextvars.bound_contextvars(**{REQUEST_ID_KEY: request_id}):
            yield
    finally:
        _current.reset(token)
