"""Running one agent on one input: with a model, or deterministically without one.

With a model the agent works in turns (at most ``budget.max_steps``): the
model answers with JSON constrained by a schema — ``{"action": TOOL,
"arguments": {...}}`` or ``{"action": "final", "answer": "..."}`` — so even
a random-weight model emits well-formed calls; llama.cpp turns the schema
into a grammar (:mod:`janus_stack.agents.actions` builds it). Tool results
go back to the model as the next message. The schema also steers the
turns: the last turn allowed offers only the final answer, so an agent
that used its turns on tools still answers instead of ending
``budget_exceeded``; with ``model.tool_choice: required`` the first turn
offers only the tools, so the agent consults them before answering.

A model with ``native_tools`` (an OpenAI-compatible server with tool
calling) gets the same choices as functions instead: the same argument
schemas and bounds, the answer as the pseudo-tool ``final``
(:func:`~janus_stack.agents.actions.native_tools`), in each turn that
offers a tool; a turn that can only answer (the last, or an agent without
tools) stays a schema turn, so its answer streams as tokens. A turn
offering one tool names it in ``tool_choice`` (a server with grammars
forces it); several choices are ``required`` — every turn is an action,
as in the schema path, and text content a server sends anyway counts as
the answer when ``final`` is offered. The call comes back as the same action dict, so the
journal, budgets and scopes do not see the difference; the conversation
records it in the OpenAI tool protocol (an assistant ``tool_calls``
message, then a ``tool`` message with the result), as tool-calling servers
expect, and a backend without the protocol (a schema turn, the in-process
engine) gets it rewritten as plain messages. A retry after a bad turn
stays plain. A server found to
ignore tools (llama-cpp-python's honours only a named choice) turns the
model's ``native_tools`` off, and the next turns are schema turns.

Without a model (``none://``, the default) the agent behaves
deterministically: it asks the memory (``memory.ask``, else
``memory.search``) when it has such a tool, and otherwise condenses its
input to its leading sentences, keeping the citations it was given. That
is the extractive fallback of the whole system, applied to agents.

Tool calls go through ``AgentIO.call_tool``, which the workflow engine
journals; tokens go to ``AgentIO.emit``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from janus_stack.agents.actions import (
    action_schema,
    beyond,
    decoding_schema,
    native_action,
    native_tools,
    offers_tools,
    system_prompt,
)
from janus_stack.agents.budget import BudgetExceededError, Meter, PriceTable
from janus_stack.agents.builtin import sentences
from janus_stack.agents.manifest import AgentManifest, OutputLimits
from janus_stack.agents.tools import Toolbox, ToolInterruptedError, ToolRefusedError
from janus_stack.errors import InvalidInputError, JanusError
from janus_stack.slots.llm import (
    Completion,
    Finished,
    LanguageModel,
    LLMUnavailableError,
    ModelOutputError,
    TextDelta,
    ToolCall,
)
from janus_stack.slots.llm.messages import estimate_prompt_tokens
from janus_stack.slots.llm.tools import plain_messages
from janus_stack.telemetry import Telemetry

MAX_PROMPT_CHARS = 2000
MAX_RESULT_CHARS = 4000
FALLBACK_SENTENCES = 3


@dataclass
class AgentIO:
    """How an agent reaches the outside: tool calls (journaled) and its token stream."""

    call_tool: Callable[[str, dict[str, Any]], dict[str, Any]]
    emit: Callable[[str], None] = lambda _text: None
    # Each model call's prompt and completion tokens and cost, as soon as it is paid for.
    charged: Callable[[int, int, float], None] = lambda _prompt, _completion, _cost: None


@dataclass
class AgentResult:
    text: str
    citations: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "fallback"  # "llm" or "fallback"
    model: str = "none"
    provider: str = "none"  # the redacted URL of the backend that answered last
    fallbacks: list[str] = field(default_factory=list)  # providers a chain skipped, and why
    tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def output(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": self.citations,
            "mode": self.mode,
            "model": self.model,
            "provider": self.provider,
            "fallbacks": self.fallbacks,
            "tool_calls": self.tool_calls,
        }


def _exchange(
    data: dict[str, Any], outcome: dict[str, Any], call: ToolCall | None, turn: int
) -> list[dict[str, Any]]:
    """The messages that record a tool call and its result. A native ``call`` is recorded in
    the OpenAI tool protocol (an assistant ``tool_calls`` message under the function name
    offered, then a ``tool`` message answering its id), which tool-calling servers expect
    back; a JSON turn as its JSON and a user message with the result. Backends without the
    protocol get it rewritten as the latter (``plain_messages``)."""
    shown = json.dumps(outcome, ensure_ascii=False, default=str)[:MAX_RESULT_CHARS]
    if call is None:
        return [
            {"role": "assistant", "content": json.dumps(data, ensure_ascii=False)},
            {"role": "user", "content": f"Result of {data['action']}: {shown}"},
        ]
    call_id = call.id or f"call_{turn}_0"  # a server may give none; the id only pairs the two
    function = {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)}
    return [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": call_id, "type": "function", "function": function}],
        },
        {"role": "tool", "tool_call_id": call_id, "content": shown},
    ]


def prompt_of(value: Any) -> tuple[str, list[dict[str, Any]]]:
    """An agent's input as text, plus the citations it carries (a previous agent's output)."""
    if isinstance(value, Mapping):
        citations = [c for c in value.get("citations") or [] if isinstance(c, dict)]
        if isinstance(value.get("text"), str):
            return value["text"], citations
        return json.dumps(value, ensure_ascii=False, default=str), citations
    if isinstance(value, str):
        return value, []
    return json.dumps(value, ensure_ascii=False, default=str), []


class AgentRunner:
    """Runs agents for one engine; ``models`` resolves a manifest's model reference.

    ``output_defaults`` bounds the turns of agents whose manifest leaves ``output`` fields out
    (the ``agent_output`` setting). ``telemetry`` receives the cost of each model call
    (``janus_llm_cost_usd_total``).
    """

    def __init__(
        self,
        toolbox: Toolbox,
        prices: PriceTable,
        models: Callable[[str], LanguageModel | None],
        *,
        output_defaults: OutputLimits,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.toolbox = toolbox
        self.prices = prices
        self.models = models
        self.output_defaults = output_defaults
        self.telemetry = telemetry if telemetry is not None else Telemetry()

    def run(
        self,
        agent: AgentManifest,
        value: Any,
        *,
        meter: Meter,
        io: AgentIO,
        into: AgentResult | None = None,
    ) -> AgentResult:
        """Run ``agent`` on ``value``; ``into`` (if given) accumulates the result and usage
        as it goes, so a caller still knows what was spent when a budget stops the agent."""
        result = into if into is not None else AgentResult(text="")
        model = self.models(agent.model.provider)
        if model is None or not model.configured:
            return self._fallback(agent, value, meter, io, result)
        return self._with_model(agent, model, value, meter, io, result)

    # -- deterministic -------------------------------------------------------------

    def _fallback(
        self, agent: AgentManifest, value: Any, meter: Meter, io: AgentIO, result: AgentResult
    ) -> AgentResult:
        text, citations = prompt_of(value)
        question = " ".join(text.split())[:MAX_PROMPT_CHARS]
        result.citations = citations
        if "memory.ask" in agent.tools or "memory.search" in agent.tools:
            meter.step()
            if "memory.ask" in agent.tools:
                found = io.call_tool("memory.ask", {"question": question})
            else:
                found = io.call_tool("memory.search", {"query": question, "k": 5})
            result.tool_calls += 1
            result.text = str(found.get("text", ""))
            result.citations = list(found.get("citations") or [])
        else:
            result.text = " ".join(sentences(text)[:FALLBACK_SENTENCES])
        io.emit(result.text)
        return result

    # -- with a model ----------------------------------------------------------------

    def _with_model(
        self,
        agent: AgentManifest,
        model: LanguageModel,
        value: Any,
        meter: Meter,
        io: AgentIO,
        result: AgentResult,
    ) -> AgentResult:
        text, citations = prompt_of(value)
        last = agent.max_steps - 1
        required = agent.model.tool_choice == "required"
        prompted = False  # the system prompt describes the current turn's format
        called: dict[str, str] = {}  # function name of a native call -> its tool's name
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": self._system(agent, native=prompted)},
            {"role": "user", "content": text[: MAX_PROMPT_CHARS * 4] or "(no input)"},
        ]
        result.citations, result.mode, result.model = citations, "llm", model.model
        for turn in range(agent.max_steps):
            meter.step()
            schema = action_schema(
                agent,
                self.toolbox,
                self.output_defaults,
                answer=not (required and turn == 0),
                tools=turn < last,
            )
            # A server found to ignore tools turns native_tools off; a turn that can only
            # answer streams its answer's tokens through the schema path.
            native = model.native_tools and offers_tools(schema)
            if native != prompted:
                prompted = native
                messages[0] = {"role": "system", "content": self._system(agent, native=native)}
            decoding = decoding_schema(schema)
            call: ToolCall | None = None
            if native:
                data, raw, call = self._native_turn(
                    agent, model, messages, decoding, meter, io, result
                )
            else:  # earlier native calls shown under the tools' own names, as this turn asks
                shown = list(plain_messages(messages, called))
                completion, raw = self._turn(
                    agent, model, shown, meter, io, result, json_schema=decoding
                )
                answer = completion.data if completion is not None else None
                data = answer if isinstance(answer, dict) else None
            problem = ""
            if data is None:
                problem = f"That was not the {'call' if native else 'JSON'} asked for."
            elif native or decoding != schema:  # bounds (and a text answer) unchecked so far
                problem = beyond(schema, data)
            if data is None or problem:
                messages += [
                    {"role": "assistant", "content": raw[:MAX_RESULT_CHARS]},
                    {"role": "user", "content": f"{problem} Try again."},
                ]
                continue
            if data["action"] == "final":
                result.text = str(data.get("answer", ""))
                return result
            outcome = self._call(io, data["action"], dict(data.get("arguments") or {}))
            result.tool_calls += 1
            cited = outcome.get("citations")
            if isinstance(cited, list):
                result.citations.extend(c for c in cited if isinstance(c, dict))
            messages += _exchange(data, outcome, call, turn)
            if call is not None:
                called[call.name] = data["action"]
        raise BudgetExceededError(
            f"agent {agent.name}: budget exceeded: no final answer within "
            f"max_steps={agent.max_steps}"
        )

    def _system(self, agent: AgentManifest, *, native: bool) -> str:
        return system_prompt(agent, self.toolbox, self.output_defaults, native=native)

    def _native_turn(
        self,
        agent: AgentManifest,
        model: LanguageModel,
        messages: list[dict[str, Any]],
        schema: dict[str, Any],
        meter: Meter,
        io: AgentIO,
        result: AgentResult,
    ) -> tuple[dict[str, Any] | None, str, ToolCall | None]:
        """One turn through the model's own tool calling, offering the choices of ``schema`` (an
        action schema as decoded); the action dict, the raw reply, and the call acted on (the
        first; None when the answer came as text), which the conversation records."""
        tools, actions = native_tools(schema, self.toolbox)
        choice = tools[0]["name"] if len(tools) == 1 else "required"
        completion, raw = self._turn(
            agent, model, messages, meter, io, result, tools=tools, tool_choice=choice
        )
        if completion is None:
            return None, raw, None
        calls = [(call.name, call.arguments) for call in completion.tool_calls]
        data = native_action(calls, completion.text, actions)
        first = completion.tool_calls[0] if calls else None
        return data, (json.dumps(data, ensure_ascii=False) if calls else raw), first

    def _turn(
        self,
        agent: AgentManifest,
        model: LanguageModel,
        messages: list[dict[str, Any]],
        meter: Meter,
        io: AgentIO,
        result: AgentResult,
        *,
        json_schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
    ) -> tuple[Completion | None, str]:
        """One model call, its tokens streamed to ``io`` and charged; the completion (None when
        the model's output was not what was asked for) and the raw text."""
        remaining = None
        if meter.budget.max_wall_seconds is not None:
            remaining = max(meter.budget.max_wall_seconds - meter.elapsed, 0.1)
        parts: list[str] = []
        try:
            for event in model.stream(
                messages,
                max_tokens=agent.model.max_output_tokens,
                temperature=agent.model.temperature,
                json_schema=json_schema,
                timeout=remaining,
                tools=tools,
                tool_choice=tool_choice,
            ):
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    io.emit(event.text)
                elif isinstance(event, Finished):
                    result.provider = event.completion.provider
                    result.fallbacks.extend(event.completion.fallbacks)
                    self._charge(
                        event.completion.provider,
                        event.completion.model,
                        event.completion.prompt_tokens,
                        event.completion.completion_tokens,
                        meter,
                        result,
                        io,
                    )
                    return event.completion, event.completion.text
        except ModelOutputError as exc:
            # The text was generated and streamed; count it, then ask again.
            prompt = estimate_prompt_tokens(messages)
            self._charge(model.where, model.model, prompt, len(parts), meter, result, io)
            return None, exc.text
        except LLMUnavailableError:
            # A call the wall budget cut short (its timeout was what was left of the
            # budget) is the budget running out, not a failed provider.
            meter.check()
            raise
        return None, "".join(parts)

    def _charge(
        self,
        provider: str,
        model: str,
        prompt: int,
        completion: int,
        meter: Meter,
        result: AgentResult,
        io: AgentIO,
    ) -> None:
        cost = self.prices.cost(provider, model, prompt, completion)
        self.telemetry.llm_cost(provider, model, cost)
        result.prompt_tokens += prompt
        result.completion_tokens += completion
        result.cost += cost
        io.charged(prompt, completion, cost)
        meter.charge(prompt + completion, cost)

    def _call(self, io: AgentIO, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        try:
            return io.call_tool(name, arguments)
        except (BudgetExceededError, ToolInterruptedError):
            raise
        except (ToolRefusedError, InvalidInputError) as exc:
            return {"error": str(exc)}
        except JanusError as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
