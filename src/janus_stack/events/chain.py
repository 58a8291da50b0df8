"""The hash chain: how an event's hash is computed and how a chain is checked.

The rules live here, apart from the database, so an exported log (JSON
lines, a backup) can be checked with exactly the code the ledger uses.

An event's hash is ``sha256(prev_hash + canonical)`` in lowercase hex, where
``canonical`` is the UTF-8 JSON object::

    {"actor": ..., "payload": {...}, "seq": 1, "subject": ...,
     "tenant": ..., "time": "2026-01-02T03:04:05.123456Z", "type": ...}

written with sorted keys, no whitespace and ``ensure_ascii=False``; ``time``
is UTC with microseconds and a ``Z`` suffix. The first event's ``prev_hash``
is 64 zeros (``GENESIS_HASH``) and sequence numbers start at 1 with no gaps,
so deleting, editing or reordering any event breaks the chain at that point.
Dropping events from the *end* cannot be seen from the chain alone; keep an
out-of-band copy of ``head().hash`` when that matters.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from janus_stack.errors import InvalidInputError, PayloadTooLargeError

GENESIS_HASH = "0" * 64
FIRST_SEQ = 1


def canonical_json(value: Any) -> str:
    """The one JSON text of ``value`` that hashing uses; raises on non-JSON values."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _check_json(value: object, where: str) -> None:
    """Refuse what JSON would silently change (int keys, NaN) or cannot hold."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"event {where} is {value}, which JSON cannot hold")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"event {where} has the key {key!r}; JSON object keys must be strings"
                )
            _check_json(item, f"{where}[{key!r}]")
        return
    raise InvalidInputError(
        f"event {where} is a {type(value).__name__}, which is not a JSON value",
        hint="use str, int, float, bool, None, list or dict (e.g. isoformat() for datetimes)",
    )


def normalise_payload(payload: object, max_bytes: int) -> dict[str, Any]:
    """The payload exactly as it will read back, so its hash survives storage.

    Raises:
        InvalidInputError: not a dict, or holds something JSON cannot carry
            unchanged; the message names the offending path.
        PayloadTooLargeError: its canonical JSON exceeds ``max_bytes``.
    """
    if not isinstance(payload, dict):
        raise InvalidInputError(
            f"event payload must be a dict (a JSON object), got {type(payload).__name__}"
        )
    try:
        _check_json(payload, "payload")
        body = canonical_json(payload).encode("utf-8")
    except RecursionError as exc:
        raise InvalidInputError("event payload is nested too deeply (or refers to itself)") from exc
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"event payload holds text that is not valid Unicode: {exc.reason}"
        ) from exc
    if len(body) > max_bytes:
        raise PayloadTooLargeError(
            f"event payload is {len(body)} bytes as JSON; the limit is {max_bytes}",
            hint="store large content in the objects slot and put its key in the payload",
        )
    normalised: dict[str, Any] = json.loads(body)
    return normalised


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; naive values (how SQLite hands them back) are taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def time_text(moment: datetime) -> str:
    """ISO-8601 UTC with microseconds: fixed width, so equal instants hash equally."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(
    prev_hash: str,
    *,
    seq: int,
    time: datetime,
    tenant: str,
    actor: str,
    type: str,
    subject: str,
    payload: dict[str, Any],
) -> str:
    body = canonical_json(
        {
            "seq": seq,
            "time": time_text(time),
            "tenant": tenant,
            "actor": actor,
            "type": type,
            "subject": subject,
            "payload": payload,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class EventRecord:
    """One event as stored; ``hash`` seals every other field and ``prev_hash``."""

    seq: int
    time: datetime
    tenant: str
    actor: str
    type: str
    subject: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """The hash these fields should have; differs from ``hash`` after tampering."""
        return event_hash(
            self.prev_hash,
            seq=self.seq,
            time=self.time,
            tenant=self.tenant,
            actor=self.actor,
            type=self.type,
            subject=self.subject,
            payload=self.payload,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, e.g. for export; ``time`` in the hashed text form."""
        return {
            "seq": self.seq,
            "time": time_text(self.time),
            "tenant": self.tenant,
            "actor": self.actor,
            "type": self.type,
            "subject": self.subject,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of checking a chain.

    Attributes:
        ok: every event checked was intact and linked.
        checked: how many events were found intact before the first break.
        first_broken_seq: the first sequence number at which the chain is
            broken (for a gap, the first *missing* number), else ``None``.
        reason: what is wrong there; starts with ``"hash mismatch"``,
            ``"prev_hash does not link"`` or ``"gap before seq N"``.
    """

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None


class ChainChecker:
    """Checks events fed in seq order and remembers the first break.

    Kept incremental so ``EventLog.verify`` can stream a table of any size
    in batches without holding it in memory.
    """

    def __init__(self) -> None:
        self._expected_seq = FIRST_SEQ
        self._prev_hash = GENESIS_HASH
        self._checked = 0
        self._broken: tuple[int, str] | None = None

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def feed(self, record: EventRecord, *, unreadable: str | None = None) -> bool:
        """Check the next event; return False once the chain is known broken.

        ``unreadable`` says why a stored row could not be decoded (bad JSON,
        bad timestamp); such a row cannot hash to its stored value.
        """
        if self._broken is not None:
            return False
        if record.seq != self._expected_seq:
            if record.seq < self._expected_seq:
                problem = f"seq {record.seq} out of order after seq {self._expected_seq - 1}"
                self._broken = (record.seq, problem)
            else:
                missing = (
                    f"seq {self._expected_seq} is missing"
                    if record.seq == self._expected_seq + 1
                    else f"seq {self._expected_seq} to {record.seq - 1} are missing"
                )
                self._broken = (self._expected_seq, f"gap before seq {record.seq}: {missing}")
            return False
        if record.prev_hash != self._prev_hash:
            self._broken = (
                record.seq,
                f"prev_hash does not link: seq {record.seq} names {record.prev_hash[:12]}…, "
                f"the previous event's hash is {self._prev_hash[:12]}…",
            )
            return False
        if unreadable is not None:
            self._broken = (record.seq, f"hash mismatch: seq {record.seq} {unreadable}")
            return False
        expected = record.expected_hash()
        if record.hash != expected:
            self._broken = (
                record.seq,
                f"hash mismatch: seq {record.seq} stores {record.hash[:12]}…, "
                f"its fields hash to {expected[:12]}…",
            )
            return False
        self._checked += 1
        self._expected_seq = record.seq + 1
        self._prev_hash = record.hash
        return True

    def report(self) -> VerifyReport:
        if self._broken is None:
            return VerifyReport(ok=True, checked=self._checked)
        seq, reason = self._broken
        return VerifyReport(ok=False, checked=self._checked, first_broken_seq=seq, reason=reason)
