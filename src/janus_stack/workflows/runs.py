"""Runs as a service: start, resume, pause, cancel, feedback — and the queue task.

A run executes through the queue slot: :meth:`Runs.start` writes the run
row, appends ``workflow.run.created`` and enqueues a ``workflow.run`` task
whose handler is :meth:`Engine.execute`. Each start or resume is a new
*segment* with its own idempotency key (``workflow.run:RUN:SEGMENT``), so
enqueuing twice schedules once. With the in-process queue (``inline://``)
the calling process runs the task on its own worker threads; with a broker
``janus worker`` does, once :func:`register_workflow_tasks` is registered
there too.
"""

from __future__ import annotations

import uuid
from typing import Any

from janus_stack.agents.budget import PriceTable
from janus_stack.agents.registry import AgentRegistry
from janus_stack.agents.tools import Toolbox
from janus_stack.context import Janus
from janus_stack.errors import ConflictError, InvalidInputError
from janus_stack.ids import check_tenant
from janus_stack.ingest.enqueue import ensure_ingest_tasks
from janus_stack.slots.queue import TaskHandlers
from janus_stack.workflows.engine import Engine
from janus_stack.workflows.hooks import HookChain, Hooks, entry_point_hooks
from janus_stack.workflows.recorder import RunRecorder
from janus_stack.workflows.spec import WorkflowSpec
from janus_stack.workflows.store import (
    CANCELLED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    TERMINAL,
    RunRecord,
    RunStore,
    now,
    owner_alive,
    owner_id,
)

WORKFLOW_TASK = "workflow.run"
MAX_FEEDBACK_CHARS = 20_000


