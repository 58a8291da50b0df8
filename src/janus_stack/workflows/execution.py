"""One segment of one run: walks the step tree, replaying what is done, running the rest.

A run is replayed from its first step on every segment. A step whose row is
``done`` is not executed again: its recorded output is put back into the
scope, so branches and loops take the same decisions and later steps see
the same data. The first unfinished step executes for real; what it writes
is committed with its events by the :class:`~janus_stack.workflows.recorder.RunRecorder`
(its outcome, the run's totals and ``workflow.step.*`` in one transaction).

Free feedback notes (``janus runs feedback`` while no human step waits) go
to the next agent step that starts: the transaction that marks it running
also marks the notes it takes (``run_feedback.consumed_by``) and appends
``workflow.feedback.injected``. A step that a crash interrupted gets exactly
the notes it took before, so its prompt is the same; a step that failed
takes any newer notes too when it runs again, since a person may have
answered its failure. A note never reaches two steps.

Budgets are checked before each step (``max_steps``, ``max_wall_seconds``)
and on every charge (``max_tokens``, ``max_cost``). Before each step the
engine looks at the run's ``control`` column as the last commit read it, so
``janus runs pause|cancel`` from another process take effect at a step
boundary.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from janus_stack.agents.budget import BudgetExceededError, Meter
from janus_stack.errors import InvalidInputError
from janus_stack.workflows import expressions
from janus_stack.workflows.agent_steps import AgentSteps, Spend, with_feedback
from janus_stack.workflows.flow import Cancelled, Paused, Scope, StepFailedError, as_json
from janus_stack.workflows.recorder import RunRecorder, StepWrites
from janus_stack.workflows.records import (
    BUDGET_EXCEEDED,
    DONE,
    FAILED,
    RUNNING,
    WAITING,
    Note,
    RunRecord,
)
from janus_stack.workflows.spec import (
    END,
    AgentStep,
    AnyStep,
    BranchStep,
    HumanStep,
    LoopStep,
    ParallelStep,
    RetrieveStep,
    ToolStep,
    WorkflowSpec,
)
from janus_stack.workflows.tool_calls import ToolCalls

if TYPE_CHECKING:
    from janus_stack.workflows.engine import Engine

_OUTCOME_EVENT = {DONE: "done", FAILED: "failed", BUDGET_EXCEEDED: "budget_exceeded"}


class Execution:
    """One segment of one run in this process, from the state loaded when it began."""

    def __init__(self, engine: Engine, run: RunRecord, spec: WorkflowSpec) -> None:
        self.engine = engine
        self.run = run
        self.spec = spec
        store = engine.store
        states = store.step_states(run.id)
        self.begun = {key: status for key, (status, _output) in states.items()}
        self.done = {key: output for key, (status, output) in states.items() if status == DONE}
        self.recorder = RunRecorder(store, engine.janus.events, run)
        killed = self.recorder.settle_killed_spend()
        self.meter = Meter(
            f"run {run.id[:8]} ({spec.name})",
            spec.budget,
            tokens=run.prompt_tokens
            + run.completion_tokens
            + killed.prompt_tokens
            + killed.completion_tokens,
            cost=run.cost + killed.cost,
            elapsed_before=run.elapsed_s,
        )
        self.tools = ToolCalls(
            engine.janus, engine.toolbox, engine.hooks, self.recorder, store.journal_entries(run.id)
        )
        self.agents = AgentSteps(engine, run, self.tools)
        # Parallel branches start agent steps concurrently; each takes its notes alone.
        self.notes_lock = threading.Lock()

    # -- blocks and steps ------------------------------------------------------------

    def block(self, steps: list[AnyStep], prefix: str, scope: Scope) -> Any:
        index = {step.id: i for i, step in enumerate(steps)}
        last: Any = None
        i = 0
        while i < len(steps):
            step = steps[i]
            last = self.step(step, prefix + step.id, scope)
            target = step.next
            if isinstance(step, BranchStep):
                target = last.get("goto") or target
            if target == END:
                break
            i = index[target] if target else i + 1
        return last

    def step(self, step: AnyStep, key: str, scope: Scope) -> Any:
        if isinstance(step, LoopStep):
            return self.loop(step, key, scope)
        if isinstance(step, ParallelStep):
            return self.parallel(step, key, scope)
        if key in self.done:  # replay
            self.meter.step()
            scope.outputs[step.id] = self.done[key]
            return self.done[key]
        self.check_control()
        if isinstance(step, HumanStep):
            return self.human(step, key, scope)
        self.meter.step()
        data = scope.data()
        agent = getattr(step, "agent", None)
        try:
            inputs = as_json(self.inputs_of(step, data))
        except expressions.ExpressionError as exc:
            raise StepFailedError(key, exc) from exc
        writes = self.recorder.writes()
        if isinstance(step, AgentStep):  # it may run for minutes: show it running meanwhile
            with self.notes_lock:
                notes = self.take_notes(writes, key)
                if notes:
                    inputs["feedback"] = [{"id": note.id, "text": note.text} for note in notes]
                self.begin(writes, step, key, agent, inputs)
                self.recorder.commit(writes)
            inputs = {**inputs, "input": with_feedback(inputs["input"], notes)}
        else:
            self.begin(writes, step, key, agent, inputs)
        self.engine.hooks.before_step(self.run.id, key, step.kind)
        started = time.perf_counter()
        spend = Spend()
        try:
            output = as_json(self.execute(writes, step, key, inputs, data, spend))
        except BudgetExceededError as exc:
            self.finish(writes, key, BUDGET_EXCEEDED, None, str(exc), spend, started)
            raise
        except (Paused, Cancelled):
            self.recorder.commit(writes)
            raise
        except Exception as exc:
            self.finish(writes, key, FAILED, None, f"{type(exc).__name__}: {exc}", spend, started)
            raise StepFailedError(key, exc) from exc
        self.finish(writes, key, DONE, output, None, spend, started)
        self.engine.hooks.after_step(self.run.id, key, output)
        scope.outputs[step.id] = output
        return output

    def begin(
        self, writes: StepWrites, step: AnyStep, key: str, agent: str | None, inputs: Any
    ) -> None:
        writes.begin_step(
            key, step.id, step.kind, agent, inputs, status=RUNNING, again=key in self.begun
        )
        writes.event(self.recorder.draft("workflow.step.started", step=key, kind=step.kind))

    def take_notes(self, writes: StepWrites, key: str) -> list[Note]:
        """The feedback notes agent step ``key`` receives; new ones are claimed in ``writes``.

        An attempt that a crash interrupted (its row still ``running``) gets
        only the notes it had taken, so a resumed step sees the prompt it saw.
        """
        store = self.engine.store
        taken = store.notes(self.run.id, consumed_by=key) if key in self.begun else []
        fresh = [] if self.begun.get(key) == RUNNING else store.notes(self.run.id, consumed_by=None)
        if fresh:
            writes.claim_notes(key, [note.id for note in fresh])
        notes = taken + fresh
        if notes:
            writes.event(
                self.recorder.draft(
                    "workflow.feedback.injected",
                    step=key,
                    notes=[note.id for note in notes],
                    new=[note.id for note in fresh],
                    chars=sum(len(note.text) for note in notes),
                )
            )
        return notes

    def finish(
        self,
        writes: StepWrites,
        key: str,
        status: str,
        output: Any,
        error: str | None,
        spend: Spend,
        started: float,
    ) -> None:
        """Commit the step's outcome, the run's totals and the step's events together."""
        latency = time.perf_counter() - started
        usage = spend.total()
        writes.agent_calls(key, spend.called)
        writes.finish_step(
            key,
            status=status,
            output=output,
            error=error,
            usage=usage,
            latency=latency,
            elapsed=self.meter.elapsed,
            cache=self.agents.cache_column(key),
        )
        writes.event(
            self.recorder.draft(
                f"workflow.step.{_OUTCOME_EVENT[status]}",
                step=key,
                latency_s=round(latency, 6),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cost=usage.cost,
                **({"error": error} if error else {}),
            )
        )
        self.recorder.commit(writes)
        self.agents.settle(key, status, output)

    def check_control(self) -> None:
        control = self.recorder.control
        if control == "pause":
            raise Paused(None, "pause requested")
        if control == "cancel":
            raise Cancelled()
        self.meter.check()

    @staticmethod
    def inputs_of(step: AnyStep, data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(step, AgentStep):
            return {"input": expressions.render(step.input, data)}
        if isinstance(step, ToolStep):
            return {"arguments": expressions.render(step.arguments, data)}
        if isinstance(step, RetrieveStep):
            return {
                "query": expressions.render(step.query, data),
                "k": step.k,
                "mode": step.mode,
                "filters": expressions.render(step.filters, data),
            }
        if isinstance(step, BranchStep):
            return {}
        raise InvalidInputError(f"step kind {step.kind!r} has no inputs")

    def execute(
        self,
        writes: StepWrites,
        step: AnyStep,
        key: str,
        inputs: dict[str, Any],
        data: dict[str, Any],
        spend: Spend,
    ) -> Any:
        if isinstance(step, AgentStep):
            return self.agents.execute(writes, key, step.agent, inputs["input"], self.meter, spend)
        agent = None
        if isinstance(step, ToolStep | RetrieveStep) and step.agent:
            agent = self.engine.registry.get(step.agent)
        if isinstance(step, ToolStep):
            return self.tools.call(writes, key, agent, step.tool, inputs["arguments"], [0])
        if isinstance(step, RetrieveStep):
            arguments = {"query": inputs["query"], "k": step.k, "mode": step.mode}
            if inputs["filters"]:
                arguments["filters"] = inputs["filters"]
            return self.tools.call(writes, key, agent, "memory.search", arguments, [0])
        if isinstance(step, BranchStep):
            for case in step.cases:
                if expressions.evaluate(case.when, data):
                    return {"goto": case.goto, "when": case.when}
            return {"goto": step.otherwise, "when": None}
        raise InvalidInputError(f"step kind {step.kind!r} cannot execute")

    # -- composite steps ---------------------------------------------------------------

    def human(self, step: HumanStep, key: str, scope: Scope) -> Any:
        prompt = expressions.render(step.prompt, scope.data())
        answer = self.engine.store.feedback_for(self.run.id, key)
        writes = self.recorder.writes()
        if answer is None:
            writes.begin_step(
                key,
                step.id,
                step.kind,
                None,
                {"prompt": as_json(prompt)},
                status=WAITING,
                again=key in self.begun,
            )
            writes.event(
                self.recorder.draft("workflow.step.waiting", step=key, prompt=str(prompt)[:2000])
            )
            self.recorder.commit(writes)
            raise Paused(key, f"waiting for input at step {key!r}: {prompt}")
        output = {"text": answer, "prompt": as_json(prompt)}
        self.meter.step()
        self.finish(writes, key, DONE, output, None, Spend(), time.perf_counter())
        scope.outputs[step.id] = output
        return output

    def loop(self, step: LoopStep, key: str, scope: Scope) -> Any:
        outer = scope.loop
        last: Any = None
        stopped = "max"
        iterations = 0
        try:
            for index in range(step.max):
                scope.loop = {"index": index, "iteration": index + 1, "id": step.id}
                last = self.block(list(step.steps), f"{key}/{index}/", scope)
                iterations = index + 1
                if step.until is not None and expressions.evaluate(step.until, scope.data()):
                    stopped = "until"
                    break
        finally:
            scope.loop = outer
        output = {"iterations": iterations, "stopped": stopped, "last": last}
        scope.outputs[step.id] = output
        return output

    def parallel(self, step: ParallelStep, key: str, scope: Scope) -> Any:
        names = list(step.branches)
        with ThreadPoolExecutor(
            min(step.max_concurrency, len(names)), thread_name_prefix="janus-branch"
        ) as pool:
            futures = {
                name: pool.submit(self.block, list(step.branches[name]), f"{key}/{name}/", scope)
                for name in names
            }
            results: dict[str, Any] = {}
            errors: list[BaseException] = []
            for name in names:
                try:
                    results[name] = futures[name].result()
                except BaseException as exc:  # every branch finishes before one error wins
                    errors.append(exc)
        for kind in (BudgetExceededError, Cancelled, StepFailedError, Paused):
            for error in errors:
                if isinstance(error, kind):
                    raise error
        if errors:
            raise errors[0]
        scope.outputs[step.id] = results
        return results
