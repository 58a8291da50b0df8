"""Tool calling in the llm slot: what a tool and a call are, and every rule about them.

Why a module of its own: tool calling touches each layer of the slot — the
validation at its boundary, the contract (``LanguageModel`` emulates tools
for a backend without ``native_tools``) and the OpenAI backend (which sends
``tools`` and reads ``delta.tool_calls``). Its rules live here, once, so
those layers stay about their own job.

* ``check_tools`` / ``check_tool_choice`` validate the caller's ``tools``
  and ``tool_choice``.
* ``tools_schema`` / ``emulate_tools`` emulate a call where the provider has
  no tool calling: the answer is constrained to ``{"name", "arguments"}``
  or, for ``auto``, ``{"content"}`` JSON, and read back as a call.
* ``openai_tools`` / ``StreamedToolCalls`` are the OpenAI wire form: the
  request's ``tools`` + ``tool_choice``, and the calls assembled from the
  fragments a stream sends (or a whole ``message`` holds).
* ``parse_tool_call`` / ``with_tool_calls`` validate the calls a backend
  produced (``RawToolCall``) into the ``ToolCall``s of a ``Completion``.
* ``plain_messages`` rewrites a conversation in the OpenAI tool protocol
  (assistant ``tool_calls``, ``tool`` results) into role/content messages,
  for every request sent without native tools: the in-process engine, an
  OpenAI server asked without ``tools`` (``tools=off``, the emulation, a
  turn that can only answer). A chain hands each provider the same
  messages, so each backend rewrites them on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from janus_stack.errors import InvalidInputError
from janus_stack.slots.llm.messages import Message
from janus_stack.slots.llm.types import (
    Completion,
    ModelOutputError,
    Request,
    Usage,
    check_schema,
    parse_json_answer,
)

MAX_TOOLS = 128
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name
TOOL_CHOICES = ("auto", "required")


@dataclass(frozen=True)
class Tool:
    """A function the model may call: OpenAI's ``{"type": "function", "function": …}``.

    ``parameters`` is the JSON Schema (an object) the call's arguments must satisfy;
    they are validated against it like a ``json_schema`` answer.
    """

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: the tool's name and its validated arguments."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True)
class RawToolCall:
    """A call as a backend assembled it (arguments still JSON text); the slot validates it."""

    name: str
    arguments: str
    id: str = ""


# -- validation at the boundary ---------------------------------------------


def check_tools(value: object) -> tuple[Tool, ...]:
    """``Tool``s or ``{"name", "description"?, "parameters"?}`` dicts, names unique and
    OpenAI-shaped, parameters a JSON Schema of an object."""
    if value is None:
        return ()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise InvalidInputError(
            f"llm slot: tools must be a list of tools, not {type(value).__name__}"
        )
    if len(value) > MAX_TOOLS:
        raise InvalidInputError(f"llm slot: {len(value)} tools; accepted: at most {MAX_TOOLS}")
    tools: list[Tool] = []
    for i, item in enumerate(value):
        name: object
        description: object
        parameters: object
        if isinstance(item, Tool):
            name, description, parameters = item.name, item.description, item.parameters
        elif isinstance(item, Mapping):
            name = item.get("name")
            description = item.get("description", "")
            parameters = item.get("parameters", {"type": "object", "properties": {}})
        else:
            raise InvalidInputError(f"llm slot: tool #{i} is {type(item).__name__}, not a dict")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise InvalidInputError(
                f"llm slot: tool #{i} has name {name!r}; a name is 1-64 of A-Z a-z 0-9 _ -"
            )
        if not isinstance(description, str):
            raise InvalidInputError(f"llm slot: tool {name} has a description that is not a str")
        schema = check_schema(parameters)
        if schema is None or schema.get("type") != "object":
            raise InvalidInputError(
                f"llm slot: tool {name}: parameters must be a JSON Schema with type object"
            )
        if any(t.name == name for t in tools):
            raise InvalidInputError(f"llm slot: tool {name} is listed twice")
        tools.append(Tool(name=name, description=description, parameters=schema))
    return tuple(tools)


def check_tool_choice(value: object, tools: Sequence[Tool]) -> str | None:
    """``auto`` (the default with tools), ``required``, or the name of one of ``tools``."""
    if not tools:
        if value is not None:
            raise InvalidInputError("llm slot: tool_choice is given but tools is empty")
        return None
    if value is None:
        return "auto"
    if value in TOOL_CHOICES or any(t.name == value for t in tools):
        return str(value)
    raise InvalidInputError(
        f"llm slot: tool_choice={value!r}; accepted: auto, required or a tool's name "
        f"({', '.join(t.name for t in tools)})"
    )


# -- emulation with a JSON schema -------------------------------------------


def tools_schema(tools: Sequence[Tool], choice: str) -> dict[str, Any]:
    """The JSON Schema that emulates a tool call where the provider has no tool calling:
    ``{"name": TOOL, "arguments": {...}}``, or (``auto``) ``{"content": TEXT}``."""
    offered = [t for t in tools if choice in TOOL_CHOICES or t.name == choice]
    options: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": dict(t.parameters)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in offered
    ]
    if choice == "auto":
        options.append(
            {
                "type": "object",
                "properties": {"content": {"type": "string"}},
                "required": ["content"],
                "additionalProperties": False,
            }
        )
    return {"anyOf": options}


def emulate_tools(
    generate: Callable[[Request], Iterator[str | RawToolCall | Usage]], request: Request
) -> Iterator[str | RawToolCall | Usage]:
    """``generate`` (a backend's core) asked for the ``tools_schema`` of ``request``'s tools:
    its text pieces as they come, then the call its JSON names, then its ``Usage`` (with
    ``tool_mode="schema"`` and, for an answer without a call, ``content``)."""
    assert request.tool_choice is not None
    schema = tools_schema(request.tools, request.tool_choice)
    parts: list[str] = []
    usage = Usage(finish_reason="unknown")
    for item in generate(replace(request, tools=(), tool_choice=None, json_schema=schema)):
        if isinstance(item, Usage):
            usage = item
            continue
        if isinstance(item, str):
            parts.append(item)
        yield item
    data = parse_json_answer("".join(parts), schema)
    if "name" in data:
        yield RawToolCall(name=data["name"], arguments=json.dumps(data["arguments"]))
        yield replace(usage, tool_mode="schema")
    else:
        yield replace(usage, tool_mode="schema", content=data["content"])


# -- the OpenAI wire form -----------------------------------------------------


def openai_tools(tools: Sequence[Tool], choice: str | None) -> dict[str, Any]:
    """The ``tools`` and ``tool_choice`` of an OpenAI chat request."""
    return {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": dict(tool.parameters),
                },
            }
            for tool in tools
        ],
        "tool_choice": (
            choice if choice in TOOL_CHOICES else {"type": "function", "function": {"name": choice}}
        ),
    }


class StreamedToolCalls:
    """Tool calls assembled from OpenAI chunks: per ``index``, the first id and name, and the
    argument fragments in order (a whole ``message`` has each call in one piece)."""

    def __init__(self) -> None:
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments…]

    def add(self, body: Any, key: str) -> None:
        """Take the ``tool_calls`` of ``body``'s first choice's ``key`` (delta or message);
        TypeError when they are not the protocol's shape."""
        choices = body.get("choices") if isinstance(body, dict) else None
        if not choices or not isinstance(choices[0], dict):
            return
        part = choices[0].get(key) or {}
        for position, call in enumerate(part.get("tool_calls") or []):
            if not isinstance(call, dict) or not isinstance(call.get("function") or {}, dict):
                raise TypeError("a tool call is not an object")
            index = call.get("index", position)
            if not isinstance(index, int):
                raise TypeError("a tool call's index is not an integer")
            function = call.get("function") or {}
            name, arguments = function.get("name"), function.get("arguments")
            entry = self._calls.setdefault(index, ["", ""])
            if isinstance(call.get("id"), str) and not entry[0]:
                entry[0] = call["id"]
            if isinstance(name, str) and not entry[1]:
                entry[1] = name
            if arguments is not None:
                if not isinstance(arguments, str):
                    raise TypeError("a tool call's arguments are not a string")
                entry.append(arguments)

    def __bool__(self) -> bool:
        return bool(self._calls)

    def finished(self) -> Iterator[RawToolCall]:
        for index in sorted(self._calls):
            call_id, name, *fragments = self._calls[index]
            yield RawToolCall(name=name, arguments="".join(fragments), id=call_id)


# -- the calls of a completion ------------------------------------------------


def parse_tool_call(call: RawToolCall, tools: Sequence[Tool]) -> ToolCall:
    """``call`` with its arguments parsed and valid against its tool's parameters, or
    ModelOutputError (an unknown tool, arguments that are not that JSON)."""
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        raise ModelOutputError(
            f"llm slot: the model called {call.name!r}, which is not one of the tools offered",
            text=call.arguments,
        )
    arguments = parse_json_answer(call.arguments or "{}", tool.parameters)
    return ToolCall(name=call.name, arguments=arguments, id=call.id)


def with_tool_calls(
    request: Request, completion: Completion, calls: Sequence[RawToolCall], usage: Usage | None
) -> Completion:
    """``completion`` with its calls validated; a forced call that did not come is an error."""
    choice = request.tool_choice
    named = [t for t in request.tools if t.name == choice]  # the only one offered, if any
    tool_calls = tuple(parse_tool_call(call, named or request.tools) for call in calls)
    if not tool_calls and request.tool_choice != "auto":
        raise ModelOutputError(
            f"llm slot: tool_choice={request.tool_choice!r} but the model called no tool",
            text=completion.text,
        )
    text = completion.text
    if usage is not None and usage.content is not None:
        text = usage.content
    mode = usage.tool_mode if usage is not None and usage.tool_mode else "native"
    return replace(completion, text=text, tool_calls=tool_calls, tool_mode=mode)


# -- the tool protocol for backends without it ----------------------------------


def plain_messages(
    messages: Sequence[Message], names: Mapping[str, str] | None = None
) -> tuple[Message, ...]:
    """``messages`` (validated) without the tool protocol, for a prompt sent without native
    tools: an assistant's ``tool_calls`` become its content, one ``{"action": NAME,
    "arguments": {...}}`` JSON line per call, and a ``tool``
    message becomes the user message ``Result of NAME: CONTENT``, NAME being the function
    its ``tool_call_id`` called (else its ``name``, else the id), or what ``names`` maps
    that function to (the caller's own name for the tool). Without tool messages or
    calls, ``messages`` come back as they are."""
    if not any(m["role"] == "tool" or "tool_calls" in m for m in messages):
        return tuple(messages)
    renamed = names or {}
    called: dict[str, str] = {}  # call id -> the name shown
    plain: list[Message] = []
    for message in messages:
        calls = message.get("tool_calls") or []
        if calls:
            shown = [renamed.get(c["function"]["name"], c["function"]["name"]) for c in calls]
            called.update((c["id"], name) for c, name in zip(calls, shown, strict=True))
            lines = [message["content"]] if message["content"].strip() else []
            lines += [
                _call_text(name, c["function"]["arguments"])
                for c, name in zip(calls, shown, strict=True)
            ]
            plain.append({"role": "assistant", "content": "\n".join(lines)})
        elif message["role"] == "tool":
            call_id = message["tool_call_id"]
            name = called.get(call_id) or message.get("name") or call_id
            plain.append({"role": "user", "content": f"Result of {name}: {message['content']}"})
        else:
            plain.append(dict(message))
    return tuple(plain)


def _call_text(name: str, arguments_json: str) -> str:
    """A call as the JSON an emulated call is written in; arguments that are not JSON
    stay the text they are."""
    try:
        arguments: Any = json.loads(arguments_json or "{}")
    except ValueError:
        arguments = arguments_json
    return json.dumps({"action": name, "arguments": arguments}, ensure_ascii=False)
