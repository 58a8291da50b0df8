"""The run tables' handles, statuses and row shapes, shared by the store and the engine.

Kept apart from :mod:`janus_stack.workflows.store` so the engine's write
path (:mod:`janus_stack.workflows.recorder`) and the readers use one
definition of what a run, a step and a journaled call look like.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table

from janus_stack.workflows.models import (
    RunAgentCall,
    RunFeedback,
    RunStep,
    RunToken,
    ToolCall,
    WorkflowRun,
)

RUNS = cast(Table, WorkflowRun.__table__)
STEPS = cast(Table, RunStep.__table__)
CALLS = cast(Table, ToolCall.__table__)
TOKENS = cast(Table, RunToken.__table__)
FEEDBACK = cast(Table, RunFeedback.__table__)
AGENT_CALLS = cast(Table, RunAgentCall.__table__)

QUEUED, RUNNING, PAUSED, DONE = "queued", "running", "paused", "done"
FAILED, CANCELLED, BUDGET_EXCEEDED = "failed", "cancelled", "budget_exceeded"
TERMINAL = (DONE, FAILED, CANCELLED, BUDGET_EXCEEDED)
RUN_STATUSES = (QUEUED, RUNNING, PAUSED, *TERMINAL)
WAITING = "waiting"
# Tool-call journal: STARTED until the result is in (a crash leaves it so), then done or
# failed; INTERRUPTED when a crash cut a call that may not be repeated; RETRY once a
# person has allowed that call to run again.
STARTED, INTERRUPTED, RETRY = "started", "interrupted", "retry"


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """A stored timestamp as UTC-aware (SQLite hands them back naive)."""
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
            lease_until=aware(m["lease_until"]),
            created_at=aware(m["created_at"]) or now(),
            updated_at=aware(m["updated_at"]) or now(),
            finished_at=aware(m["finished_at"]),
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
class JournalEntry:
    """What the journal knows of one tool call: enough to reuse or refuse it on resume."""

    key: str
    status: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
        )


@dataclass(frozen=True)
class Note:
    """A free feedback note as an agent step receives it."""

    id: int
    text: str
