"""A minimal server-sent events parser (the subset Janus sends: ``event`` and ``data``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AskEvent:
    """One event of ``POST /v1/ask`` with ``stream=true``.

    ``kind`` is ``retrieval``, ``token`` (``data["text"]``), ``answer`` (the
    full answer) or ``error``; comments and pings are skipped.
    """

    kind: str
    data: Any


@dataclass(frozen=True)
class RunEvent:
    """One update of a followed run (SSE or WebSocket).

    ``kind`` is ``event`` (an audit event of the run), ``token`` (``data["text"]``,
    ``data["step"]``), ``run`` (the run's record, on each status change),
    ``end`` (the run with its steps; the last one) or ``feedback`` (the
    server's acknowledgement of feedback sent over the WebSocket).
    """

    kind: str
    data: Any


class SSEDecoder:
    """Feed lines (without their line ending); get an event at each blank line."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []

    def feed(self, line: str) -> AskEvent | None:
        if not line:
            if not self._data:
                self._event = "message"
                return None
            text = "\n".join(self._data)
            kind, self._event, self._data = self._event, "message", []
            try:
                data: Any = json.loads(text)
            except ValueError:
                data = text
            return AskEvent(kind, data)
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        return None
