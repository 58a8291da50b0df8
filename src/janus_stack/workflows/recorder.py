"""The engine's write path: a step's rows and the events that record them, committed together.

While a step runs, the engine collects what it writes in a :class:`StepWrites`
— prepared statements with their parameters, and validated event drafts —
and :meth:`RunRecorder.commit` writes them in one transaction at which end
the event log appends the events (``EventLog.append_with``). A state change
and the events recording it are therefore durable together or not at all,
and the hash chain stays linear because the transaction holds the log's lock.

The engine commits only at its durable points: before a call of a tool that
is not idempotent (the journal row must exist before the effect), after
any call returns (its result is what a resume reuses), before an agent step
starts (it may run for minutes; readers should see it), and when a step
ends (its outcome, the run's totals and their events at once). Adding a
step's usage to the run returns the run's ``control`` column, so pause and
cancel requests reach the engine without a query of their own. Between
those points only the running attempt's usage is written, after every model
call (``RunStore.record_attempt_spend``, no event): what a killed attempt
spent is then settled into the totals, with its event, when the run's next
segment starts or the run is cancelled (``RunRecorder.settle_killed_spend``).

The statements are built once, with bound parameters, so each execution
reuses SQLAlchemy's compiled form.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    Executable,
    Float,
    Integer,
    bindparam,
    insert,
    update,
)

from janus_stack.events import EventDraft, EventLog
from janus_stack.workflows.records import (
    AGENT_CALLS,
    CALLS,
    FEEDBACK,
    INTERRUPTED,
    RUNS,
    STARTED,
    STEPS,
    RunRecord,
    Usage,
    now,
)
from janus_stack.workflows.store import RunStore

_STEP = (STEPS.c.run_id == bindparam("b_run"), STEPS.c.step_key == bindparam("b_key"))
_INSERT_STEP = insert(STEPS)
_RESTART_STEP = update(STEPS).where(*_STEP).values(attempts=STEPS.c.attempts + 1)
# A step's usage adds up over its attempts: a failed attempt's spending stays on the step,
# and so does what an attempt killed before its end had spent (its ``attempt_*``, moved into
# the step's and the run's totals when the run's next segment starts).
_USAGE = ("prompt_tokens", "completion_tokens", "cost")
_SETTLED = {f"attempt_{column}": 0 for column in _USAGE}
_SETTLE_KILLED_SPEND = (
    update(STEPS)
    .where(STEPS.c.run_id == bindparam("b_run"))
    .values({c: STEPS.c[c] + STEPS.c[f"attempt_{c}"] for c in _USAGE} | _SETTLED)
)
_FINISH_STEP = (
    update(STEPS)
    .where(*_STEP)
    .values(
        prompt_tokens=STEPS.c.prompt_tokens + bindparam("add_prompt", type_=Integer),
        completion_tokens=STEPS.c.completion_tokens + bindparam("add_completion", type_=Integer),
        cost=STEPS.c.cost + bindparam("add_cost", type_=Float),
        **_SETTLED,
    )
)
_INSERT_AGENT_CALL = insert(AGENT_CALLS)
_CLAIM_NOTE = (
    update(FEEDBACK)
    .where(FEEDBACK.c.id == bindparam("b_note"), FEEDBACK.c.consumed_by.is_(None))
    .values(consumed_by=bindparam("b_step"), consumed_at=bindparam("b_at"))
)
_ADD_USAGE = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_run"))
    .values(
        prompt_tokens=RUNS.c.prompt_tokens + bindparam("add_prompt", type_=Integer),
        completion_tokens=RUNS.c.completion_tokens + bindparam("add_completion", type_=Integer),
        cost=RUNS.c.cost + bindparam("add_cost", type_=Float),
    )
    .returning(RUNS.c.control)
)
_CALL = CALLS.c.idempotency_key == bindparam("b_call")
_INSERT_CALL = insert(CALLS)
_RESTART_CALL = update(CALLS).where(_CALL).values(executions=CALLS.c.executions + 1)
_FINISH_CALL = update(CALLS).where(_CALL)


class StepWrites:
    """What a step has written but not committed yet, in the order it was written."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.statements: list[tuple[Executable, dict[str, Any]]] = []
        self.events: list[EventDraft] = []

    def begin_step(
        self,
        key: str,
        step_id: str,
        kind: str,
        agent: str | None,
        inputs: dict[str, Any],
        *,
        status: str,
        again: bool,
    ) -> None:
        """The step's row; ``again`` when a crashed attempt left one (another attempt)."""
        if again:
            self.statements.append(
                (
                    _RESTART_STEP,
                    {
                        "b_run": self.run_id,
                        "b_key": key,
                        "status": status,
                        "inputs": inputs,
                        "error": None,
                        "started_at": now(),
                    },
                )
            )
            return
        row = {
            "run_id": self.run_id,
            "step_key": key,
            "step_id": step_id,
            "kind": kind,
            "agent": agent,
            "status": status,
            "inputs": inputs,
            "attempts": 1,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.0,
            "latency_s": 0.0,
            "started_at": now(),
        }
        self.statements.append((_INSERT_STEP, row))

    def finish_step(
        self,
        key: str,
        *,
        status: str,
        output: dict[str, Any] | None,
        error: str | None,
        usage: Usage,
        latency: float,
        elapsed: float,
        cache: str | None,
    ) -> None:
        """The step's outcome, and its usage added to the run's totals."""
        moment = now()
        self.statements.append(
            (
                _FINISH_STEP,
                {
                    "b_run": self.run_id,
                    "b_key": key,
                    "status": status,
                    "output": output,
                    "error": error,
                    "add_prompt": usage.prompt_tokens,
                    "add_completion": usage.completion_tokens,
                    "add_cost": usage.cost,
                    "latency_s": latency,
                    "cache": cache,
                    "finished_at": moment,
                },
            )
        )
        self.statements.append(
            (
                _ADD_USAGE,
                {
                    "b_run": self.run_id,
                    "add_prompt": usage.prompt_tokens,
                    "add_completion": usage.completion_tokens,
                    "add_cost": usage.cost,
                    "elapsed_s": elapsed,
                    "updated_at": moment,
                },
            )
        )

    def settle_killed_spend(self, killed: Usage) -> None:
        """Move ``killed``, what attempts killed before their end spent (the sum of the
        steps' ``attempt_*``), into the steps' and the run's totals; only for a run no
        attempt of which is alive, whose ``attempt_*`` cannot change meanwhile."""
        self.statements.append((_SETTLE_KILLED_SPEND, {"b_run": self.run_id}))
        self.statements.append(
            (
                _ADD_USAGE,
                {
                    "b_run": self.run_id,
                    "add_prompt": killed.prompt_tokens,
                    "add_completion": killed.completion_tokens,
                    "add_cost": killed.cost,
                    "updated_at": now(),
                },
            )
        )

    def agent_calls(self, key: str, called: list[tuple[str, Usage]]) -> None:
        """The own usage of each agent the step reached through ``agents.call``."""
        moment = now()
        for agent, usage in called:
            row = {
                "run_id": self.run_id,
                "step_key": key,
                "agent": agent,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost": usage.cost,
                "created_at": moment,
            }
            self.statements.append((_INSERT_AGENT_CALL, row))

    def claim_notes(self, key: str, notes: list[int]) -> None:
        """Free feedback notes given to step ``key``: none of them reaches another step."""
        moment = now()
        for note in notes:
            self.statements.append((_CLAIM_NOTE, {"b_note": note, "b_step": key, "b_at": moment}))

    def begin_call(
        self,
        ikey: str,
        step_key: str,
        tool: str,
        agent: str | None,
        arguments: dict[str, Any],
        *,
        again: bool,
    ) -> None:
        """The journal row of a call, ``started``; ``again`` counts another execution."""
        if again:
            self.statements.append(
                (_RESTART_CALL, {"b_call": ikey, "status": STARTED, "started_at": now()})
            )
            return
        row = {
            "idempotency_key": ikey,
            "run_id": self.run_id,
            "step_key": step_key,
            "tool": tool,
            "agent": agent,
            "arguments": arguments,
            "status": STARTED,
            "executions": 1,
            "started_at": now(),
        }
        self.statements.append((_INSERT_CALL, row))

    def finish_call(self, ikey: str, *, result: dict[str, Any] | None, error: str | None) -> None:
        status = "done" if error is None else "failed"
        params = {"result": result, "error": error, "finished_at": now()}
        self.statements.append((_FINISH_CALL, {"b_call": ikey, "status": status, **params}))

    def interrupt_call(self, ikey: str, error: str) -> None:
        params = {"status": INTERRUPTED, "error": error, "finished_at": now()}
        self.statements.append((_FINISH_CALL, {"b_call": ikey, **params}))

    def update_run(self, **values: Any) -> None:
        values["updated_at"] = now()
        self.statements.append((update(RUNS).where(RUNS.c.id == self.run_id).values(**values), {}))

    def event(self, draft: EventDraft) -> None:
        self.events.append(draft)


