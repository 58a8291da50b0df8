"""Value objects and errors of the llm slot, and the validation done once at its boundary.

Errors (all ``JanusError``; the chain falls back on the first three)::

    SlotUnavailableError
    └── LLMUnavailableError      the model could not answer; carries ``partial`` text
        ├── LLMTimeoutError      connect/read timeout, a stalled stream, the call's deadline
        ├── StreamInterruptedError  the stream broke after it started (server killed …)
        └── LLMProtocolError     the server answered something that is not the protocol
    ModelOutputError             the model's text is not the JSON asked for (after retries)
    InvalidInputError            the caller's messages or options are unusable (no fallback)

``partial`` is the text already streamed to the caller when the error struck;
it is never sent again, so a retry or fallback happens only before the first
token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from janus_stack.errors import InvalidInputError, JanusError, SlotUnavailableError
from janus_stack.slots.llm.messages import Message

if TYPE_CHECKING:  # tools.py builds on this module, so only the annotations name its types
    from janus_stack.slots.llm.tools import Tool, ToolCall

MAX_TOKENS_LIMIT = 32_768
MAX_STOP_SEQUENCES = 4


class LLMUnavailableError(SlotUnavailableError):
    """The model could not produce (all of) an answer; ``partial`` holds what was streamed."""

    def __init__(self, message: str, *, hint: str | None = None, partial: str = "") -> None:
        super().__init__(message, hint=hint)
        self.partial = partial


class LLMTimeoutError(LLMUnavailableError):
    """A connect or read timeout, a stalled stream, or the call's ``timeout`` ran out."""


class StreamInterruptedError(LLMUnavailableError):
    """The connection or engine failed after the stream had started."""


class LLMProtocolError(LLMUnavailableError):
    """The server's answer is not the OpenAI chat protocol (malformed JSON, no choices …)."""


class ModelOutputError(JanusError):
    """The model's answer does not satisfy the requested JSON schema; ``text`` is the answer."""

    def __init__(self, message: str, *, text: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.text = text


@dataclass(frozen=True)
class Request:
    """A validated generation request, as every backend receives it.

    Attributes:
        messages: role/content dicts, checked and copied.
        max_tokens: tokens to generate at most.
        temperature: 0 is greedy (deterministic on local engines).
        stop: strings that end the answer (not included in it).
        json_schema: when set, the answer must be JSON valid against it.
        deadline: ``time.monotonic()`` by which the whole call must end, or None.
        tools: functions the model may call instead of (or besides) answering.
        tool_choice: ``auto`` (call or answer), ``required`` (call one), or a
            tool's name (call that one); None without tools.
    """

    messages: tuple[Message, ...]
    max_tokens: int
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None
    deadline: float | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


@dataclass(frozen=True)
class Usage:
    """What a backend reports when its stream ends; None means "not reported"."""

    finish_reason: str
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    provider: str | None = None
    fallbacks: tuple[str, ...] = ()
    tool_mode: str = ""
    content: str | None = None  # the answer, when the streamed text was an emulated call's JSON


@dataclass(frozen=True)
class Completion:
    """One finished answer and how it was produced.

    Attributes:
        text: the answer.
        model: the model that produced it, as the backend names it.
        prompt_tokens / completion_tokens: as reported by the engine, or
            estimated when ``tokens_estimated`` (a server that sends no usage).
        time_to_first_token_s: seconds from the call to the first non-empty
            text, None when the answer is empty.
        latency_s: seconds from the call to the end of the answer.
        finish_reason: ``stop`` (natural end or a stop string), ``length``
            (``max_tokens`` reached) or what the server said.
        provider: the redacted URL of the backend that answered.
        fallbacks: providers a chain tried first, each with why it failed.
        data: the parsed JSON when a ``json_schema`` was given.
        attempts: generations needed to get valid JSON (1 otherwise).
        tool_calls: the calls the model made when ``tools`` were given.
        tool_mode: how tools were asked for: ``native`` (the server's tool
            calling), ``schema`` (emulated with a JSON schema), "" without tools.
    """

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float | None
    latency_s: float
    finish_reason: str
    provider: str = ""
    tokens_estimated: bool = False
    fallbacks: tuple[str, ...] = ()
    data: Any = None
    attempts: int = 1
    tool_calls: tuple[ToolCall, ...] = ()
    tool_mode: str = ""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_estimated": self.tokens_estimated,
            "time_to_first_token_s": self.time_to_first_token_s,
            "latency_s": self.latency_s,
            "finish_reason": self.finish_reason,
            "provider": self.provider,
            "fallbacks": list(self.fallbacks),
            "data": self.data,
            "attempts": self.attempts,
            "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in self.tool_calls],
            "tool_mode": self.tool_mode,
        }


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer, in order; never empty."""

    text: str


@dataclass(frozen=True)
class Finished:
    """The last event of a stream: the whole answer and its numbers."""

    completion: Completion = field()


StreamEvent = TextDelta | Finished


# -- validation at the boundary ---------------------------------------------


def check_max_tokens(value: object, limit: int = MAX_TOKENS_LIMIT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"llm slot: max_tokens must be an int, not {type(value).__name__}")
    if not 1 <= value <= limit:
        raise InvalidInputError(
            f"llm slot: max_tokens={value} is out of range; accepted: 1..{limit}",
            hint="ask for fewer tokens; the model's context holds the prompt and the answer",
        )
    return value


def check_temperature(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(
            f"llm slot: temperature must be a number, not {type(value).__name__}"
        )
    if not 0.0 <= float(value) <= 2.0:
        raise InvalidInputError(f"llm slot: temperature={value} is out of range; accepted: 0..2")
    return float(value)


def check_stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or isinstance(items, bytes):
        raise InvalidInputError(
            f"llm slot: stop must be a str or a list of str, not {type(value).__name__}"
        )
    stops = tuple(items)
    if len(stops) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) and s for s in stops):
        raise InvalidInputError(
            f"llm slot: stop must hold 1..{MAX_STOP_SEQUENCES} non-empty strings, not {value!r}"
        )
    return stops


def check_schema(value: object) -> Mapping[str, Any] | None:
    """A JSON Schema (as a dict), checked against its meta-schema."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"llm slot: json_schema must be a dict (a JSON Schema), not {type(value).__name__}"
        )
    import jsonschema  # noqa: PLC0415 - only callers asking for JSON pay for the import

    schema = dict(value)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInputError(
            f"llm slot: json_schema is not a valid JSON Schema: {exc.message}"
        ) from None
    return schema


def check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidInputError(
            f"llm slot: timeout must be a positive number of seconds, not {value!r}"
        )
    return float(value)


def parse_json_answer(text: str, schema: Mapping[str, Any]) -> Any:
    """The JSON value of ``text`` if it is valid against ``schema``; ModelOutputError otherwise.

    A fenced block (```json … ```), which chat models like to add, is unwrapped.
    """
    import jsonschema  # noqa: PLC0415

    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise ModelOutputError(
            f"llm slot: the answer is not JSON ({exc}): {text[:120]!r}", text=text
        ) from None
    error = jsonschema.exceptions.best_match(
        jsonschema.validators.validator_for(schema)(schema).iter_errors(value)
    )
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ModelOutputError(
            f"llm slot: the answer's JSON does not match the schema at {where}: {error.message}",
            text=text,
        )
    return value
