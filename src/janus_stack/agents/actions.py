"""What a model may write in one agent turn: the JSON Schema of its actions.

Each turn is ``{"action": TOOL, "arguments": {...}}`` or ``{"action":
"final", "answer": "..."}``. A tool's arguments follow the tool's own JSON
Schema (strings, numbers, enums, arrays, simple objects) as far as a
decoder can be made to keep them; a tool whose required arguments cannot
be expressed is not offered. Every string and array is bounded by the
agent's ``output`` limits, so that no turn runs off, even from a
random-weight model decoding under llama.cpp's grammar. Bounds a grammar
cannot hold are checked after the turn (:func:`beyond`).

A model with native tool calling gets the same choices as functions
(:func:`native_tools`): each tool with the same argument schema, under a
name OpenAI accepts, and the answer as the pseudo-tool ``final``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from janus_stack.agents.manifest import AgentManifest, OutputLimits
from janus_stack.agents.tools import Toolbox

MODEL_INTEGER_CHOICES = 101  # a bounded integer range up to this size is offered as an enum
MODEL_SCHEMA_DEPTH = 3  # arrays/objects nested deeper are not offered to a model
# llama.cpp's grammar nests one rule per optional repetition of a bounded string or array:
# maxLength 1000 decodes, 1200 crashes the process (stack overflow, llama-cpp-python 0.3).
# Longer bounds are left out of the schema a model decodes under and checked afterwards.
GRAMMAR_BOUND = 500
_BASIC_STRING = "^[A-Za-z0-9 ,.;:?!'()/_-]{%d,%d}$"
FINAL_TOOL = "final"  # the pseudo-tool a natively calling model answers with
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")


def output_limits(agent: AgentManifest, defaults: OutputLimits) -> OutputLimits:
    """The bounds of ``agent``'s turns: its manifest's ``output`` over ``defaults`` (the
    ``agent_output`` setting, which the engine hands its runner)."""
    return agent.output.over(defaults)


def _model_string(spec: Mapping[str, Any], limit: int, limits: OutputLimits) -> dict[str, Any]:
    """A string of at most ``limit`` characters (the tool's own ``maxLength`` if lower)."""
    if isinstance(spec.get("pattern"), str):
        return {"type": "string", "pattern": spec["pattern"]}  # the tool's own shape
    low = int(spec.get("minLength", 0))
    high = max(min(int(spec.get("maxLength", limit)), limit), low, 1)
    if limits.charset == "basic":
        low = max(low, 1)
        if high <= GRAMMAR_BOUND:
            return {"type": "string", "pattern": _BASIC_STRING % (low, high)}
        return {"type": "string", "pattern": _BASIC_STRING % (low, ""), "maxLength": high}
    return {"type": "string", "minLength": low, "maxLength": high}


def _model_integer(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A small bounded range becomes an enum (a grammar enforces choices, not bounds);
    otherwise the bounds stay for the tool's validation to enforce."""
    low, high = spec.get("minimum"), spec.get("maximum")
    if isinstance(spec.get("exclusiveMinimum"), int):
        low = spec["exclusiveMinimum"] + 1
    if isinstance(spec.get("exclusiveMaximum"), int):
        high = spec["exclusiveMaximum"] - 1
    if isinstance(low, int) and isinstance(high, int) and 0 <= high - low < MODEL_INTEGER_CHOICES:
        return {"enum": list(range(low, high + 1))}
    bounds = {"minimum": low, "maximum": high}
    return {"type": "integer", **{k: v for k, v in bounds.items() if isinstance(v, int)}}


def model_schema(
    spec: Mapping[str, Any], limits: OutputLimits, depth: int = 0
) -> dict[str, Any] | None:
    """What a model may write for a value of JSON Schema ``spec``, every string and array
    bounded so a constrained generation always ends; None when ``spec`` is beyond that
    (a union, a reference, a free-form map, nesting deeper than ``MODEL_SCHEMA_DEPTH``)."""
    branches = spec.get("anyOf")
    if isinstance(branches, list):  # Optional[X] as pydantic writes it: offer the X
        present = [b for b in branches if isinstance(b, Mapping) and b.get("type") != "null"]
        return model_schema(present[0], limits, depth) if len(present) == 1 else None
    kind = spec.get("type")
    if "enum" in spec:
        return {"enum": list(spec["enum"])}
    if "const" in spec:
        return {"const": spec["const"]}
    if kind == "string":
        return _model_string(spec, limits.max_argument_chars, limits)
    if kind == "integer":
        return _model_integer(spec)
    if kind == "number":
        keep = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        return {"type": "number", **{k: spec[k] for k in keep if k in spec}}
    if kind == "boolean":
        return {"type": "boolean"}
    if depth >= MODEL_SCHEMA_DEPTH:
        return None
    if kind == "array" and isinstance(spec.get("items"), Mapping):
        items = model_schema(spec["items"], limits, depth + 1)
        if items is None:
            return None
        low = int(spec.get("minItems", 0))
        high = max(min(int(spec.get("maxItems", limits.max_items)), limits.max_items), low)
        return {"type": "array", "items": items, "minItems": low, "maxItems": high}
    if kind == "object" and isinstance(spec.get("properties"), Mapping):
        return model_object(spec, limits, depth + 1)
    return None


def model_object(
    parameters: Mapping[str, Any], limits: OutputLimits, depth: int = 0
) -> dict[str, Any] | None:
    """An object of the properties a model can fill; None when a required one is not."""
    properties: dict[str, Any] = {}
    for name, spec in (parameters.get("properties") or {}).items():
        shaped = model_schema(spec, limits, depth) if isinstance(spec, Mapping) else None
        if shaped is not None:
            properties[name] = shaped
    required = list(parameters.get("required", []))
    if any(name not in properties for name in required):
        return None
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _tool_arguments(
    agent: AgentManifest, toolbox: Toolbox, name: str, limits: OutputLimits
) -> dict[str, Any] | None:
    tool = toolbox.get(name)
    narrow = getattr(tool, "model_parameters", None)
    parameters = narrow(agent) if callable(narrow) else tool.parameters
    return model_object(parameters, limits)


def action_schema(
    agent: AgentManifest,
    toolbox: Toolbox,
    defaults: OutputLimits,
    *,
    answer: bool = True,
    tools: bool = True,
) -> dict[str, Any]:
    """The JSON Schema of one model turn: a call of one of the agent's tools, or the answer
    (``answer``/``tools`` False leave that option out; at least one stays). Each tool's
    arguments follow its own schema within the agent's :class:`OutputLimits` (its
    manifest's over ``defaults``); a tool whose required arguments a model cannot write
    is not offered."""
    limits = output_limits(agent, defaults)
    final = {
        "type": "object",
        "properties": {
            "action": {"const": "final"},
            "answer": _model_string({"minLength": 1}, limits.max_answer_chars, limits),
        },
        "required": ["action", "answer"],
        "additionalProperties": False,
    }
    calls: list[dict[str, Any]] = []
    for name in agent.tools:
        arguments = _tool_arguments(agent, toolbox, name, limits)
        if arguments is not None:
            calls.append(
                {
                    "type": "object",
                    "properties": {"action": {"const": name}, "arguments": arguments},
                    "required": ["action", "arguments"],
                    "additionalProperties": False,
                }
            )
    options = ([final] if answer or not calls else []) + (calls if tools or not answer else [])
    return {"anyOf": options or [final]}


def decoding_schema(schema: Any) -> Any:
    """``schema`` less the ``maxLength``/``maxItems`` bounds above ``GRAMMAR_BOUND``, which a
    llama.cpp grammar cannot hold; what a model writes is checked against ``schema`` after."""
    if isinstance(schema, list):
        return [decoding_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    return {
        key: decoding_schema(value)
        for key, value in schema.items()
        if not (
            key in ("maxLength", "maxItems") and isinstance(value, int) and value > GRAMMAR_BOUND
        )
    }


def native_tools(
    schema: Mapping[str, Any], toolbox: Toolbox
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The options of an ``action_schema`` (as decoded) as functions for native tool calling,
    and the action each function name stands for. Tool names become OpenAI function names
    (``memory.search`` → ``memory_search``, made unique); the answer is ``final``."""
    tools: list[dict[str, Any]] = []
    actions: dict[str, str] = {}
    for option in schema["anyOf"]:
        action = str(option["properties"]["action"]["const"])
        if action == "final":
            name, description = FINAL_TOOL, "Give your final answer (the whole reply)."
            parameters = {
                "type": "object",
                "properties": {"answer": option["properties"]["answer"]},
                "required": ["answer"],
                "additionalProperties": False,
            }
        else:
            name = _NOT_IN_NAME.sub("_", action)[:60]
            while name in actions or name == FINAL_TOOL:
                name = f"{name[:58]}_{len(actions)}"
            description = toolbox.get(action).description
            parameters = option["properties"]["arguments"]
        actions[name] = action
        tools.append({"name": name, "description": description, "parameters": parameters})
    return tools, actions


def offers_tools(schema: Mapping[str, Any]) -> bool:
    """Whether an ``action_schema`` offers a tool (not only the answer)."""
    return any(o["properties"]["action"].get("const") != "final" for o in schema["anyOf"])


def native_action(
    calls: list[tuple[str, dict[str, Any]]], text: str, actions: Mapping[str, str]
) -> dict[str, Any] | None:
    """The action dict of a natively answered turn: its first call, else its text as the
    answer when ``final`` was offered; None when the turn holds neither."""
    if calls:
        name, arguments = calls[0]
        if actions[name] == "final":
            return {"action": "final", "answer": arguments.get("answer", "")}
        return {"action": actions[name], "arguments": arguments}
    if FINAL_TOOL in actions:
        return {"action": "final", "answer": text.strip()}
    return None


def system_prompt(
    agent: AgentManifest, toolbox: Toolbox, defaults: OutputLimits, *, native: bool = False
) -> str:
    """The agent's instructions and the tools offered to it (those ``action_schema`` offers);
    ``native``: the model calls them as functions instead of writing JSON."""
    limits = output_limits(agent, defaults)
    lines = [agent.instructions.strip(), "", "Tools you may call:"]
    for name in agent.tools:
        arguments = _tool_arguments(agent, toolbox, name, limits)
        if arguments is not None:
            args = ", ".join(arguments["properties"])
            shown = _NOT_IN_NAME.sub("_", name) if native else name
            lines.append(f"- {shown}({args}): {toolbox.get(name).description}")
    if len(lines) == 3:
        lines.append("- none")
    if native:
        lines += ["", f"Call a tool, or call {FINAL_TOOL}(answer) to answer."]
    else:
        lines += [
            "",
            'Reply with JSON only: {"action": TOOL, "arguments": {...}} to call a tool, '
            'or {"action": "final", "answer": TEXT} to answer.',
        ]
    return "\n".join(lines)


def beyond(schema: dict[str, Any], data: dict[str, Any]) -> str:
    """Why ``data`` (valid under the decoding schema) breaks a bound of ``schema``, or ""."""
    import jsonschema  # noqa: PLC0415 - only turns with a model pay for it

    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(data)
    )
    if error is None:
        return ""
    where = "/".join(str(p) for p in error.absolute_path) or "the reply"
    unit = {"maxLength": "characters", "maxItems": "items"}.get(str(error.validator))
    if unit is not None:  # the message would repeat the whole over-long value
        return f"{where}: too long, at most {error.validator_value} {unit}."
    return f"{where}: {error.message[:200]}."
