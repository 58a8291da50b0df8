"""Ledger side of the queue slot: task records and the state machine.

Both transports share this module so that a task behaves the same whether it
travels through an in-process pool or through RabbitMQ. The ``tasks`` row is
the durable truth and every transition is one conditional UPDATE; that
condition is what keeps two workers (threads, processes or machines) from
running the same task.

    queued ──claim──▶ running ──ok──▶ done
      ▲                 │ error, attempts < max
      │                 ▼
      └──── due ──── retrying         running ──error, attempts == max──▶ dead
                                      dead ──retry()──▶ queued
    running with an expired lease (its worker died) ──recover──▶ queued, or dead

While a task runs, ``next_attempt_at`` holds its lease: the time after which
the row counts as abandoned. Workers extend the leases of the tasks they run,
so a killed process is detected by its leases running out, not by a guess
about which process owns the ledger. ``attempts`` is counted at claim time, so
a task that kills its worker every time still ends ``dead``, and the attempt
number fences late writes from a worker whose lease was taken over.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Connection, Table, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import SQLAlchemyError

from janus_stack.errors import InvalidInputError, NotFoundError, SlotUnavailableError
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Task
from janus_stack.slots.queue.handlers import TaskOptions

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
DONE = "done"
DEAD = "dead"
STATUSES = (QUEUED, RUNNING, RETRYING, DONE, DEAD)
CLAIMABLE = (QUEUED, RETRYING)
PENDING = (QUEUED, RUNNING, RETRYING)
MAX_ERROR_CHARS = 8000
LOST = "worker lost while running (its lease expired)"

_T = cast(Table, Task.__table__)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; everything Janus writes is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TaskRecord:
    """A snapshot of one ``tasks`` row.

    For a ``running`` task ``next_attempt_at`` is the end of its lease; for a
    ``retrying`` one it is when the next attempt may start.
    """

    id: str
    name: str
    tenant: str
    idempotency_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    last_error: str | None
    result: dict[str, Any] | None
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    trace_context: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> TaskRecord:
        return cls(
            id=row["id"],
            name=row["name"],
            tenant=row["tenant_id"],
            idempotency_key=row["idempotency_key"],
            payload=dict(row["payload"]),
            status=row["status"],
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            last_error=row["last_error"],
            result=None if row["result"] is None else dict(row["result"]),
            next_attempt_at=_aware(row["next_attempt_at"]),
            created_at=_aware(row["created_at"]),
            updated_at=_aware(row["updated_at"]),
            trace_context=dict(row["trace_context"] or {}),
        )


class Claim(NamedTuple):
    """What ``TaskStore.claim`` found: the claimed row, or how long until it is due."""

    record: TaskRecord | None
    wait_seconds: float = 0.0


class TaskStore:
    """Every read and transition of ``tasks`` rows; no transport knowledge.

    Written in SQLAlchemy Core on purpose: each task costs three
    transitions, and the ORM's unit of work and session synchronisation
    tripled their CPU cost without adding anything a single-table UPDATE
    needs.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._one_writer = ledger.dialect == "sqlite"
        self._write_lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, queued on a lock when the ledger is SQLite.

        SQLite admits one writer per file and makes the others sleep in its
        busy handler (1 to 100 ms steps); queuing this process's writers on a
        lock instead is what lets several workers outrun one.
        """
        gate = self._write_lock if self._one_writer else nullcontext()
        with gate, self._ledger.engine.begin() as connection:
            yield connection

    def _read(self) -> Connection:
        return self._ledger.engine.connect()

    def check(self) -> None:
        """Fail clearly when the ledger is closed or lacks the ``tasks`` table."""
        try:
            with self._read() as connection:
                connection.execute(select(_T.c.id).limit(1)).all()
        except SQLAlchemyError as exc:
            raise SlotUnavailableError(
                f"queue slot: the ledger at {self._ledger.url.redacted} has no usable tasks "
                f"table: {type(exc).__name__}",
                hint="upgrade the ledger schema first (`janus db upgrade`)",
            ) from exc

    def insert(
        self,
        *,
        name: str,
        tenant: str,
        key: str,
        payload: dict[str, Any],
        max_attempts: int,
        trace_context: Mapping[str, str] | None = None,
    ) -> tuple[TaskRecord, bool]:
        """Insert a queued row, or return the row that already holds ``key`` (and False)."""
        now = _now()
        row = {
            "id": str(uuid.uuid4()),
            "name": name,
            "tenant_id": tenant,
            "idempotency_key": key,
            "payload": payload,
            "status": QUEUED,
            "attempts": 0,
            "max_attempts": max_attempts,
            "last_error": None,
            "result": None,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
            "trace_context": dict(trace_context) if trace_context else None,
        }
        try:
            with self._write() as connection:
                connection.execute(insert(_T).values(**row))
        except SAIntegrityError:
            existing = self._one(_T.c.idempotency_key == key)
            if existing is None:  # the clash was not the key: a real failure
                raise
            return existing, False
        return TaskRecord.from_row(row), True

    def _one(self, condition: ColumnElement[bool]) -> TaskRecord | None:
        with self._read() as connection:
            row = connection.execute(select(_T).where(condition)).first()
        return None if row is None else TaskRecord.from_row(row._mapping)

    def get(self, task_id: str) -> TaskRecord:
        record = self._one(_T.c.id == task_id)
        if record is None:
            raise NotFoundError(f"task {task_id!r} does not exist in the ledger")
        return record

    def list(
        self, *, status: str | None, name: str | None, tenant: str | None, limit: int
    ) -> builtins.list[TaskRecord]:
        query = select(_T).order_by(_T.c.created_at.desc(), _T.c.id).limit(limit)
        for column, value in (("status", status), ("name", name), ("tenant_id", tenant)):
            if value is not None:
                query = query.where(_T.c[column] == value)
        with self._read() as connection:
            return [TaskRecord.from_row(row._mapping) for row in connection.execute(query)]

    def claim(self, task_id: str, lease: float) -> Claim:
        """Move a due row to ``running`` in one conditional UPDATE; at most one caller wins."""
        now = _now()
        with self._write() as connection:
            row = connection.execute(
                update(_T)
                .where(_T.c.id == task_id, _T.c.status.in_(CLAIMABLE), _T.c.next_attempt_at <= now)
                .values(
                    status=RUNNING,
                    attempts=_T.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=lease),
                    updated_at=now,
                )
                .returning(*_T.c)
            ).first()
        if row is not None:
            return Claim(TaskRecord.from_row(row._mapping))
        current = self._one(_T.c.id == task_id)
        if current is not None and current.status in CLAIMABLE:
            return Claim(None, max((current.next_attempt_at - now).total_seconds(), 0.001))
        return Claim(None)

    def complete(self, task_id: str, attempt: int, result: dict[str, Any] | None) -> bool:
        """Store the result; False when another worker took the task over meanwhile."""
        now = _now()
        with self._write() as connection:
            done = connection.execute(
                update(_T)
                .where(_T.c.id == task_id, _T.c.status == RUNNING, _T.c.attempts == attempt)
                .values(status=DONE, result=result, next_attempt_at=now, updated_at=now)
            )
        return done.rowcount == 1

    def fail(
        self, task_id: str, attempt: int, error: str, options: TaskOptions
    ) -> tuple[str, float] | None:
        """Record a failed attempt; returns the new status and the retry delay (0 if dead).

        None means another worker took the task over and this outcome is void.
        """
        now = _now()
        delay = options.backoff(attempt)
        last = _T.c.max_attempts <= attempt
        with self._write() as connection:
            status = connection.scalar(
                update(_T)
                .where(_T.c.id == task_id, _T.c.status == RUNNING, _T.c.attempts == attempt)
                .values(
                    status=case((last, DEAD), else_=RETRYING),
                    last_error=error[-MAX_ERROR_CHARS:],
                    next_attempt_at=case((last, now), else_=now + timedelta(seconds=delay)),
                    updated_at=now,
                )
                .returning(_T.c.status)
            )
        if status is None:
            return None
        return status, 0.0 if status == DEAD else delay

    def requeue_dead(self, task_id: str) -> TaskRecord:
        """Give a dead task a fresh set of attempts."""
        now = _now()
        with self._write() as connection:
            row = connection.execute(
                update(_T)
                .where(_T.c.id == task_id, _T.c.status == DEAD)
                .values(status=QUEUED, attempts=0, next_attempt_at=now, updated_at=now)
                .returning(*_T.c)
            ).first()
        if row is not None:
            return TaskRecord.from_row(row._mapping)
        current = self.get(task_id)
        raise InvalidInputError(
            f"task {task_id!r} is {current.status}; only dead tasks can be retried"
        )

    def extend_leases(self, task_ids: Iterable[str], lease: float) -> None:
        ids = builtins.list(task_ids)
        if not ids:
            return
        now = _now()
        with self._write() as connection:
            connection.execute(
                update(_T)
                .where(_T.c.id.in_(ids), _T.c.status == RUNNING)
                .values(next_attempt_at=now + timedelta(seconds=lease), updated_at=now)
            )

    def recover(self, *, stale_after: float | None) -> builtins.list[str]:
        """Re-queue abandoned work; returns the ids a transport should (re)deliver.

        Rows ``running`` past their lease lost their worker: they go back to
        ``queued``, or to ``dead`` when that was their last attempt. With
        ``stale_after`` set, claimable rows overdue by that many seconds are
        returned too (their message may never have reached the broker) and
        their due time is reset so the next sweep skips them for a while.
        """
        now = _now()
        expired = (_T.c.status == RUNNING, _T.c.next_attempt_at < now)
        with self._write() as connection:
            connection.execute(
                update(_T)
                .where(*expired, _T.c.attempts >= _T.c.max_attempts)
                .values(status=DEAD, last_error=f"{LOST} on its last attempt", updated_at=now)
            )
            ready = builtins.list(
                connection.scalars(
                    update(_T)
                    .where(*expired)
                    .values(status=QUEUED, last_error=LOST, next_attempt_at=now, updated_at=now)
                    .returning(_T.c.id)
                )
            )
            if stale_after is not None:
                cutoff = now - timedelta(seconds=stale_after)
                ready += connection.scalars(
                    update(_T)
                    .where(_T.c.status.in_(CLAIMABLE), _T.c.next_attempt_at < cutoff)
                    .values(next_attempt_at=now)
                    .returning(_T.c.id)
                )
        return ready

    def claim_due(self, limit: int, lease: float) -> builtins.list[TaskRecord]:
        """Claim up to ``limit`` due rows, oldest first, in one statement.

        PostgreSQL skips rows another claimer has locked; either way the
        status condition is re-checked on the locked row, so no row is
        claimed twice.
        """
        now = _now()
        due = (
            select(_T.c.id)
            .where(_T.c.status.in_(CLAIMABLE), _T.c.next_attempt_at <= now)
            .order_by(_T.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self._write() as connection:
            rows = connection.execute(
                update(_T)
                .where(_T.c.id.in_(due.scalar_subquery()), _T.c.status.in_(CLAIMABLE))
                .values(
                    status=RUNNING,
                    attempts=_T.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=lease),
                    updated_at=now,
                )
                .returning(*_T.c)
            ).all()
        records = [TaskRecord.from_row(row._mapping) for row in rows]
        return sorted(records, key=lambda record: record.next_attempt_at)

    def next_due(self) -> datetime | None:
        """When the earliest claimable row falls due (possibly in the past)."""
        query = select(func.min(_T.c.next_attempt_at)).where(_T.c.status.in_(CLAIMABLE))
        with self._read() as connection:
            later = connection.scalar(query)
        return None if later is None else _aware(later)

    def depth(self) -> dict[str, int]:
        """Rows per status that is not ``done`` (the queue's depth; ``done`` rows only grow)."""
        query = (
            select(_T.c.status, func.count())
            .where(_T.c.status.in_((*PENDING, DEAD)))
            .group_by(_T.c.status)
        )
        with self._read() as connection:
            return {str(status): int(count) for status, count in connection.execute(query)}

    def pending(self, tenant: str | None = None) -> int:
        query = select(func.count()).select_from(_T).where(_T.c.status.in_(PENDING))
        if tenant is not None:
            query = query.where(_T.c.tenant_id == tenant)
        with self._read() as connection:
            return int(connection.scalar(query) or 0)

    def delete(self, task_id: str) -> None:
        with self._write() as connection:
            connection.execute(delete(_T).where(_T.c.id == task_id))
