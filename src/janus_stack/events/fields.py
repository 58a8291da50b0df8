"""What an event's fields may hold: the checks every append and query filter runs.

Kept apart from :mod:`janus_stack.events.log` so a caller can validate an
event (:class:`EventDraft`) before the transaction that appends it opens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from janus_stack.errors import InvalidInputError

TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
# Lengths fit the columns; ``subject`` is capped so its btree index entry stays
# under PostgreSQL's ~2.7 kB limit even for 4-byte characters.
MAX_LENGTH = {"actor": 200, "type": 100, "subject": 500}


def check_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"event {field} must be a non-empty string, got {value!r}")
    if len(value) > MAX_LENGTH[field]:
        raise InvalidInputError(
            f"event {field} is {len(value)} characters long; the limit is {MAX_LENGTH[field]}"
        )
    if "\x00" in value:
        raise InvalidInputError(f"event {field} contains a NUL character, which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"event {field} is not valid Unicode: {exc.reason}") from exc
    return value


def check_type(value: object) -> str:
    checked = check_text("type", value)
    if not TYPE.fullmatch(checked):
        raise InvalidInputError(
            f"event type {checked!r} is invalid: use letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit (e.g. 'ingest.document.added')"
        )
    return checked


def check_moment(field: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(
            f"query {field} must be a timezone-aware datetime, got {value!r}",
            hint="use datetime.now(UTC) or attach a tzinfo",
        )
    return value.astimezone(UTC)


@dataclass(frozen=True)
class EventDraft:
    """An event's validated fields, before the log gives it a seq, time and hash."""

    tenant: str
    actor: str
    type: str
    subject: str
    payload: dict[str, Any]
