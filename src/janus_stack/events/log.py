"""The event log over the ledger's ``events`` table.

Appends are serialised so the chain never forks: each append reads the head
and writes ``head.seq + 1`` inside one transaction that only one appender
may hold at a time — a transaction-scoped advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` (the database write lock) on SQLite. That holds across
threads, processes and, on PostgreSQL, machines. The ``seq`` primary key is
the last guard: a writer that bypasses the lock makes the insert fail, and
the append retries on the new head instead of forking.

Reads decode ``time`` and ``payload`` themselves rather than trusting the
column types, so a tampered SQLite row is reported by ``verify`` instead of
crashing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Select, String, Text, cast, func, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.sql.elements import ColumnElement

from janus_stack.errors import (
    IntegrityError,
    InvalidInputError,
    SlotUnavailableError,
)
from janus_stack.events.chain import (
    FIRST_SEQ,
    GENESIS_HASH,
    ChainChecker,
    EventRecord,
    VerifyReport,
    as_utc,
    normalise_payload,
)
from janus_stack.ids import check_tenant
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Event

# The advisory lock every appender takes: ASCII "JanusLog" as a bigint. Other
# code using advisory locks in the same database must pick different keys.
_PG_LOCK_KEY = 0x4A616E75734C6F67
_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_FAMILY_SUFFIX = ".*"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_LIMIT = 10_000
# Lengths fit the columns; ``subject`` is capped so its btree index entry stays
# under PostgreSQL's ~2.7 kB limit even for 4-byte characters.
_MAX_LENGTH = {"actor": 200, "type": 100, "subject": 500}


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _check_text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"event {field} must be a non-empty string, got {value!r}")
    if len(value) > _MAX_LENGTH[field]:
        raise InvalidInputError(
            f"event {field} is {len(value)} characters long; the limit is {_MAX_LENGTH[field]}"
        )
    if "\x00" in value:
        raise InvalidInputError(f"event {field} contains a NUL character, which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"event {field} is not valid Unicode: {exc.reason}") from exc
    return value


def _check_type(value: object) -> str:
    checked = _check_text("type", value)
    if not _TYPE.fullmatch(checked):
        raise InvalidInputError(
            f"event type {checked!r} is invalid: use letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit (e.g. 'ingest.document.added')"
        )
    return checked


def _check_moment(field: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(
            f"query {field} must be a timezone-aware datetime, got {value!r}",
            hint="use datetime.now(UTC) or attach a tzinfo",
        )
    return value.astimezone(UTC)


@dataclass(frozen=True)
class _Draft:
    """An event's validated fields, before the log gives it a seq, time and hash."""

    tenant: str
    actor: str
    type: str
    subject: str
    payload: dict[str, Any]


