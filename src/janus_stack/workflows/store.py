"""Every read and write of the run tables, in SQLAlchemy Core (a few statements per step).

Writes go through one lock per process on SQLite (as the queue's TaskStore
does): SQLite admits one writer, and queuing this process's writers on a
lock beats its busy-wait.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from janus_stack.errors import NotFoundError
from janus_stack.ledger.database import Ledger
from janus_stack.workflows.models import RunFeedback, RunStep, RunToken, ToolCall, WorkflowRun

RUNS = cast(Table, WorkflowRun.__table__)
STEPS = cast(Table, RunStep.__table__)
CALLS = cast(Table, ToolCall.__table__)
TOKENS = cast(Table, RunToken.__table__)
FEEDBACK = cast(Table, RunFeedback.__table__)

QUEUED, RUNNING, PAUSED, DONE = "queued", "running", "paused", "done"
FAILED, CANCELLED, BUDGET_EXCEEDED = "failed", "cancelled", "budget_exceeded"
TERMINAL = (DONE, FAILED, CANCELLED, BUDGET_EXCEEDED)
RUN_STATUSES = (QUEUED, RUNNING, PAUSED, *TERMINAL)
WAITING = "waiting"


def now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def owner_id() -> str:
    """This process, as a run's owner: host, pid and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def owner_alive(owner: str) -> bool:
    """False only when the owner is a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunRecord:
    id: str
    tenant: str
    workflow: str
    spec: dict[str, Any]
    inputs: dict[str, Any]
    output: dict[str, Any] | None
    status: str
    error: str | None
    waiting_for: str | None
    control: str | None
    segments: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    elapsed_s: float
    owner: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> RunRecord:
        m = row._mapping
        return cls(
            id=m["id"],
            tenant=m["tenant_id"],
            workflow=m["workflow"],
            spec=m["spec"],
            inputs=m["inputs"],
            output=m["output"],
            status=m["status"],
            error=m["error"],
            waiting_for=m["waiting_for"],
            control=m["control"],
            segments=m["segments"],
            prompt_tokens=m["prompt_tokens"],
            completion_tokens=m["completion_tokens"],
            cost=m["cost"],
            elapsed_s=m["elapsed_s"],
            owner=m["owner"],
            lease_until=_aware(m["lease_until"]),
            created_at=_aware(m["created_at"]) or now(),
            updated_at=_aware(m["updated_at"]) or now(),
            finished_at=_aware(m["finished_at"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "workflow": self.workflow,
            "status": self.status,
            "error": self.error,
            "waiting_for": self.waiting_for,
            "inputs": self.inputs,
            "output": self.output,
            "segments": self.segments,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "cost": self.cost,
                "elapsed_s": round(self.elapsed_s, 3),
            },
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True)
class StepRecord:
    id: int
    key: str
    step_id: str
    kind: str
    agent: str | None
    status: str
    inputs: dict[str, Any]
    output: dict[str, Any] | None
    error: str | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    cache: str | None = None

    @classmethod
    def of(cls, row: Any) -> StepRecord:
        m = row._mapping
        return cls(
            id=m["id"],
            key=m["step_key"],
            step_id=m["step_id"],
            kind=m["kind"],
            agent=m["agent"],
            status=m["status"],
            inputs=m["inputs"],
            output=m["output"],
            error=m["error"],
            attempts=m["attempts"],
            prompt_tokens=m["prompt_tokens"],
            completion_tokens=m["completion_tokens"],
            cost=m["cost"],
            latency_s=m["latency_s"],
            cache=m["cache"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "step": self.step_id,
            "kind": self.kind,
            "agent": self.agent,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "output": self.output,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "latency_s": round(self.latency_s, 4),
            "cache": self.cache,
        }


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class RunStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._write_lock = threading.Lock() if ledger.dialect == "sqlite" else None

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        gate = self._write_lock if self._write_lock is not None else nullcontext()
        with gate, self.ledger.engine.begin() as connection:
            yield connection

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction, serialised with this store's own writes on SQLite."""
        return self._write()

    def _one(self, statement: Any) -> Any:
        with self.ledger.engine.connect() as connection:
            return connection.execute(statement).first()

    # -- runs ------------------------------------------------------------------------

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

    def run(self, run_id: str) -> RunRecord:
        row = self._one(select(RUNS).where(RUNS.c.id == run_id))
        if row is None:
            raise NotFoundError(f"no run {run_id!r}", hint="`janus runs list` shows the runs")
        return RunRecord.of(row)

    def find(self, prefix: str) -> RunRecord:
        """A run by id or unambiguous id prefix (at least 4 characters)."""
        if len(prefix) >= 36 or len(prefix) < 4:
            return self.run(prefix)
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(RUNS).where(RUNS.c.id.startswith(prefix, autoescape=True)).limit(2)
            ).all()
        if len(rows) != 1:
            return self.run(prefix)
        return RunRecord.of(rows[0])

    def runs(
        self, *, tenant: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        query = select(RUNS).order_by(RUNS.c.created_at.desc()).limit(limit)
        if tenant is not None:
            query = query.where(RUNS.c.tenant_id == tenant)
        if status is not None:
            query = query.where(RUNS.c.status == status)
        with self.ledger.engine.connect() as connection:
            return [RunRecord.of(row) for row in connection.execute(query)]

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

    def claim(self, run_id: str, owner: str, lease: float) -> bool:
        """Take a queued (or abandoned running) run for ``owner``; at most one caller wins."""
        current = self.run(run_id)
        if current.status not in (QUEUED, RUNNING):
            return False
        if (
            current.owner is not None
            and current.owner != owner
            and current.lease_until is not None
            and current.lease_until > now()
            and owner_alive(current.owner)
        ):
            return False
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
        return done.rowcount == 1

    def heartbeat(self, run_id: str, owner: str, lease: float) -> None:
        moment = now()
        with self._write() as c:
            c.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id, RUNS.c.owner == owner)
                .values(lease_until=moment + timedelta(seconds=lease))
            )

    def control(self, run_id: str) -> str | None:
        row = self._one(select(RUNS.c.control).where(RUNS.c.id == run_id))
        return None if row is None else row[0]

    # -- steps -----------------------------------------------------------------------

    def steps(self, run_id: str) -> dict[str, StepRecord]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.id)
            ).all()
        return {record.key: record for record in map(StepRecord.of, rows)}

    def begin_step(
        self,
        run_id: str,
        key: str,
        step_id: str,
        kind: str,
        agent: str | None,
        inputs: dict[str, Any],
        status: str = RUNNING,
    ) -> None:
        """Insert the step's row, or count another attempt of a row a crash left unfinished."""
        moment = now()
        try:
            with self._write() as c:
                c.execute(
                    insert(STEPS).values(
                        run_id=run_id,
                        step_key=key,
                        step_id=step_id,
                        kind=kind,
                        agent=agent,
                        status=status,
                        inputs=inputs,
                        attempts=1,
                        prompt_tokens=0,
                        completion_tokens=0,
                        cost=0.0,
                        latency_s=0.0,
                        started_at=moment,
                    )
                )
        except SAIntegrityError:
            with self._write() as c:
                c.execute(
                    update(STEPS)
                    .where(STEPS.c.run_id == run_id, STEPS.c.step_key == key)
                    .values(
                        status=status,
                        inputs=inputs,
                        attempts=STEPS.c.attempts + 1,
                        error=None,
                        started_at=moment,
                    )
                )

    def finish_step(
        self,
        run_id: str,
        key: str,
        *,
        status: str,
        output: dict[str, Any] | None,
        error: str | None,
        usage: Usage,
        latency: float,
        elapsed: float,
        cache: str | None = None,
    ) -> None:
        """Record the step's outcome and add its usage to the run, in one transaction.

        ``cache`` is ``hit`` or ``miss`` for an agent step that consulted the
        semantic cache, else None.
        """
        moment = now()
        with self._write() as c:
            c.execute(
                update(STEPS)
                .where(STEPS.c.run_id == run_id, STEPS.c.step_key == key)
                .values(
                    status=status,
                    output=output,
                    error=error,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost=usage.cost,
                    latency_s=latency,
                    cache=cache,
                    finished_at=moment,
                )
            )
            c.execute(
                update(RUNS)
                .where(RUNS.c.id == run_id)
                .values(
                    prompt_tokens=RUNS.c.prompt_tokens + usage.prompt_tokens,
                    completion_tokens=RUNS.c.completion_tokens + usage.completion_tokens,
                    cost=RUNS.c.cost + usage.cost,
                    elapsed_s=elapsed,
                    updated_at=moment,
                )
            )

    # -- tool-call journal -------------------------------------------------------------

    def journal(self, key: str) -> Any:
        return self._one(select(CALLS).where(CALLS.c.idempotency_key == key))

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
                        status="started",
                        executions=1,
                        started_at=now(),
                    )
                )
        except SAIntegrityError:
            with self._write() as c:
                c.execute(
                    update(CALLS)
                    .where(CALLS.c.idempotency_key == key)
                    .values(status="started", executions=CALLS.c.executions + 1, started_at=now())
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

    def calls(self, run_id: str) -> list[dict[str, Any]]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(CALLS).where(CALLS.c.run_id == run_id).order_by(CALLS.c.started_at)
            ).all()
        return [
            {
                "key": r.idempotency_key,
                "step": r.step_key,
                "tool": r.tool,
                "agent": r.agent,
                "status": r.status,
                "executions": r.executions,
                "error": r.error,
            }
            for r in rows
        ]

    def called_agents(self, run_id: str) -> set[str]:
        """The agents reached through ``agents.call`` in a run."""
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(CALLS.c.arguments).where(
                    CALLS.c.run_id == run_id, CALLS.c.tool == "agents.call"
                )
            ).all()
        names = (r[0].get("agent") if isinstance(r[0], dict) else None for r in rows)
        return {name for name in names if isinstance(name, str) and name}

    # -- tokens and feedback ----------------------------------------------------------

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

    def tokens(self, run_id: str, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(TOKENS.c.id, TOKENS.c.step_key, TOKENS.c.text)
                .where(TOKENS.c.run_id == run_id, TOKENS.c.id > after)
                .order_by(TOKENS.c.id)
                .limit(limit)
            ).all()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def add_feedback(self, run_id: str, step_key: str | None, actor: str, text: str) -> None:
        with self._write() as c:
            c.execute(
                insert(FEEDBACK).values(
                    run_id=run_id, step_key=step_key, actor=actor, text=text, created_at=now()
                )
            )

    def feedback_for(self, run_id: str, step_key: str) -> str | None:
        row = self._one(
            select(FEEDBACK.c.text)
            .where(FEEDBACK.c.run_id == run_id, FEEDBACK.c.step_key == step_key)
            .order_by(FEEDBACK.c.id.desc())
            .limit(1)
        )
        return None if row is None else str(row[0])

    def feedback(self, run_id: str) -> list[dict[str, Any]]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(FEEDBACK).where(FEEDBACK.c.run_id == run_id).order_by(FEEDBACK.c.id)
            ).all()
        return [
            {"step": r.step_key, "actor": r.actor, "text": r.text, "at": r.created_at.isoformat()}
            for r in rows
        ]

    # -- accounting ----------------------------------------------------------------------

    def usage(self, by: str, *, tenant: str | None = None) -> list[dict[str, Any]]:
        """Tokens, cost and steps summed per ``agent``, ``tenant``, ``workflow`` or ``run``."""
        column = {
            "agent": STEPS.c.agent,
            "tenant": RUNS.c.tenant_id,
            "workflow": RUNS.c.workflow,
            "run": RUNS.c.id,
        }[by]
        query = (
            select(
                column.label("key"),
                func.count(STEPS.c.id),
                func.sum(STEPS.c.prompt_tokens),
                func.sum(STEPS.c.completion_tokens),
                func.sum(STEPS.c.cost),
                func.sum(STEPS.c.latency_s),
            )
            .select_from(STEPS.join(RUNS, STEPS.c.run_id == RUNS.c.id))
            .group_by(column)
            .order_by(column)
        )
        if by == "agent":
            query = query.where(STEPS.c.agent.is_not(None))
        if tenant is not None:
            query = query.where(RUNS.c.tenant_id == tenant)
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            {
                by: r[0],
                "steps": int(r[1]),
                "prompt_tokens": int(r[2] or 0),
                "completion_tokens": int(r[3] or 0),
                "cost": float(r[4] or 0.0),
                "latency_s": round(float(r[5] or 0.0), 4),
            }
            for r in rows
        ]
