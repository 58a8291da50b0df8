"""The engine: executes one run, durably, resuming from what the ledger says is done.

:meth:`Engine.execute` claims the run (a lease renewed by a heartbeat
thread, so a second process leaves it alone), runs one *segment* of it and
records how the segment ended. The work is split by responsibility:

* :mod:`~janus_stack.workflows.execution` walks the step tree: replay of
  finished steps, branches, loops, parallel branches, human input, budgets
  and pause/cancel requests;
* :mod:`~janus_stack.workflows.tool_calls` journals every tool call under an
  idempotency key before a tool with effects runs, and reuses recorded
  results on resume;
* :mod:`~janus_stack.workflows.agent_steps` runs agent steps behind the
  semantic cache and streams their tokens;
* :mod:`~janus_stack.workflows.recorder` commits each state change together
  with the events that record it.

A run that ends ``done`` is projected into the graph as agent collaboration
(:mod:`~janus_stack.workflows.collaboration`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from janus_stack.agents.budget import BudgetExceededError, PriceTable
from janus_stack.agents.manifest import OutputLimits
from janus_stack.agents.registry import AgentRegistry
from janus_stack.agents.runtime import AgentRunner
from janus_stack.agents.tools import Toolbox
from janus_stack.context import Janus
from janus_stack.slots import llm
from janus_stack.workflows import expressions
from janus_stack.workflows.cache import SemanticCache
from janus_stack.workflows.collaboration import Collaboration
from janus_stack.workflows.execution import Execution
from janus_stack.workflows.flow import Cancelled, Paused, Scope, StepFailedError, as_json
from janus_stack.workflows.hooks import Hooks
from janus_stack.workflows.records import (
    BUDGET_EXCEEDED,
    CANCELLED,
    DONE,
    FAILED,
    PAUSED,
    RunRecord,
    now,
    owner_id,
)
from janus_stack.workflows.spec import WorkflowSpec
from janus_stack.workflows.store import RunStore

LEASE_SECONDS = 60.0

log = logging.getLogger(__name__)


class Engine:
    """Executes runs against one ``Janus`` context.

    A manifest's model reference resolves through :meth:`model`: ``default``
    is the llm slot, ``none`` no model, anything else an llm slot URL opened
    on first use.
    """

    def __init__(
        self,
        janus: Janus,
        registry: AgentRegistry,
        toolbox: Toolbox,
        *,
        prices: PriceTable | None = None,
        hooks: Hooks | None = None,
        lease: float = LEASE_SECONDS,
    ) -> None:
        self.janus = janus
        self.registry = registry
        self.toolbox = toolbox
        self.store = RunStore(janus.ledger)
        self.hooks = hooks or Hooks()
        self.lease = lease
        self.owner = owner_id()
        self.cache = SemanticCache(self.store, lambda: janus.embedder, telemetry=janus.telemetry)
        self.collaboration = Collaboration(janus, self.store)
        self._models: dict[str, llm.LanguageModel | None] = {}
        self._models_lock = threading.Lock()
        self.runner = AgentRunner(
            toolbox,
            prices or PriceTable(),
            self.model,
            output_defaults=OutputLimits.model_validate(janus.settings.agent_output),
            telemetry=janus.telemetry,
        )

    def model(self, provider: str) -> llm.LanguageModel | None:
        with self._models_lock:
            if provider not in self._models:
                if provider == "none":
                    self._models[provider] = None
                elif provider == "default":
                    self._models[provider] = self.janus.llm
                else:
                    self._models[provider] = llm.open(provider).open()
            return self._models[provider]

    def close(self) -> None:
        with self._models_lock:
            for name, model in self._models.items():
                if model is not None and name != "default":
                    model.close()
            self._models.clear()

    def execute(self, run_id: str) -> str:
        """Run (or resume) ``run_id`` until it ends or pauses; returns its status.

        A no-op returning the current status when the run is not runnable or
        another live process owns it.
        """
        run = self.store.claim(run_id, self.owner, self.lease)
        if run is None:
            return self.store.run(run_id).status
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(run_id, stop), daemon=True, name="janus-run-lease"
        )
        beat.start()
        try:
            return self._execute(run)
        finally:
            stop.set()
            beat.join()

    def _heartbeat(self, run_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            try:
                self.store.heartbeat(run_id, self.owner, self.lease)
            except Exception:  # the next beat tries again; the lease is generous
                continue

    def _execute(self, run: RunRecord) -> str:
        spec = WorkflowSpec.model_validate(run.spec)
        execution = Execution(self, run, spec)
        recorder = execution.recorder
        recorder.event(
            "workflow.run.started", segment=run.segments, replayable_steps=len(execution.done)
        )
        scope = Scope(inputs=dict(run.inputs), run={"id": run.id, "tenant": run.tenant})
        status, values, payload = self._outcome(execution, spec, scope)
        values.update(owner=None, lease_until=None, elapsed_s=execution.meter.elapsed)
        if status in (DONE, FAILED, CANCELLED, BUDGET_EXCEEDED):
            values["finished_at"] = now()
        if status == PAUSED:
            values["control"] = None
        writes = recorder.writes()
        writes.update_run(status=status, **values)
        writes.event(recorder.draft(f"workflow.run.{status}", **payload))
        recorder.commit(writes)
        if status == DONE:
            self._project(execution, run.id)
        return status

    def _project(self, execution: Execution, run_id: str) -> None:
        """Record who worked together in the graph; a failure is logged, not fatal."""
        recorder = execution.recorder
        try:
            written = self.collaboration.project(self.store.run(run_id))
        except Exception as exc:
            log.warning("collaboration graph of run %s failed", run_id, exc_info=True)
            recorder.event("workflow.collaboration.failed", error=f"{type(exc).__name__}: {exc}")
            return
        if written["agents"]:
            recorder.event("workflow.collaboration.recorded", **written)

    def _outcome(
        self, execution: Execution, spec: WorkflowSpec, scope: Scope
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        try:
            last = execution.block(list(spec.steps), "", scope)
            output = expressions.render(spec.output, scope.data()) if spec.output else last
            output = as_json(output if isinstance(output, dict) else {"value": output})
        except Paused as exc:
            return PAUSED, {"waiting_for": exc.step_key}, {"reason": str(exc)}
        except Cancelled:
            return CANCELLED, {}, {}
        except BudgetExceededError as exc:
            return BUDGET_EXCEEDED, {"error": str(exc)}, {"error": str(exc)}
        except StepFailedError as exc:
            return FAILED, {"error": str(exc)}, {"error": str(exc)}
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            return FAILED, {"error": message}, {"error": message}
        return DONE, {"output": output, "error": None, "waiting_for": None}, {}
