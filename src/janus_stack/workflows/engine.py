"""The engine: executes one run, durably, resuming from what the ledger says is done.

A run is replayed from its first step on every start. A step whose row is
``done`` is not executed again: its recorded output is put back into the
scope, so branches and loops take the same decisions and later steps see
the same data. The first unfinished step executes for real. Inside a step,
every tool call is journaled under an idempotency key (run, step path, call
number, hash of tool and arguments) *before* the tool runs; a call whose
journal row holds a result is answered from it, so a crash after a side
effect but before the step was marked done does not repeat the effect. A
crash inside the tool itself (journal row ``started``, no result) re-runs
that call; the tool receives the idempotency key to deduplicate if it can.

Every state change is appended to the event log. Budgets are checked before
each step (``max_steps``, ``max_wall_seconds``) and on every charge
(``max_tokens``, ``max_cost``). Between steps the engine reads the run's
``control`` column, so ``janus runs pause|cancel`` from another process
take effect at the next step boundary.

An agent with a ``cache`` policy first asks the semantic cache
(``workflows.cache``); a hit is recorded as a done step with zero usage
and ``cache = 'hit'``. A run that ends ``done`` is projected into the
graph as agent collaboration (``workflows.collaboration``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from janus_stack.agents.budget import BudgetExceededError, Meter, PriceTable
from janus_stack.agents.manifest import AgentManifest
from janus_stack.agents.registry import AgentRegistry
from janus_stack.agents.runtime import AgentIO, AgentResult, AgentRunner
from janus_stack.agents.tools import Toolbox, ToolContext
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.slots import llm
from janus_stack.workflows import expressions
from janus_stack.workflows.cache import HIT, MISS, Decision, SemanticCache
from janus_stack.workflows.collaboration import Collaboration
from janus_stack.workflows.hooks import Hooks
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
from janus_stack.workflows.store import (
    BUDGET_EXCEEDED,
    CANCELLED,
    DONE,
    FAILED,
    PAUSED,
    WAITING,
    RunRecord,
    RunStore,
    Usage,
    now,
    owner_id,
)

LEASE_SECONDS = 60.0
TOKEN_FLUSH_SECONDS = 0.2
MAX_AGENT_DEPTH = 3

log = logging.getLogger(__name__)


class Paused(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, step_key: str | None, reason: str) -> None:
        super().__init__(reason)
        self.step_key = step_key


class Cancelled(Exception):  # noqa: N818 - control flow, not an error
    pass


class StepFailedError(Exception):
    def __init__(self, step_key: str, cause: BaseException) -> None:
        super().__init__(f"step {step_key!r} failed: {type(cause).__name__}: {cause}")
        self.step_key = step_key


@dataclass
class _Scope:
    inputs: dict[str, Any]
    run: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    loop: dict[str, Any] = field(default_factory=dict)

    def data(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "run": self.run,
            "loop": self.loop,
            "steps": {k: {"output": v} for k, v in self.outputs.items()},
        }


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


class _Execution:
    """One segment of one run in this process."""

    def __init__(self, engine: Engine, run: RunRecord, spec: WorkflowSpec) -> None:
        self.engine = engine
        self.janus = engine.janus
        self.store = engine.store
        self.run = run
        self.spec = spec
        self.done = {k: s for k, s in self.store.steps(run.id).items() if s.status == DONE}
        self.meter = Meter(
            f"run {run.id[:8]} ({spec.name})",
            spec.budget,
            tokens=run.prompt_tokens + run.completion_tokens,
            cost=run.cost,
            elapsed_before=run.elapsed_s,
        )
        self.tool_lock = threading.Lock()
        self.cache: dict[str, Any] = {}
        self.cached: dict[str, tuple[AgentManifest, Decision]] = {}

    def event(self, type_: str, **payload: Any) -> None:
        self.janus.events.append(
            tenant=self.run.tenant,
            actor="workflow",
            type=type_,
            subject=f"run:{self.run.id}",
            payload=payload,
        )

    # -- blocks and steps ------------------------------------------------------------

    def block(self, steps: list[AnyStep], prefix: str, scope: _Scope) -> Any:
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

    def step(self, step: AnyStep, key: str, scope: _Scope) -> Any:
        if isinstance(step, LoopStep):
            return self.loop(step, key, scope)
        if isinstance(step, ParallelStep):
            return self.parallel(step, key, scope)
        recorded = self.done.get(key)
        if recorded is not None:  # replay
            self.meter.step()
            scope.outputs[step.id] = recorded.output
            return recorded.output
        self.check_control()
        if isinstance(step, HumanStep):
            return self.human(step, key, scope)
        self.meter.step()
        data = scope.data()
        agent = getattr(step, "agent", None)
        try:
            inputs = _json(self.inputs_of(step, data))
        except expressions.ExpressionError as exc:
            raise StepFailedError(key, exc) from exc
        self.store.begin_step(self.run.id, key, step.id, step.kind, agent, inputs)
        self.event("workflow.step.started", step=key, kind=step.kind)
        self.engine.hooks.before_step(self.run.id, key, step.kind)
        started = time.perf_counter()
        usage = Usage()
        try:
            output, usage = self.execute(step, key, inputs, data)
            output = _json(output)
        except BudgetExceededError as exc:
            spent = getattr(exc, "usage", usage)
            self.finish(key, BUDGET_EXCEEDED, None, str(exc), spent, started)
            raise
        except (Paused, Cancelled):
            raise
        except Exception as exc:
            self.finish(key, FAILED, None, f"{type(exc).__name__}: {exc}", usage, started)
            raise StepFailedError(key, exc) from exc
        self.finish(key, DONE, output, None, usage, started)
        self.engine.hooks.after_step(self.run.id, key, output)
        scope.outputs[step.id] = output
        return output

    def finish(
        self, key: str, status: str, output: Any, error: str | None, usage: Usage, started: float
    ) -> None:
        latency = time.perf_counter() - started
        consulted = self.cached.pop(key, None)
        self.store.finish_step(
            self.run.id,
            key,
            status=status,
            output=output,
            error=error,
            usage=usage,
            latency=latency,
            elapsed=self.meter.elapsed,
            cache=None if consulted is None else HIT if consulted[1].hit else MISS,
        )
        if consulted is not None and status == DONE and not consulted[1].hit:
            self.remember(key, *consulted, output)
        kind = {DONE: "done", FAILED: "failed", BUDGET_EXCEEDED: "budget_exceeded"}[status]
        self.event(
            f"workflow.step.{kind}",
            step=key,
            latency_s=round(latency, 6),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost=usage.cost,
            **({"error": error} if error else {}),
        )

    def check_control(self) -> None:
        control = self.store.control(self.run.id)
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
        self, step: AnyStep, key: str, inputs: dict[str, Any], data: dict[str, Any]
    ) -> tuple[Any, Usage]:
        if isinstance(step, AgentStep):
            manifest = self.engine.registry.get(step.agent)
            if manifest.cache is not None:
                decision = self.engine.cache.decide(
                    self.run.id, self.run.tenant, key, manifest, inputs["input"]
                )
                self.cached[key] = (manifest, decision)
                if decision.hit and decision.output is not None:
                    self.event(
                        "workflow.step.cached",
                        step=key,
                        agent=manifest.name,
                        entry=decision.entry,
                        similarity=decision.similarity,
                    )
                    self.store.add_tokens(self.run.id, key, [str(decision.output.get("text", ""))])
                    return decision.output, Usage()
            return self.agent(manifest, inputs["input"], key, self.meter, [0], depth=0)
        agent = None
        if isinstance(step, ToolStep | RetrieveStep) and step.agent:
            agent = self.engine.registry.get(step.agent)
        if isinstance(step, ToolStep):
            return self.call_tool(key, agent, step.tool, inputs["arguments"], [0]), Usage()
        if isinstance(step, RetrieveStep):
            arguments = {"query": inputs["query"], "k": step.k, "mode": step.mode}
            if inputs["filters"]:
                arguments["filters"] = inputs["filters"]
            return self.call_tool(key, agent, "memory.search", arguments, [0]), Usage()
        if isinstance(step, BranchStep):
            for case in step.cases:
                if expressions.evaluate(case.when, data):
                    return {"goto": case.goto, "when": case.when}, Usage()
            return {"goto": step.otherwise, "when": None}, Usage()
        raise InvalidInputError(f"step kind {step.kind!r} cannot execute")

    def remember(
        self, key: str, agent: AgentManifest, decision: Decision, output: dict[str, Any]
    ) -> None:
        """Store a successful step's result in the semantic cache; a failure only warns."""
        try:
            cache = self.engine.cache
            vector = decision.vector or cache.embed(decision.prompt)
            cache.put(
                self.run.tenant,
                agent,
                decision.prompt,
                vector,
                output,
                run_id=self.run.id,
                step_key=key,
            )
        except Exception:  # the step is done; a lost cache entry costs a future miss
            log.warning("semantic cache: could not store step %s", key, exc_info=True)

    # -- agents and tools ------------------------------------------------------------

    def agent(
        self,
        agent: AgentManifest,
        value: Any,
        key: str,
        parent: Meter,
        counter: list[int],
        *,
        depth: int,
    ) -> tuple[dict[str, Any], Usage]:
        meter = Meter(f"agent {agent.name} (step {key})", agent.budget, parent=parent)
        writer = _TokenWriter(self.store, self.run.id, key)

        def call_agent(name: str, text: Any) -> dict[str, Any]:
            if depth + 1 >= MAX_AGENT_DEPTH:
                raise InvalidInputError(f"agents.call: nesting deeper than {MAX_AGENT_DEPTH}")
            output, _usage = self.agent(
                self.engine.registry.get(name), text, key, meter, counter, depth=depth + 1
            )
            return output

        io = AgentIO(
            call_tool=lambda name, args: self.call_tool(
                key, agent, name, args, counter, call_agent=call_agent
            ),
            emit=writer.write,
        )
        result = AgentResult(text="")
        try:
            self.engine.runner.run(agent, value, meter=meter, io=io, into=result)
        except BudgetExceededError as exc:
            exc.usage = Usage(result.prompt_tokens, result.completion_tokens, result.cost)
            raise
        finally:
            writer.flush()
        usage = Usage(result.prompt_tokens, result.completion_tokens, result.cost)
        return result.output(), usage

    def call_tool(
        self,
        key: str,
        agent: AgentManifest | None,
        name: str,
        arguments: dict[str, Any],
        counter: list[int],
        call_agent: Callable[[str, Any], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        context = ToolContext(
            self.janus,
            self.run.tenant,
            agent,
            self.run.id,
            key,
            call_agent=call_agent,
            cache=self.cache,
        )
        checked = _json(self.engine.toolbox.check(context, name, arguments))
        counter[0] += 1
        digest = hashlib.sha256(
            json.dumps([name, checked], sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()[:16]
        ikey = f"{self.run.id}:{key}:{counter[0]}:{digest}"
        context.idempotency_key = ikey
        journaled = self.store.journal(ikey)
        if journaled is not None and journaled.status == "done":
            self.event("workflow.tool.reused", step=key, tool=name, key=ikey)
            return dict(journaled.result or {})
        who = agent.name if agent is not None else None
        self.store.journal_begin(ikey, self.run.id, key, name, who, checked)
        self.event("workflow.tool.called", step=key, tool=name, key=ikey, agent=who)
        self.engine.hooks.before_tool(self.run.id, key, name, ikey)
        try:
            with self.tool_lock:
                result = _json(self.engine.toolbox.get(name).call(context, checked))
        except Exception as exc:
            self.store.journal_finish(ikey, result=None, error=f"{type(exc).__name__}: {exc}")
            self.event("workflow.tool.failed", step=key, tool=name, key=ikey, error=str(exc))
            raise
        if not isinstance(result, dict):
            result = {"result": result}
        self.store.journal_finish(ikey, result=result, error=None)
        self.event("workflow.tool.done", step=key, tool=name, key=ikey)
        self.engine.hooks.after_tool(self.run.id, key, name, ikey)
        return result

    # -- composite steps ---------------------------------------------------------------

    def human(self, step: HumanStep, key: str, scope: _Scope) -> Any:
        prompt = expressions.render(step.prompt, scope.data())
        answer = self.store.feedback_for(self.run.id, key)
        if answer is None:
            self.store.begin_step(
                self.run.id,
                key,
                step.id,
                step.kind,
                None,
                {"prompt": _json(prompt)},
                status=WAITING,
            )
            self.event("workflow.step.waiting", step=key, prompt=str(prompt)[:2000])
            raise Paused(key, f"waiting for input at step {key!r}: {prompt}")
        output = {"text": answer, "prompt": _json(prompt)}
        self.meter.step()
        self.finish(key, DONE, output, None, Usage(), time.perf_counter())
        scope.outputs[step.id] = output
        return output

    def loop(self, step: LoopStep, key: str, scope: _Scope) -> Any:
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

    def parallel(self, step: ParallelStep, key: str, scope: _Scope) -> Any:
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


class _TokenWriter:
    """Buffers streamed text and writes it to ``run_tokens`` every ~0.2 s."""

    def __init__(self, store: RunStore, run_id: str, key: str) -> None:
        self.store, self.run_id, self.key = store, run_id, key
        self.buffer: list[str] = []
        self.last = time.monotonic()

    def write(self, text: str) -> None:
        if text:
            self.buffer.append(text)
        if time.monotonic() - self.last >= TOKEN_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.store.add_tokens(self.run_id, self.key, ["".join(self.buffer)])
            self.buffer = []
        self.last = time.monotonic()


class Engine:
    """Executes runs against one ``Janus`` context.

    Args:
        models: resolves a manifest's model reference; the default maps
            ``default`` to the llm slot, ``none`` to no model and anything
            else to an llm slot URL opened on first use.
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
        self.cache = SemanticCache(self.store, lambda: janus.embedder)
        self.collaboration = Collaboration(janus, self.store)
        self._models: dict[str, llm.LanguageModel | None] = {}
        self._models_lock = threading.Lock()
        self.runner = AgentRunner(toolbox, prices or PriceTable(), self.model)

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
        if not self.store.claim(run_id, self.owner, self.lease):
            return self.store.run(run_id).status
        run = self.store.run(run_id)
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
        execution = _Execution(self, run, spec)
        execution.event(
            "workflow.run.started", segment=run.segments, replayable_steps=len(execution.done)
        )
        scope = _Scope(inputs=dict(run.inputs), run={"id": run.id, "tenant": run.tenant})
        status, values, payload = self._outcome(execution, spec, scope)
        values.update(owner=None, lease_until=None, elapsed_s=execution.meter.elapsed)
        if status in (DONE, FAILED, CANCELLED, BUDGET_EXCEEDED):
            values["finished_at"] = now()
        if status == PAUSED:
            values["control"] = None
        self.store.update_run(run.id, status=status, **values)
        execution.event(f"workflow.run.{status}", **payload)
        if status == DONE:
            self._project(execution, run.id)
        return status

    def _project(self, execution: _Execution, run_id: str) -> None:
        """Record who worked together in the graph; a failure is logged, not fatal."""
        try:
            written = self.collaboration.project(self.store.run(run_id))
        except Exception as exc:
            log.warning("collaboration graph of run %s failed", run_id, exc_info=True)
            execution.event("workflow.collaboration.failed", error=f"{type(exc).__name__}: {exc}")
            return
        if written["agents"]:
            execution.event("workflow.collaboration.recorded", **written)

    def _outcome(
        self, execution: _Execution, spec: WorkflowSpec, scope: _Scope
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        try:
            last = execution.block(list(spec.steps), "", scope)
            output = expressions.render(spec.output, scope.data()) if spec.output else last
            output = _json(output if isinstance(output, dict) else {"value": output})
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
