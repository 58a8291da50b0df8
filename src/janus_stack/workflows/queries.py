"""Every read of the run tables, in SQLAlchemy Core: what ``runs show|list|usage`` and resume need.

:class:`~janus_stack.workflows.store.RunStore` adds the writes on top, so
one store object serves both; the engine's step path writes through
:mod:`janus_stack.workflows.recorder`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from janus_stack.errors import NotFoundError
from janus_stack.ledger.database import Ledger
from janus_stack.workflows.records import (
    AGENT_CALLS,
    CALLS,
    FEEDBACK,
    RUNS,
    STEPS,
    TOKENS,
    JournalEntry,
    Note,
    RunRecord,
    StepRecord,
    aware,
)


class RunQueries:
    """Reads of runs, steps, the tool-call journal, tokens, feedback and usage."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def _one(self, statement: Any) -> Any:
        with self.ledger.engine.connect() as connection:
            return connection.execute(statement).first()

    # -- runs ----------------------------------------------------------------------

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

    # -- steps and tool calls ------------------------------------------------------

    def steps(self, run_id: str) -> dict[str, StepRecord]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(STEPS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.id)
            ).all()
        return {record.key: record for record in map(StepRecord.of, rows)}

    def step_states(self, run_id: str) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """Status and output of every step row of a run, by key: what a resume replays."""
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(STEPS.c.step_key, STEPS.c.status, STEPS.c.output)
                .where(STEPS.c.run_id == run_id)
                .order_by(STEPS.c.id)
            ).all()
        return {str(key): (str(status), output) for key, status, output in rows}

    def journal(self, key: str) -> Any:
        return self._one(select(CALLS).where(CALLS.c.idempotency_key == key))

    def journal_entries(self, run_id: str) -> dict[str, JournalEntry]:
        """Every journaled call of a run, by idempotency key, in one query."""
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(CALLS.c.idempotency_key, CALLS.c.status, CALLS.c.result).where(
                    CALLS.c.run_id == run_id
                )
            ).all()
        return {
            str(key): JournalEntry(str(key), str(status), result) for key, status, result in rows
        }

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

    # -- tokens and feedback -------------------------------------------------------

    def tokens(self, run_id: str, after: int = 0, limit: int = 1000) -> list[tuple[int, str, str]]:
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(TOKENS.c.id, TOKENS.c.step_key, TOKENS.c.text)
                .where(TOKENS.c.run_id == run_id, TOKENS.c.id > after)
                .order_by(TOKENS.c.id)
                .limit(limit)
            ).all()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def feedback_for(self, run_id: str, step_key: str) -> str | None:
        row = self._one(
            select(FEEDBACK.c.text)
            .where(FEEDBACK.c.run_id == run_id, FEEDBACK.c.step_key == step_key)
            .order_by(FEEDBACK.c.id.desc())
            .limit(1)
        )
        return None if row is None else str(row[0])

    def notes(self, run_id: str, *, consumed_by: str | None) -> list[Note]:
        """The free notes a step took (``consumed_by``), or those no step took yet (None)."""
        taken = (
            FEEDBACK.c.consumed_by.is_(None)
            if consumed_by is None
            else FEEDBACK.c.consumed_by == consumed_by
        )
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(FEEDBACK.c.id, FEEDBACK.c.text)
                .where(FEEDBACK.c.run_id == run_id, FEEDBACK.c.step_key.is_(None), taken)
                .order_by(FEEDBACK.c.id)
            ).all()
        return [Note(int(r[0]), str(r[1])) for r in rows]

    def feedback(self, run_id: str) -> list[dict[str, Any]]:
        """Every note of a run: ``step`` is the human step it answered, ``consumed_by``
        the agent step that received a free note (None while it waits for one)."""
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(FEEDBACK).where(FEEDBACK.c.run_id == run_id).order_by(FEEDBACK.c.id)
            ).all()
        return [
            {
                "step": r.step_key,
                "actor": r.actor,
                "text": r.text,
                "at": r.created_at.isoformat(),
                "id": r.id,
                "consumed_by": r.consumed_by,
                "consumed_at": (
                    consumed.isoformat() if (consumed := aware(r.consumed_at)) else None
                ),
            }
            for r in rows
        ]

    def detail(self, record: RunRecord) -> dict[str, Any]:
        """A run with its steps, tool calls, feedback and per-agent usage: what the API and the
        CLI show."""
        data = record.as_dict()
        data["steps"] = [s.as_dict() for s in self.steps(record.id).values()]
        data["tool_calls"] = self.calls(record.id)
        data["feedback"] = self.feedback(record.id)
        data["agent_calls"] = self.agent_calls(record.id)
        data["agents"] = self.usage("agent", run_id=record.id)
        return data

    # -- accounting ----------------------------------------------------------------

    def usage(
        self, by: str, *, tenant: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Tokens, cost and steps summed per ``agent``, ``tenant``, ``workflow`` or ``run``
        (of one tenant, or of one run, when given).

        A step's row counts everything it spent, the agents it called through
        ``agents.call`` included; per agent, those calls are charged to the
        called agent (``run_agent_calls``), not to the step's agent.
        """
        rows = self._step_usage(by, tenant, run_id)
        if by != "agent":
            return rows
        agents = {row["agent"]: {**row, "calls": 0} for row in rows}
        for name, calls, prompt, completion, cost, caller in self._called_usage(tenant, run_id):
            for agent, sign in ((caller, -1), (name, 1)):
                row = agents.setdefault(
                    agent,
                    {
                        "agent": agent,
                        "steps": 0,
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "cost": 0.0,
                        "latency_s": 0.0,
                        "calls": 0,
                    },
                )
                row["prompt_tokens"] += sign * prompt
                row["completion_tokens"] += sign * completion
                row["cost"] += sign * cost
            agents[name]["calls"] += calls
        return [agents[name] for name in sorted(agents)]

    def _called_usage(
        self, tenant: str | None, run_id: str | None
    ) -> list[tuple[str, int, int, int, float, str]]:
        """Usage of called agents, per called agent and the agent of the step that called."""
        joined = AGENT_CALLS.join(
            STEPS,
            (STEPS.c.run_id == AGENT_CALLS.c.run_id) & (STEPS.c.step_key == AGENT_CALLS.c.step_key),
        ).join(RUNS, AGENT_CALLS.c.run_id == RUNS.c.id)
        query = (
            select(
                AGENT_CALLS.c.agent,
                func.count(AGENT_CALLS.c.id),
                func.sum(AGENT_CALLS.c.prompt_tokens),
                func.sum(AGENT_CALLS.c.completion_tokens),
                func.sum(AGENT_CALLS.c.cost),
                STEPS.c.agent,
            )
            .select_from(joined)
            .where(STEPS.c.agent.is_not(None))
            .group_by(AGENT_CALLS.c.agent, STEPS.c.agent)
        )
        if tenant is not None:
            query = query.where(RUNS.c.tenant_id == tenant)
        if run_id is not None:
            query = query.where(RUNS.c.id == run_id)
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [
            (str(r[0]), int(r[1]), int(r[2] or 0), int(r[3] or 0), float(r[4] or 0.0), str(r[5]))
            for r in rows
        ]

    def agent_calls(self, run_id: str) -> list[dict[str, Any]]:
        """The own usage of each agent run reached through ``agents.call`` in a run."""
        with self.ledger.engine.connect() as connection:
            rows = connection.execute(
                select(AGENT_CALLS).where(AGENT_CALLS.c.run_id == run_id).order_by(AGENT_CALLS.c.id)
            ).all()
        return [
            {
                "step": r.step_key,
                "agent": r.agent,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost": r.cost,
            }
            for r in rows
        ]

    def _step_usage(self, by: str, tenant: str | None, run_id: str | None) -> list[dict[str, Any]]:
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
        if run_id is not None:
            query = query.where(RUNS.c.id == run_id)
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
