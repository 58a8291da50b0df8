"""The event log over the ledger's ``events`` table.

Appends are serialised so the chain never forks: each append reads the head
and writes ``head.seq + 1`` inside one transaction that only one appender
may hold at a time — a transaction-scoped advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` (the database write lock) on SQLite. That holds across
threads, processes and, on PostgreSQL, machines. The ``seq`` primary key is
the last guard: a writer that bypasses the lock makes the insert fail, and
the append retries on the new head instead of forking.

:meth:`EventLog.append_with` runs a caller's own writes in that same
transaction and appends its events after them, so a state change and the
events that record it commit together or not at all (the workflow engine
commits a step's outcome this way); :meth:`EventLog.draft` validates an
event before any transaction opens.

Reads decode ``time`` and ``payload`` themselves rather than trusting the
column types, so a tampered SQLite row is reported by ``verify`` instead of
crashing it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from typing import cast as cast_type

from sqlalchemy import Connection, Select, String, Table, Text, cast, func, insert, select, text
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
from janus_stack.events.fields import EventDraft, check_moment, check_text, check_type
from janus_stack.ids import check_tenant
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Event
from janus_stack.telemetry.requests import with_request_id

# The advisory lock every appender takes: ASCII "JanusLog" as a bigint. Other
# code using advisory locks in the same database must pick different keys.
_PG_LOCK_KEY = 0x4A616E75734C6F67
_FAMILY_SUFFIX = ".*"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_QUERY_LIMIT = 10_000
T = TypeVar("T")
# The append path's statements, built once on the table (not the ORM class): each
# append then reuses their compiled form.
_EVENTS = cast_type(Table, Event.__table__)
_HEAD = select(_EVENTS.c.seq, _EVENTS.c.hash).order_by(_EVENTS.c.seq.desc()).limit(1)
_INSERT = insert(_EVENTS)


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class _SeqTakenError(Exception):
    """The events insert lost the next seq to a writer that bypassed the lock."""


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

    def draft(
        self, *, tenant: str, actor: str, type: str, subject: str, payload: dict[str, Any]
    ) -> EventDraft:
        """Validate an event without writing it (see :meth:`append` for the errors)."""
        return EventDraft(
            tenant=check_tenant(tenant),
            actor=check_text("actor", actor),
            type=check_type(type),
            subject=check_text("subject", subject),
            payload=normalise_payload(with_request_id(payload), self._max_payload_bytes),
        )

    def append(
        self, *, tenant: str, actor: str, type: str, subject: str, payload: dict[str, Any]
    ) -> EventRecord:
        """Append one event and return it as stored, hash included.

        Raises:
            InvalidInputError: a field is unusable (the message names it).
            PayloadTooLargeError: the payload exceeds ``max_payload_bytes``.
            IntegrityError: the insert kept conflicting with other writers.
        """
        draft = self.draft(tenant=tenant, actor=actor, type=type, subject=subject, payload=payload)
        return self.append_many([draft])[0]

    def append_many(self, drafts: Sequence[EventDraft]) -> list[EventRecord]:
        """Append several events in one transaction, consecutive in the chain."""
        _nothing, records = self.append_with(lambda _connection: None, drafts)
        return records

    def append_with(
        self,
        write: Callable[[Connection], T],
        drafts: Sequence[EventDraft],
    ) -> tuple[T, list[EventRecord]]:
        """Run ``write`` and append ``drafts`` after it, in one serialised transaction.

        Returns what ``write`` returned and the events as stored. ``write``
        may run more than once: when another writer bypassed the lock and
        took the next seq, the whole transaction is rolled back and redone on
        the new head, so it must only touch the database. What it raises
        rolls everything back and propagates unchanged, but for the database
        being unusable.

        Raises:
            IntegrityError: the events insert kept conflicting with other writers.
            SlotUnavailableError: the database could not be written (or locked).
        """
        conflict: BaseException | None = None
        for _attempt in range(self._max_attempts):
            try:
                with self._serialised() as connection:
                    result = write(connection)
                    records = self._insert_locked(connection, drafts)
            except _SeqTakenError as exc:
                conflict = exc.__cause__  # another writer took this seq without the lock
                continue
            except sa_exc.OperationalError as exc:
                raise SlotUnavailableError(
                    f"events: could not append: {_first_line(exc.orig)}",
                    hint="check that the database is reachable; on SQLite, another process "
                    "may have held the write lock longer than the busy timeout",
                ) from exc
            return result, records
        orig = getattr(conflict, "orig", conflict)
        raise IntegrityError(
            f"events: append lost {self._max_attempts} races for the next seq; "
            f"last conflict: {_first_line(orig)}",
            hint="something writes to the events table without EventLog's lock",
        )

    def _insert_locked(
        self, connection: Connection, drafts: Sequence[EventDraft]
    ) -> list[EventRecord]:
        """Chain ``drafts`` onto the head and insert them; the caller holds the lock."""
        if not drafts:
            return []
        head = connection.execute(_HEAD).first()
        seq = FIRST_SEQ if head is None else int(head.seq) + 1
        prev_hash = GENESIS_HASH if head is None else str(head.hash)
        now = datetime.now(UTC)
        records: list[EventRecord] = []
        for offset, draft in enumerate(drafts):
            unsealed = EventRecord(
                seq=seq + offset,
                time=now,
                tenant=draft.tenant,
                actor=draft.actor,
                type=draft.type,
                subject=draft.subject,
                payload=draft.payload,
                prev_hash=prev_hash,
                hash="",
            )
            # Sealed by the same method verification uses, so the two cannot drift.
            record = replace(unsealed, hash=unsealed.expected_hash())
            records.append(record)
            prev_hash = record.hash
        try:
            connection.execute(
                _INSERT,
                [
                    {
                        "seq": record.seq,
                        "time": record.time,
                        "tenant_id": record.tenant,
                        "actor": record.actor,
                        "type": record.type,
                        "subject": record.subject,
                        "payload": record.payload,
                        "prev_hash": record.prev_hash,
                        "hash": record.hash,
                    }
                    for record in records
                ],
            )
        except sa_exc.IntegrityError as exc:
            raise _SeqTakenError() from exc
        return records

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
                prefix = check_type(type[: -len(_FAMILY_SUFFIX)]) + "."
                # substr, not LIKE: SQLite's LIKE ignores case, PostgreSQL's does not.
                statement = statement.where(func.substr(Event.type, 1, len(prefix)) == prefix)
            else:
                statement = statement.where(Event.type == check_type(type))
        if actor is not None:
            statement = statement.where(Event.actor == check_text("actor", actor))
        if subject is not None:
            statement = statement.where(Event.subject == check_text("subject", subject))
        if since is not None:
            statement = statement.where(Event.time >= check_moment("since", since))
        if until is not None:
            statement = statement.where(Event.time < check_moment("until", until))
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
