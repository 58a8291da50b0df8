"""Agent steps: the semantic cache first, then the agent, its tool calls and its tokens.

An agent with a ``cache`` policy first asks the semantic cache
(:mod:`janus_stack.workflows.cache`); a hit becomes the step's output with
zero usage and ``cache = 'hit'``, a miss is stored once the step is done.
Otherwise the agent runs with its own meter under the run's; its tool calls
go through the journal (:mod:`janus_stack.workflows.tool_calls`) and
``agents.call`` runs a nested agent, at most :data:`MAX_AGENT_DEPTH` deep.
Streamed text is written to ``run_tokens`` every :data:`TOKEN_FLUSH_SECONDS`.

What each agent run spends goes to the step's :class:`Spend` as the run
ends, however it ends: a called agent's usage counts toward the calling
step (and so the run), under its own name, and a step that fails keeps
what it spent. Feedback notes the engine gave the step reach the agent as
a labelled section of its input (:func:`with_feedback`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from janus_stack.agents.budget import Meter
from janus_stack.agents.manifest import AgentManifest
from janus_stack.agents.runtime import MAX_PROMPT_CHARS, AgentIO, AgentResult, prompt_of
from janus_stack.errors import InvalidInputError
from janus_stack.workflows.cache import HIT, MISS, Decision
from janus_stack.workflows.recorder import StepWrites
from janus_stack.workflows.records import DONE, Note, RunRecord, Usage
from janus_stack.workflows.store import RunStore
from janus_stack.workflows.tool_calls import ToolCalls

if TYPE_CHECKING:
    from janus_stack.workflows.engine import Engine

TOKEN_FLUSH_SECONDS = 0.2
MAX_AGENT_DEPTH = 3
FEEDBACK_HEADING = "Human feedback on this run (`janus runs feedback`), to take into account:"
# What of its input the runtime shows a model: the notes go last, so the input makes room.
PROMPT_ROOM = MAX_PROMPT_CHARS * 4

log = logging.getLogger(__name__)


@dataclass
class Spend:
    """What one attempt of a step spent: its own agent's usage and each called agent's, and
    (``running``) every model call's of any of them so far, which the ledger keeps as the
    attempt goes, so that a process killed mid-step loses none of it."""

    own: Usage = field(default_factory=Usage)
    called: list[tuple[str, Usage]] = field(default_factory=list)
    running: Usage = field(default_factory=Usage)

    def add(self, agent: str, usage: Usage, *, depth: int) -> None:
        if depth == 0:
            self.own = self.own + usage
        else:
            self.called.append((agent, usage))

    def total(self) -> Usage:
        total = self.own
        for _agent, usage in self.called:
            total = total + usage
        return total


def with_feedback(value: Any, notes: list[Note]) -> Any:
    """An agent's input with the human notes it received appended, clearly labelled.

    The runtime reads a mapping's ``text`` (and ``citations``), so the notes
    travel in the input it already takes; the input is cut, not the notes,
    when both would not fit what a model is shown.
    """
    if not notes:
        return value
    text, citations = prompt_of(value)
    section = "\n\n" + FEEDBACK_HEADING + "\n" + "\n".join(f"- {note.text}" for note in notes)
    return {"text": text[: max(PROMPT_ROOM - len(section), 0)] + section, "citations": citations}


class AgentSteps:
    """Runs the agent steps of one run segment."""

    def __init__(self, engine: Engine, run: RunRecord, tools: ToolCalls) -> None:
        self.engine = engine
        self.run = run
        self.tools = tools
        self.consulted: dict[str, tuple[AgentManifest, Decision]] = {}

    def execute(
        self, writes: StepWrites, key: str, name: str, value: Any, meter: Meter, spend: Spend
    ) -> dict[str, Any]:
        """The step ``key`` of agent ``name`` on ``value``: from the cache or by running it."""
        manifest = self.engine.registry.get(name)
        if manifest.cache is not None:
            decision = self.engine.cache.decide(self.run.id, self.run.tenant, key, manifest, value)
            self.consulted[key] = (manifest, decision)
            if decision.hit and decision.output is not None:
                writes.event(
                    self.tools.recorder.draft(
                        "workflow.step.cached",
                        step=key,
                        agent=manifest.name,
                        entry=decision.entry,
                        similarity=decision.similarity,
                    )
                )
                self.engine.store.add_tokens(
                    self.run.id, key, [str(decision.output.get("text", ""))]
                )
                return decision.output
        return self.agent(writes, manifest, value, key, meter, spend, [0], depth=0)

    def cache_column(self, key: str) -> str | None:
        """The step's ``cache`` column: ``hit``, ``miss``, or None when it did not consult."""
        consulted = self.consulted.get(key)
        if consulted is None:
            return None
        return HIT if consulted[1].hit else MISS

    def settle(self, key: str, status: str, output: Any) -> None:
        """Once the step is recorded: store the result of a miss that ended done."""
        consulted = self.consulted.pop(key, None)
        if consulted is not None and status == DONE and not consulted[1].hit:
            self.remember(key, *consulted, output)

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

    def agent(
        self,
        writes: StepWrites,
        agent: AgentManifest,
        value: Any,
        key: str,
        parent: Meter,
        spend: Spend,
        counter: list[int],
        *,
        depth: int,
    ) -> dict[str, Any]:
        meter = Meter(f"agent {agent.name} (step {key})", agent.budget, parent=parent)
        writer = TokenWriter(self.engine.store, self.run.id, key)

        def call_agent(name: str, text: Any) -> dict[str, Any]:
            if depth + 1 >= MAX_AGENT_DEPTH:
                raise InvalidInputError(f"agents.call: nesting deeper than {MAX_AGENT_DEPTH}")
            nested = self.engine.registry.get(name)
            return self.agent(writes, nested, text, key, meter, spend, counter, depth=depth + 1)

        def charged(prompt: int, completion: int, cost: float) -> None:
            spend.running = spend.running + Usage(prompt, completion, cost)
            self.engine.store.record_attempt_spend(self.run.id, key, spend.running)

        io = AgentIO(
            call_tool=lambda name, args: self.tools.call(
                writes, key, agent, name, args, counter, call_agent=call_agent
            ),
            emit=writer.write,
            charged=charged,
        )
        result = AgentResult(text="")
        try:
            self.engine.runner.run(agent, value, meter=meter, io=io, into=result)
        finally:
            writer.flush()
            usage = Usage(result.prompt_tokens, result.completion_tokens, result.cost)
            spend.add(agent.name, usage, depth=depth)
        return result.output()


class TokenWriter:
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
