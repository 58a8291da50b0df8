"""Chat messages at the llm slot's boundary: their validation and a token estimate.

A message is a role/content dict (roles system/user/assistant/tool, an
optional ``name``), or a part of the OpenAI tool protocol: an assistant
message carrying ``tool_calls`` and a ``tool`` message answering one of
them by ``tool_call_id``. Backends that do not speak the protocol rewrite it
(``janus_stack.slots.llm.tools.plain_messages``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from janus_stack.errors import InvalidInputError

ROLES = frozenset({"system", "user", "assistant", "tool"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_call_id", "tool_calls"})

Message = dict[str, Any]  # str values, but an assistant's ``tool_calls`` is a list


def check_messages(messages: object) -> tuple[Message, ...]:
    """Return validated copies of ``messages`` or raise InvalidInputError naming the bad one.

    Besides role/content messages, the OpenAI tool protocol is accepted: an assistant
    message may carry ``tool_calls`` (its content then may be empty or null), and a
    ``tool`` message answers one of them by ``tool_call_id``. Backends that do not speak
    the protocol rewrite it (``janus_stack.slots.llm.tools.plain_messages``).
    """
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise InvalidInputError(
            f"llm slot: messages must be a list of role/content dicts, not "
            f"{type(messages).__name__}",
            hint='e.g. [{"role": "user", "content": "Hello"}]',
        )
    if not messages:
        raise InvalidInputError(
            "llm slot: messages is empty; there is nothing to answer",
            hint='give at least one message, e.g. [{"role": "user", "content": "Hello"}]',
        )
    checked = [_check_message(i, message) for i, message in enumerate(messages)]
    if all(not m["content"].strip() and not m.get("tool_calls") for m in checked):
        raise InvalidInputError("llm slot: every message is empty; there is nothing to answer")
    return tuple(checked)


def _check_message(i: int, message: object) -> Message:
    """Message #``i``, copied; the protocol's keys are accepted only where the protocol puts
    them, since a server rejects (or silently drops) them elsewhere."""
    if not isinstance(message, Mapping):
        raise InvalidInputError(
            f"llm slot: message #{i} is {type(message).__name__}, not a role/content dict"
        )
    unknown = sorted(str(k) for k in message if k not in MESSAGE_KEYS)
    if unknown:
        raise InvalidInputError(
            f"llm slot: message #{i} has unknown key(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(MESSAGE_KEYS))}"
        )
    role = message.get("role")
    if role not in ROLES:
        raise InvalidInputError(
            f"llm slot: message #{i} has role {role!r}; accepted: {', '.join(sorted(ROLES))}"
        )
    calls = message.get("tool_calls")
    if calls is not None and role != "assistant":
        raise InvalidInputError(
            f"llm slot: message #{i} ({role}) has tool_calls; only an assistant message "
            "makes tool calls"
        )
    content = message.get("content")
    if content is None and calls is not None:
        content = ""  # OpenAI clients send null content beside tool_calls
    if not isinstance(content, str):
        raise InvalidInputError(
            f"llm slot: message #{i} ({role}) has content of type {type(content).__name__}, not str"
        )
    copy: Message = {"role": str(role), "content": content}
    for key in ("name", "tool_call_id"):
        value = message.get(key)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise InvalidInputError(f"llm slot: message #{i} {key} must be a non-empty str")
            copy[key] = value
    if role == "tool" and "tool_call_id" not in copy:
        raise InvalidInputError(
            f"llm slot: message #{i} (tool) has no tool_call_id; a tool result names the "
            "id of the call it answers"
        )
    if role != "tool" and "tool_call_id" in copy:
        raise InvalidInputError(
            f"llm slot: message #{i} ({role}) has tool_call_id; only a tool message answers a call"
        )
    if calls is not None:
        copy["tool_calls"] = _check_tool_calls(i, calls)
    return copy


def _check_tool_calls(i: int, calls: object) -> list[dict[str, Any]]:
    """Copies of an assistant message's ``tool_calls`` in OpenAI's shape:
    ``[{"id", "type": "function", "function": {"name", "arguments": JSON text}}]``."""
    if isinstance(calls, str | bytes | Mapping) or not isinstance(calls, Sequence) or not calls:
        raise InvalidInputError(
            f"llm slot: message #{i} tool_calls must be a non-empty list of calls",
            hint='e.g. [{"id": "call_1", "type": "function", '
            '"function": {"name": "lookup", "arguments": "{}"}}]',
        )
    copies: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        where = f"message #{i} tool_calls[{j}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(call, Mapping) or not isinstance(function, Mapping):
            raise InvalidInputError(
                f"llm slot: {where} must be a dict with id, type and a function dict"
            )
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidInputError(f"llm slot: {where}.id must be a non-empty str")
        if call.get("type") != "function":
            raise InvalidInputError(
                f"llm slot: {where}.type is {call.get('type')!r}; accepted: 'function'"
            )
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"llm slot: {where}.function.name must be a non-empty str")
        if not isinstance(arguments, str):
            raise InvalidInputError(
                f"llm slot: {where}.function.arguments must be a str (the arguments as JSON "
                f"text), not {type(arguments).__name__}"
            )
        function_copy = {"name": name, "arguments": arguments}
        copies.append({"id": call_id, "type": "function", "function": function_copy})
    return copies


def estimate_tokens(text: str) -> int:
    """About four bytes of UTF-8 per token: a stand-in when a server reports no usage."""
    return math.ceil(len(text.encode("utf-8")) / 4) if text else 0


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """The estimate of a prompt: each message's content and tool calls, plus a few tokens of
    framing each."""
    return sum(_message_tokens(m) + 4 for m in messages)


def _message_tokens(message: Message) -> int:
    calls = message.get("tool_calls") or ()
    called = sum(
        estimate_tokens(str(c["function"]["name"]) + str(c["function"]["arguments"])) for c in calls
    )
    return estimate_tokens(str(message.get("content") or "")) + called
