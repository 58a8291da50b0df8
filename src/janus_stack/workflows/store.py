"""Every write of the run tables but the engine's step path, in SQLAlchemy Core.

Writes go through one lock per process on SQLite (as the queue's TaskStore
does): SQLite admits one writer, and queuing this process's writers on a
lock beats its busy-wait. The engine writes a step's rows through
:mod:`janus_stack.workflows.recorder` under the same lock, in the event
log's transaction. Reads are :class:`~janus_stack.workflows.queries.RunQueries`;
row shapes and statuses live in :mod:`janus_stack.workflows.records` and are
re-exported here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from janus_stack.ledger.database import Ledger
from janus_stack.workflows.queries import RunQueries
from janus_stack.workflows.records import (
    BUDGET_EXCEEDED,
    CALLS,
    CANCELLED,
    DONE,
    FAILED,
    FEEDBACK,
    INTERRUPTED,
    PAUSED,
    QUEUED,
    RETRY,
    RUN_STATUSES,
    RUNNING,
    RUNS,
    STARTED,
    STEPS,
    TERMINAL,
    TOKENS,
    WAITING,
    JournalEntry,
    RunRecord,
    StepRecord,
    Usage,
    now,
    owner_alive,
    owner_id,
)

__all__ = [
    "BUDGET_EXCEEDED",
    "CALLS",
    "CANCELLED",
    "DONE",
    "FAILED",
    "FEEDBACK",
    "INTERRUPTED",
    "PAUSED",
    "QUEUED",
    "RETRY",
    "RUNNING",
    "RUNS",
    "RUN_STATUSES",
    "STARTED",
    "STEPS",
    "TERMINAL",
    "TOKENS",
    "WAITING",
    "JournalEntry",
    "RunQueries",
    "RunRecord",
    "RunStore",
    "StepRecord",
    "Usage",
    "now",
    "owner_alive",
    "owner_id",
]


class RunStore(RunQueries):
    """The run tables: :class:`RunQueries` plus every write but the engine's step path."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger)
        self._write_lock = threading.Lock() if ledger.dialect == "sqlite" else None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        gate = self._write_lock if self._write_lock is not None else nullcontext()
        with gate, self.ledger.engine.begin() as connection:
            yield connection

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction, serialised with this store's own writes on SQLite."""
        return self._write()

    def exclusive(self) -> AbstractContextManager[object]:
        """This process's turn to write, for a transaction the caller opens itself."""
        return self._write_lock if self._write_lock is not None else nullcontext()

    # -- runs ----------------------------------------------------------------------

    def create_run(
        self, run_id: str, tenant: str, workflow: str, spec: dict[str, Any], inputs: dict[str, Any]
    ) -> None:
        moment = now()
        with self._write() as c:
            c.execute(
                insert(RUNS).values(
                    id=run_id,
                    tenant_id=tenant,
                    workflow=workflow,
                    spec=spec,
                    inputs=inputs,
                    output=None,
                    status=QUEUED,
                    segments=0,
                    prompt_tokens=0,
                    completion_tokens=0,
                    cost=0.0,
                    elapsed_s=0.0,
                    created_at=moment,
                    updated_at=moment,
                )
            )

    def update_run(self, run_id: str, **values: Any) -> None:
        values["updated_at"] = now()
        with self._write() as c:
            c.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))

    def transition(self, run_id: str, allowed: Sequence[str], **values: Any) -> bool:
        """Update the run only while its status is one of ``allowed``; True if it was."""
        values["updated_at"] = now()
        with self._write() as c:
            done = c.execute(
                update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status.in_(allowed)).values(**values)
            )
        return done.rowcount == 1

    def claim(self, run_id: str, owner: str, lease: float) -> RunRecord | None:
        """Take a queued (or abandoned running) run for ``owner``; at most one caller wins.

        Returns the run as claimed, or None when it is not runnable or a live
        process owns it.
        """
        current = self.run(run_id)
        if current.status not in (QUEUED, RUNNING):
            return None
        if (
            current.owner is not None
            and current.owner != owner
            and current.lease_until is not None
            and current.lease_until > now()
            and owner_alive(current.owner)
        ):
            return None
        same_owner = (
            RUNS.c.owner.is_(None) if current.owner is None else RUNS.c.owner == current.owner
        )
        moment = now()
        with self._write() as c:
            done = c.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.status.in_((QUEUED, RUNNING)), same_owner)
                .values(
                    owner=owner,
                    lease_until=moment + timedelta(seconds=lease),
                    status=RUNNING,
                    updated_at=moment,
                )
            )
            if done.rowcount != 1:
                return None
            return RunRecord.of(c.execute(select(RUNS).where(RUNS.c.id == run_id)).one())

    def heartbeat(self, run_id: str, owner: str, lease: float) -> None:
        moment = now()
        with self._write() as c:
            c.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.owner == owner)
                .values(lease_until=moment + timedelta(seconds=lease))
            )

    # -- tool-call journal ---------------------------------------------------------

    def journal_begin(
        self,
        key: str,
        run_id: str,
        step_key: str,
        tool: str,
        agent: str | None,
        arguments: dict[str, Any],
    ) -> None:
        """Written before the tool runs: a crash leaves a ``started`` row behind."""
        try:
            with self._write() as c:
                c.execute(
                    insert(CALLS).values(
                        idempotency_key=key,
                        run_id=run_id,
                        step_key=step_key,
                        tool=tool,
                        agent=agent,
                        arguments=arguments,
                        status=STARTED,
                        executions=1,
                        started_at=now(),
                    )
                )
        except SAIntegrityError:
            with self._write() as c:
                c.execute(
                    update(CALLS)
                    .where(CALLS.c.idempotency_key == key)
                    .values(status=STARTED, executions=CALLS.c.executions + 1, started_at=now())
                )

    def journal_finish(self, key: str, *, result: dict[str, Any] | None, error: str | None) -> None:
        with self._write() as c:
            c.execute(
                update(CALLS)
                .where(CALLS.c.idempotency_key == key)
                .values(
                    status="done" if error is None else "failed",
                    result=result,
                    error=error,
                    finished_at=now(),
                )
            )

    def journal_retry(self, run_id: str) -> int:
        """Allow the interrupted calls of a run to execute again; returns how many."""
        with self._write() as c:
            done = c.execute(
                update(CALLS)
                .where(CALLS.c.run_id == run_id, CALLS.c.status == INTERRUPTED)
                .values(status=RETRY)
            )
        return int(done.rowcount)

    # -- tokens and feedback -------------------------------------------------------

    def record_attempt_spend(self, run_id: str, key: str, spent: Usage) -> None:
        """What the running attempt of step ``key`` has spent so far (after each model call):
        a SIGKILL before the step ends then loses none of it (see ``recorder``)."""
        with self._write() as c:
            c.execute(
                update(STEPS)
                .where(STEPS.c.run_id == run_id, STEPS.c.step_key == key)
                .values(
                    attempt_prompt_tokens=spent.prompt_tokens,
                    attempt_completion_tokens=spent.completion_tokens,
                    attempt_cost=spent.cost,
                )
            )

    def killed_spend(self, run_id: str) -> Usage:
        """What attempts killed before their end spent, not yet in the run's totals; the
        run's next segment settles it (``Execution.settle``), so its budget counts it."""
        with self.ledger.engine.connect() as c:
            row = c.execute(
                select(
                    func.coalesce(func.sum(STEPS.c.attempt_prompt_tokens), 0),
                    func.coalesce(func.sum(STEPS.c.attempt_completion_tokens), 0),
                    func.coalesce(func.sum(STEPS.c.attempt_cost), 0.0),
                ).where(STEPS.c.run_id == run_id)
            ).one()
        return Usage(int(row[0]), int(row[1]), float(row[2]))

    def add_tokens(self, run_id: str, key: str, texts: Sequence[str]) -> None:
        if not texts:
            return
        moment = now()
        with self._write() as c:
            c.execute(
                insert(TOKENS),
                [
                    {"run_id": run_id, "step_key": key, "text": text, "created_at": moment}
                    for text in texts
                ],
            )

    def add_feedback(self, run_id: str, step_key: str | None, actor: str, text: str) -> int:
        """Store a note (the answer of human step ``step_key``, or free); returns its id."""
        with self._write() as c:
            note = c.execute(
                insert(FEEDBACK)
                .values(run_id=run_id, step_key=step_key, actor=actor, text=text, created_at=now())
                .returning(FEEDBACK.c.id)
            ).scalar_one()
        return int(note)