class Runs:
    """Start and steer runs of one ``Janus`` context."""

    def __init__(
        self,
        janus: Janus,
        registry: AgentRegistry,
        toolbox: Toolbox,
        *,
        prices: PriceTable | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.janus = janus
        self.engine = Engine(janus, registry, toolbox, prices=prices, hooks=hooks)
        self.store: RunStore = self.engine.store

    def register(self, handlers: TaskHandlers) -> None:
        """Add the ``workflow.run`` task (and the ingest tasks a queue may also hold)."""
        if WORKFLOW_TASK not in handlers:
            handlers.register(WORKFLOW_TASK, self._handle, max_attempts=3, backoff_max=30.0)
        ensure_ingest_tasks(self.janus)

    def _handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        run_id = payload.get("run_id")
        if not isinstance(run_id, str):
            raise InvalidInputError("workflow.run: payload needs a run_id")
        return {"status": self.engine.execute(run_id)}

    def event(
        self, run: RunRecord | str, tenant: str, type_: str, actor: str = "workflow", **payload: Any
    ) -> None:
        run_id = run if isinstance(run, str) else run.id
        self.janus.events.append(
            tenant=tenant, actor=actor, type=type_, subject=f"run:{run_id}", payload=payload
        )

    def create(self, spec: WorkflowSpec, inputs: dict[str, Any], *, tenant: str) -> str:
        """Record a new run (queued) without scheduling it; returns its id."""
        check_tenant(tenant)
        resolved = spec.resolve_inputs(inputs)
        run_id = str(uuid.uuid4())
        self.store.create_run(run_id, tenant, spec.name, spec.model_dump(mode="json"), resolved)
        self.event(
            run_id, tenant, "workflow.run.created", workflow=spec.name, inputs=list(resolved)
        )
        return run_id

    def start(self, spec: WorkflowSpec, inputs: dict[str, Any], *, tenant: str) -> str:
        run_id = self.create(spec, inputs, tenant=tenant)
        self._enqueue(self.store.run(run_id))
        return run_id

    def request(
        self, spec: WorkflowSpec, inputs: dict[str, Any], *, tenant: str, actor: str
    ) -> RunRecord:
        """Start a run on behalf of a client; returns the run as it was queued.

        The record is read before the run is scheduled: an inline queue may
        start it at once, and the caller should get the state its request
        produced, not whatever a racing worker has made of it since.
        """
        run_id = self.create(spec, inputs, tenant=tenant)
        self.event(run_id, tenant, "workflow.run.requested", actor=actor)
        queued = self.store.run(run_id)
        self._enqueue(queued)
        return queued

    def _enqueue(self, run: RunRecord) -> None:
        self.janus.queue.enqueue(
            WORKFLOW_TASK,
            {"run_id": run.id},
            idempotency_key=f"{WORKFLOW_TASK}:{run.id}:{run.segments}",
            tenant=run.tenant,
        )

    def resume(
        self, run_id: str, actor: str = "cli", *, rerun_interrupted: bool = False
    ) -> RunRecord:
        """Queue a paused, failed or abandoned run again; it replays what is done.

        ``rerun_interrupted`` allows the calls a crash interrupted in tools that
        are not idempotent to execute again: a person has checked their effect.
        """
        run = self.store.find(run_id)
        if run.status in TERMINAL and run.status != FAILED:
            raise _conflict(
                run,
                f"run {run.id} is {run.status}; only paused, failed or interrupted runs resume",
                hint=run.error or None,
            )
        if run.status == RUNNING and run.owner and owner_alive(run.owner):
            raise _conflict(
                run,
                f"run {run.id} is running in {run.owner.rsplit(':', 1)[0]}",
                hint="pause it first (`janus runs pause`), or wait",
            )
        if not self.store.transition(
            run.id,
            (PAUSED, FAILED, RUNNING, QUEUED),
            status=QUEUED,
            control=None,
            error=None,
            finished_at=None,
            owner=None,
            lease_until=None,
            segments=run.segments + 1,
        ):
            raise _conflict(run, f"run {run.id} changed state meanwhile; try again")
        rearmed = self.store.journal_retry(run.id) if rerun_interrupted else 0
        self.event(
            run,
            run.tenant,
            "workflow.run.resumed",
            actor=actor,
            previous=run.status,
            segment=run.segments + 1,
            **({"rerun_interrupted": rearmed} if rerun_interrupted else {}),
        )
        resumed = self.store.run(run.id)
        self._enqueue(resumed)
        return resumed

    def pause(self, run_id: str, actor: str = "cli") -> RunRecord:
        run = self.store.find(run_id)
        if run.status == QUEUED and self.store.transition(run.id, (QUEUED,), status=PAUSED):
            pass
        elif run.status == RUNNING:
            self.store.update_run(run.id, control="pause")
        elif run.status != PAUSED:
            raise _conflict(run, f"run {run.id} is {run.status}; it cannot be paused")
        self.event(run, run.tenant, "workflow.run.pause_requested", actor=actor)
        return self.store.run(run.id)

    def cancel(self, run_id: str, actor: str = "cli") -> RunRecord:
        run = self.store.find(run_id)
        if run.status in TERMINAL:
            raise _conflict(run, f"run {run.id} is already {run.status}")
        if run.status == RUNNING and run.owner and owner_alive(run.owner):
            self.store.update_run(run.id, control="cancel")
        elif self.store.transition(
            run.id, (QUEUED, PAUSED, RUNNING), status=CANCELLED, finished_at=now(), owner=None
        ):  # no segment will count what a killed attempt spent: count it now
            RunRecorder(self.store, self.janus.events, run).settle_killed_spend()
        self.event(run, run.tenant, "workflow.run.cancel_requested", actor=actor)
        return self.store.run(run.id)

    def feedback(self, run_id: str, text: str, actor: str = "cli") -> RunRecord:
        """Answer the human step the run waits for, or leave a note for its next agent step.

        A note goes to the next agent step that starts (``workflow.feedback.injected``
        says which); a run that is over has none, so it takes no notes — but a
        failed run may still be resumed, so it does.
        """
        run = self.store.find(run_id)
        if not text.strip() or len(text) > MAX_FEEDBACK_CHARS:
            raise InvalidInputError(f"feedback must be 1 to {MAX_FEEDBACK_CHARS} characters")
        if run.status in TERMINAL and run.status != FAILED:
            raise _conflict(run, f"run {run.id} is {run.status}; no step of it will read feedback")
        step = run.waiting_for if run.status == PAUSED else None
        note = self.store.add_feedback(run.id, step, actor, text)
        self.event(
            run,
            run.tenant,
            "workflow.run.feedback",
            actor=actor,
            step=step,
            chars=len(text),
            note=note,
        )
        return run

    def recover(self, actor: str = "worker") -> list[RunRecord]:
        """Queue again every run a killed process left ``running``: a worker's start-up.

        Interrupted means what :meth:`resume` accepts: ``running`` with no live
        owner. Each run is first claimed (the engine's atomic claim, under an
        owner of its own) and only then queued as a new segment, so a run that
        a live process took meanwhile is left to it; finished steps replay.
        A pending pause or cancel request is kept for the next step boundary.
        """
        recovered: list[RunRecord] = []
        claimer = owner_id()
        for run in self.store.runs(status=RUNNING, limit=10_000):
            if run.owner and owner_alive(run.owner):
                continue
            claimed = self.store.claim(run.id, claimer, self.engine.lease)
            if claimed is None or not self.store.transition(
                run.id,
                (RUNNING,),
                status=QUEUED,
                owner=None,
                lease_until=None,
                segments=claimed.segments + 1,
            ):
                continue
            self.event(
                run,
                run.tenant,
                "workflow.run.resumed",
                actor=actor,
                previous=RUNNING,
                segment=claimed.segments + 1,
                interrupted=True,
            )
            queued = self.store.run(run.id)
            self._enqueue(queued)
            recovered.append(queued)
        return recovered


def _conflict(run: RunRecord, message: str, *, hint: str | None = None) -> ConflictError:
    """A steering request the run's current state forbids (HTTP 409 naming run and state)."""
    return ConflictError(message, details={"run": run.id, "state": run.status}, hint=hint)


def home_runs(janus: Janus, registry: AgentRegistry, toolbox: Toolbox) -> Runs:
    """The run service ``janus`` commands, workers and the server share, its task registered.

    Prices come from JANUS_HOME's ``prices.toml`` and hooks from installed
    entry points, so a run costs and reports the same wherever it executes.
    """
    runs = Runs(
        janus,
        registry,
        toolbox,
        prices=PriceTable.load(janus.settings.home / "prices.toml"),
        hooks=HookChain(entry_point_hooks()),
    )
    runs.register(janus.handlers)
    return runs


def register_workflow_tasks(handlers: TaskHandlers, runs: Runs) -> None:
    """What ``janus worker`` needs to run workflow tasks from a broker queue."""
    runs.register(handlers)