def _decode(row: Any) -> tuple[EventRecord, str | None]:
    """A stored row as a record, plus what made it unreadable (if anything)."""
    problems: list[str] = []
    time = row.time
    if isinstance(time, str):
        try:
            time = datetime.fromisoformat(time)
        except ValueError:
            problems.append(f"time {time!r} is not a timestamp")
            time = _EPOCH
    payload: Any = {}
    try:
        payload = json.loads(row.payload)
    except (TypeError, ValueError):
        problems.append("payload is not valid JSON")
    if not isinstance(payload, dict):
        problems.append("payload is not a JSON object")
        payload = {}
    record = EventRecord(
        seq=int(row.seq),
        time=as_utc(time),
        tenant=row.tenant_id,
        actor=row.actor,
        type=row.type,
        subject=row.subject,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
    return record, "; ".join(problems) or None


class EventLog:
    """Append-only, hash-chained log of everything that changes state.

    Constructing it does no I/O; the ledger must be open and migrated.
    """

    def __init__(
        self, ledger: Ledger, *, max_payload_bytes: int = 1_000_000, max_attempts: int = 5
    ) -> None:
        self._ledger = ledger
        self._max_payload_bytes = max_payload_bytes
        self._max_attempts = max_attempts

    # -- writing -----------------------------------------------------------

    def append(
        self, *, tenant: str, actor: str, type: str, subject: str, payload: dict[str, Any]
    ) -> EventRecord:
        """Append one event and return it as stored, hash included.

        Raises:
            InvalidInputError: a field is unusable (the message names it).
            PayloadTooLargeError: the payload exceeds ``max_payload_bytes``.
            IntegrityError: the insert kept conflicting with other writers.
        """
        draft = _Draft(
            tenant=check_tenant(tenant),
            actor=_check_text("actor", actor),
            type=_check_type(type),
            subject=_check_text("subject", subject),
            payload=normalise_payload(payload, self._max_payload_bytes),
        )
        conflict: sa_exc.IntegrityError | None = None
        for _attempt in range(self._max_attempts):
            try:
                with self._serialised() as connection:
                    return self._append_locked(connection, draft)
            except sa_exc.IntegrityError as exc:
                conflict = exc  # another writer took this seq without the lock; retry
            except sa_exc.OperationalError as exc:
                raise SlotUnavailableError(
                    f"events: could not append: {_first_line(exc.orig)}",
                    hint="check that the database is reachable; on SQLite, another process "
                    "may have held the write lock longer than the busy timeout",
                ) from exc
        raise IntegrityError(
            f"events: append lost {self._max_attempts} races for the next seq; "
            f"last conflict: {_first_line(conflict.orig if conflict else None)}",
            hint="something writes to the events table without EventLog's lock",
        )

    def _append_locked(self, connection: Connection, draft: _Draft) -> EventRecord:
        head = connection.execute(
            select(Event.seq, Event.hash).order_by(Event.seq.desc()).limit(1)
        ).first()
        seq = FIRST_SEQ if head is None else int(head.seq) + 1
        prev_hash = GENESIS_HASH if head is None else str(head.hash)
        now = datetime.now(UTC)
        record = EventRecord(
            seq=seq,
            time=now,
            tenant=draft.tenant,
            actor=draft.actor,
            type=draft.type,
            subject=draft.subject,
            payload=draft.payload,
            prev_hash=prev_hash,
            hash=GENESIS_HASH,
        )
        record = replace(record, hash=record.expected_hash())
        connection.execute(
            insert(Event).values(
                seq=record.seq,
                time=record.time,
                tenant_id=record.tenant,
                actor=record.actor,
                type=record.type,
                subject=record.subject,
                payload=record.payload,
                prev_hash=record.prev_hash,
                hash=record.hash,
            )
        )
        return record

    @contextmanager
    def _serialised(self) -> Iterator[Connection]:
        """A transaction no other appender can run alongside, committed on success."""
        engine = self._ledger.engine
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY}
                )
                yield connection
            return
        # pysqlite would open a deferred transaction, whose later upgrade to a
        # write lock fails at once under contention; take the lock up front.
        with engine.connect() as plain:
            connection = plain.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                # SQLite may already have rolled back (e.g. disk full); keep the first error.
                with suppress(sa_exc.DBAPIError):
                    connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")

    # -- reading -----------------------------------------------------------

    def _select(self) -> Select[Any]:
        # SQLite hands back whatever text a row holds; read it raw and parse it here.
        time: ColumnElement[Any] = Event.time.expression
        if self._ledger.engine.dialect.name == "sqlite":
            time = cast(Event.time, String).label("time")
        return select(
            Event.seq,
            time,
            Event.tenant_id,
            Event.actor,
            Event.type,
            Event.subject,
            cast(Event.payload, Text).label("payload"),
            Event.prev_hash,
            Event.hash,
        )

    def query(
        self,
        *,
        tenant: str | None = None,
        type: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events matching every given filter, oldest first.

        Args:
            type: an exact type, or a family ``"ingest.*"`` matching every type
                that starts with ``"ingest."`` (not ``"ingest"`` itself).
            since: inclusive lower bound on ``time``; timezone-aware.
            until: exclusive upper bound on ``time``; timezone-aware.
            after_seq: page on from the last ``seq`` of the previous page.
            limit: at most this many events, 1 to 10,000.
        """
        if not isinstance(limit, int) or not 1 <= limit <= MAX_QUERY_LIMIT:
            raise InvalidInputError(f"query limit must be 1 to {MAX_QUERY_LIMIT}, got {limit!r}")
        statement = self._select().order_by(Event.seq).limit(limit)
        if tenant is not None:
            statement = statement.where(Event.tenant_id == check_tenant(tenant))
        if type is not None:
            if type.endswith(_FAMILY_SUFFIX):
                prefix = _check_type(type[: -len(_FAMILY_SUFFIX)]) + "."
                # substr, not LIKE: SQLite's LIKE ignores case, PostgreSQL's does not.
                statement = statement.where(func.substr(Event.type, 1, len(prefix)) == prefix)
            else:
                statement = statement.where(Event.type == _check_type(type))
        if actor is not None:
            statement = statement.where(Event.actor == _check_text("actor", actor))
        if subject is not None:
            statement = statement.where(Event.subject == _check_text("subject", subject))
        if since is not None:
            statement = statement.where(Event.time >= _check_moment("since", since))
        if until is not None:
            statement = statement.where(Event.time < _check_moment("until", until))
        if after_seq is not None:
            if not isinstance(after_seq, int) or after_seq < 0:
                raise InvalidInputError(f"query after_seq must be an int >= 0, got {after_seq!r}")
            statement = statement.where(Event.seq > after_seq)
        with self._ledger.engine.connect() as connection:
            rows = connection.execute(statement).all()
        records = []
        for row in rows:
            record, problem = _decode(row)
            if problem is not None:
                raise IntegrityError(
                    f"events: seq {record.seq} is unreadable ({problem})",
                    hint="run `janus audit verify`; the log has been tampered with",
                )
            records.append(record)
        return records

    def head(self) -> EventRecord | None:
        """The newest event, or None for an empty log."""
        statement = self._select().order_by(Event.seq.desc()).limit(1)
        with self._ledger.engine.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else _decode(row)[0]

    def count(self, *, tenant: str | None = None) -> int:
        statement = select(func.count()).select_from(Event)
        if tenant is not None:
            statement = statement.where(Event.tenant_id == check_tenant(tenant))
        with self._ledger.engine.connect() as connection:
            return int(connection.execute(statement).scalar_one())

    def verify(self, *, batch: int = 1000) -> VerifyReport:
        """Recompute every hash and link in seq order; report the first break.

        Streams ``batch`` rows at a time, so memory stays flat on any size of
        log. Events appended while it runs are checked too.
        """
        if not isinstance(batch, int) or batch < 1:
            raise InvalidInputError(f"verify batch must be an int >= 1, got {batch!r}")
        checker = ChainChecker()
        last_seq = 0
        with self._ledger.engine.connect() as connection:
            while True:
                statement = (
                    self._select().where(Event.seq > last_seq).order_by(Event.seq).limit(batch)
                )
                rows = connection.execute(statement).all()
                for row in rows:
                    record, problem = _decode(row)
                    if not checker.feed(record, unreadable=problem):
                        return checker.report()
                    last_seq = record.seq
                if len(rows) < batch:
                    return checker.report()
