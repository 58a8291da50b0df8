"""One attempt at a task, apart from the state machine: JSON checked going in and coming out.

A payload is stored and a result recorded as JSON, so both are put through a
JSON round trip here; a handler's exception or bad result becomes the error
text the ledger keeps, never an exception that escapes a worker thread.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from typing import Any

from janus_stack.errors import InvalidInputError, PayloadTooLargeError
from janus_stack.slots.queue.handlers import Handler, TaskOptions
from janus_stack.slots.queue.tasks import TaskRecord


def normalise_payload(name: str, payload: Mapping[str, Any], max_payload: int) -> dict[str, Any]:
    """``payload`` as the JSON round trip gives it back, within ``max_payload`` bytes."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"task {name!r}: payload must be a JSON object (dict), not {type(payload).__name__}"
        )
    try:
        text = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"task {name!r}: payload is not JSON-serialisable: {exc}") from exc
    size = len(text.encode("utf-8"))
    if size > max_payload:
        raise PayloadTooLargeError(
            f"task {name!r}: payload is {size} bytes of JSON; the limit is {max_payload}",
            hint="store large inputs in the objects slot and pass their key",
        )
    normalised: dict[str, Any] = json.loads(text)
    return normalised


def run_handler(
    record: TaskRecord, entry: tuple[Handler, TaskOptions] | None
) -> tuple[str | None, dict[str, Any] | None]:
    """Run the handler once: ``(error, None)`` if it failed, else ``(None, its JSON result)``."""
    if entry is None:
        return f"no handler registered for task {record.name!r} in this worker", None
    try:
        result = entry[0](dict(record.payload))
    except Exception as exc:
        trace = "".join(traceback.format_exception(exc))
        return f"{type(exc).__name__}: {exc}\n{trace}", None
    if result is None:
        return None, None
    if not isinstance(result, dict):
        return f"handler returned {type(result).__name__}; expected a dict or None", None
    try:
        clean: dict[str, Any] = json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return f"handler result is not JSON-serialisable: {exc}", None
    return None, clean