class RunRecorder:
    """Commits one run's writes with their events; remembers the run's last ``control``."""

    def __init__(self, store: RunStore, events: EventLog, run: RunRecord) -> None:
        self.store = store
        self.events = events
        self.run = run
        self.control = run.control

    def writes(self) -> StepWrites:
        return StepWrites(self.run.id)

    def draft(self, type_: str, **payload: Any) -> EventDraft:
        """A validated ``workflow.*`` event of this run, to commit with a state change."""
        return self.events.draft(
            tenant=self.run.tenant,
            actor="workflow",
            type=type_,
            subject=f"run:{self.run.id}",
            payload=payload,
        )

    def settle_killed_spend(self) -> Usage:
        """Count what attempts a crash killed had spent on model calls (the steps' and the
        run's totals, with a ``workflow.usage.recovered`` event); returns it. For a run no
        attempt of which is alive: the start of a segment, the cancel of an interrupted run."""
        killed = self.store.killed_spend(self.run.id)
        if killed == Usage():
            return killed
        writes = self.writes()
        writes.settle_killed_spend(killed)
        writes.event(
            self.draft(
                "workflow.usage.recovered",
                prompt_tokens=killed.prompt_tokens,
                completion_tokens=killed.completion_tokens,
                cost=killed.cost,
            )
        )
        self.commit(writes)
        return killed

    def event(self, type_: str, **payload: Any) -> None:
        """Append one event now, on its own (no state change goes with it)."""
        writes = self.writes()
        writes.event(self.draft(type_, **payload))
        self.commit(writes)

    def commit(self, writes: StepWrites) -> None:
        """Write ``writes`` and their events in one transaction.

        A step's outcome returns the run's ``control`` as it updates the run
        (a step boundary follows), which :attr:`control` then holds. On
        success ``writes`` is emptied; after a failure it keeps everything,
        so the step's next commit (its failure, typically) carries it along.
        """
        statements = list(writes.statements)
        known = self.control

        def write(connection: Connection) -> str | None:
            control = known
            for statement, params in statements:
                result = connection.execute(statement, params)
                if statement is _ADD_USAGE:
                    control = result.scalar_one()
            return control

        with self.store.exclusive():
            self.control, _records = self.events.append_with(write, list(writes.events))
        writes.statements.clear()
        writes.events.clear()
