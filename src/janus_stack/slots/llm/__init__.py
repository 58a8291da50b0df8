"""The llm slot: chat messages in, a streamed or whole answer out, with its numbers.

Contract: ``LanguageModel.complete(messages, *, max_tokens, temperature=0.0,
stop=None, json_schema=None, timeout=None, tools=None, tool_choice=None) -> Completion`` and
``LanguageModel.stream(...) -> Iterator[StreamEvent]``: ``TextDelta`` events
in order, then one ``Finished`` carrying the same ``Completion`` that
``complete`` returns. Messages are plain ``{"role", "content"}`` dicts (roles
system/user/assistant/tool; optional ``name``; the OpenAI tool protocol's
assistant ``tool_calls`` and tool ``tool_call_id``) and every
argument is validated here, once, before any backend sees it; bad input is
an ``InvalidInputError`` raised at the call (not at the first ``next()``).

A backend implements one narrow core, ``_generate(request)``: yield text
pieces, then one ``Usage``. Everything else is built on it here: the
deadline, time to first token and latency, token estimates when a server
reports no usage (``tokens_estimated``), the JSON check against
``json_schema`` (``complete`` retries invalid JSON ``json_retries`` times, at
temperature >= 0.5 so a retry can differ; ``stream`` cannot take back text it
already sent, so it checks once and raises ``ModelOutputError``), wrapping of
unexpected engine errors into ``LLMUnavailableError`` with the ``partial``
text, and one structured log line per answer (``llm.completion``).

Tools: ``tools`` (``Tool``s or ``{"name", "description", "parameters"}``
dicts) and ``tool_choice`` (``auto``, ``required`` or a tool's name) ask for
a tool call; ``Completion.tool_calls`` holds the calls, their arguments
validated against the tool's ``parameters`` like a ``json_schema`` answer
(and retried like one by ``complete``). A backend whose ``native_tools`` is
True sends them to the server's tool calling (``tool_mode="native"``);
otherwise a JSON schema emulates the call (``tool_mode="schema"``; the
streamed text is then that JSON, and ``text`` the content; see
``janus_stack.slots.llm.tools``). A named or ``required`` choice answered
without a call is a ``ModelOutputError``.

Backends, by URL scheme:

* ``none://`` (the default; also ``extractive://``): no model configured.
  ``configured`` is False and generation raises ``LLMUnavailableError``;
  callers answer extractively instead.
* ``openai+http(s)://host:port/v1?model=NAME``: any OpenAI-compatible
  ``/v1/chat/completions`` server (llama.cpp, Ollama, vLLM, LM Studio).
* ``llamacpp:///abs/path/model.gguf?n_ctx=2048``: a local GGUF in process.
* ``chain://?try=URL1&try=URL2``: the first provider that can answer.

The error hierarchy is drawn in ``janus_stack.slots.llm.types``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any, ClassVar

import structlog

from janus_stack.errors import IntegrityError, InvalidInputError, JanusError
from janus_stack.slots.base import Slot, _describe, load_backend
from janus_stack.slots.llm.messages import (
    Message,
    check_messages,
    estimate_prompt_tokens,
    estimate_tokens,
)
from janus_stack.slots.llm.tools import (
    RawToolCall,
    Tool,
    ToolCall,
    check_tool_choice,
    check_tools,
    emulate_tools,
    with_tool_calls,
)
from janus_stack.slots.llm.types import (
    MAX_TOKENS_LIMIT,
    Completion,
    Finished,
    LLMProtocolError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelOutputError,
    Request,
    StreamEvent,
    StreamInterruptedError,
    TextDelta,
    Usage,
    check_max_tokens,
    check_schema,
    check_stop,
    check_temperature,
    check_timeout,
    parse_json_answer,
)
from janus_stack.slots.params import display_url, int_param
from janus_stack.urls import SlotURL

__all__ = [
    "ACCEPTED_SCHEMES",
    "BACKENDS",
    "Completion",
    "Finished",
    "LLMProtocolError",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "LanguageModel",
    "Message",
    "ModelOutputError",
    "Request",
    "StreamEvent",
    "StreamInterruptedError",
    "TextDelta",
    "Tool",
    "ToolCall",
    "Usage",
    "open",
]

BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "none": "llm.none:NoLanguageModel",
        "extractive": "llm.none:NoLanguageModel",
        "openai+http": "llm.openai:OpenAILanguageModel",
        "openai+https": "llm.openai:OpenAILanguageModel",
        "llamacpp": "llm.llamacpp:LlamaCppLanguageModel",
        "chain": "llm.chain:ChainLanguageModel",
    }
)
ACCEPTED_SCHEMES: tuple[str, ...] = tuple(sorted(BACKENDS))

DEFAULT_JSON_RETRIES = 2
RETRY_TEMPERATURE = 0.5
PROBE_MESSAGES: tuple[Message, ...] = ({"role": "user", "content": "Reply with one word: ok"},)

log = structlog.get_logger("janus.llm")


def json_retries_option(url: SlotURL, json_retries: int | None) -> int:
    """``json_retries`` when the caller gives it, else the URL's ``?json_retries=`` (default 2)."""
    if json_retries is not None:
        return json_retries
    return int_param(url, "json_retries", DEFAULT_JSON_RETRIES, minimum=0)


class LanguageModel(Slot):
    """The contract of the llm slot; see the module docstring.

    Args:
        url: the slot URL; the backend reads its own options from the query.
        json_retries: extra generations ``complete`` may spend on invalid JSON.
    """

    slot: ClassVar[str] = "llm"
    configured: ClassVar[bool] = True
    hint: ClassVar[str] = "check that the model server is running and the slot URL is right"

    def __init__(self, url: SlotURL, *, json_retries: int = DEFAULT_JSON_RETRIES) -> None:
        super().__init__(url)
        self.json_retries = json_retries

    @property
    def where(self) -> str:
        """The slot URL as shown in errors, logs and ``Completion.provider``: secrets masked."""
        return display_url(self.url)

    @property
    def model(self) -> str:
        """The model's name as the backend knows it."""
        raise NotImplementedError

    @property
    def max_tokens_limit(self) -> int:
        """The largest ``max_tokens`` a call may ask for (the context size when known)."""
        return MAX_TOKENS_LIMIT

    @property
    def native_tools(self) -> bool:
        """Whether ``tools`` reach the model's own tool calling (else a JSON schema emulates
        them); callers that can phrase a turn either way ask this."""
        return False

    # -- public API built on the core ----------------------------------------

    def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: str | Sequence[str] | None = None,
        json_schema: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
    ) -> Completion:
        """Generate a whole answer; with ``json_schema``, ``data`` holds the validated JSON,
        with ``tools``, ``tool_calls`` the validated calls."""
        request = self._request(
            messages, max_tokens, temperature, stop, json_schema, timeout, tools, tool_choice
        )
        checked = request.json_schema is not None or bool(request.tools)
        attempts = 1 + (self.json_retries if checked else 0)
        failure: ModelOutputError | None = None
        for attempt in range(attempts):
            if attempt:
                request = replace(request, temperature=max(request.temperature, RETRY_TEMPERATURE))
            try:
                for event in self._events(request, attempt + 1):
                    if isinstance(event, Finished):
                        return event.completion
            except ModelOutputError as exc:
                failure = exc
                log.warning(
                    "llm.invalid_json", backend=self.backend, attempt=attempt + 1, error=str(exc)
                )
                if request.expired():
                    break
        assert failure is not None
        raise ModelOutputError(
            f"{failure} (after {attempt + 1} attempt(s))",
            text=failure.text,
            hint="make the prompt ask for this JSON explicitly, or use a stronger model",
        )

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        stop: str | Sequence[str] | None = None,
        json_schema: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: str | None = None,
    ) -> Iterator[StreamEvent]:
        """Generate an answer as ``TextDelta`` events, then one ``Finished``.

        Input is validated now; closing the iterator early stops generation.
        """
        request = self._request(
            messages, max_tokens, temperature, stop, json_schema, timeout, tools, tool_choice
        )
        return self._events(request, 1)

    def probe(self) -> None:
        """Generate a few tokens; the answer's content is not judged, only the plumbing."""
        completion = self.complete(PROBE_MESSAGES, max_tokens=4, timeout=60)
        if completion.completion_tokens < 0 or completion.latency_s < 0:
            raise IntegrityError(f"llm slot ({self.backend}): the probe got {completion}")

    # -- the core a backend implements -----------------------------------------

    def _generate(self, request: Request) -> Iterator[str | RawToolCall | Usage]:
        """Yield the answer's text pieces (empty ones are allowed), then one ``Usage``.

        Raise ``LLMTimeoutError`` past ``request.deadline``; retry transient
        failures only before the first non-empty piece. Only a backend whose
        ``native_tools`` is True gets requests with ``tools``; it yields each
        call as a ``RawToolCall`` before the ``Usage``.
        """
        raise NotImplementedError

    def _pieces(self, request: Request) -> Iterator[str | RawToolCall | Usage]:
        """``_generate``, with ``tools`` emulated by a JSON schema unless ``native_tools``."""
        if request.tools and not self.native_tools:
            return self._emulated_tools(request)
        return self._generate(request)

    def _emulated_tools(self, request: Request) -> Iterator[str | RawToolCall | Usage]:
        """``_generate`` with ``request``'s tools emulated by a JSON schema."""
        return emulate_tools(self._generate, request)

    # -- shared machinery ----------------------------------------------------------

    def _request(
        self,
        messages: object,
        max_tokens: object,
        temperature: object,
        stop: object,
        json_schema: object,
        timeout: object,
        tools: object = None,
        tool_choice: object = None,
    ) -> Request:
        self._require_open()
        checked_timeout = check_timeout(timeout)
        checked_tools = check_tools(tools)
        if checked_tools and json_schema is not None:
            raise InvalidInputError(
                "llm slot: give tools or json_schema, not both",
                hint="a tool's parameters already constrain its call's arguments",
            )
        return Request(
            messages=check_messages(messages),
            max_tokens=check_max_tokens(max_tokens, self.max_tokens_limit),
            temperature=check_temperature(temperature),
            stop=check_stop(stop),
            json_schema=check_schema(json_schema),
            deadline=None if checked_timeout is None else time.monotonic() + checked_timeout,
            tools=checked_tools,
            tool_choice=check_tool_choice(tool_choice, checked_tools),
        )

    def _events(self, request: Request, attempt: int) -> Iterator[StreamEvent]:
        start = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        calls: list[RawToolCall] = []
        pieces: Iterator[str | RawToolCall | Usage] | None = None
        try:
            pieces = self._pieces(request)
            for item in pieces:
                if isinstance(item, Usage):
                    usage = item
                elif isinstance(item, RawToolCall):
                    calls.append(item)
                elif item:
                    if first is None:
                        first = time.perf_counter() - start
                    parts.append(item)
                    yield TextDelta(item)
        except LLMUnavailableError as exc:
            exc.partial = exc.partial or "".join(parts)
            self._log_failure(exc, start)
            raise
        except JanusError:
            raise
        except Exception as exc:
            error = LLMUnavailableError(
                f"llm slot: {self.backend} at {self.where} failed: {_describe(exc)}",
                hint=self.hint,
                partial="".join(parts),
            )
            self._log_failure(error, start)
            raise error from exc
        finally:
            close = getattr(pieces, "close", None)
            if callable(close):
                close()
        # A server that reports no usage is estimated at one token per streamed piece;
        # a call's arguments count as their text would.
        produced = len(parts) + sum(estimate_tokens(call.arguments) for call in calls)
        completion = self._completion(request, "".join(parts), produced, usage, first, start)
        completion = replace(completion, attempts=attempt)
        log.info(
            "llm.completion",
            backend=self.backend,
            provider=completion.provider,
            model=completion.model,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            tokens_estimated=completion.tokens_estimated,
            ttft_s=completion.time_to_first_token_s,
            latency_s=completion.latency_s,
            finish_reason=completion.finish_reason,
            tool_mode=usage.tool_mode if usage is not None else "",
        )
        self.telemetry.llm_call(
            provider=completion.provider,
            model=completion.model,
            latency_s=completion.latency_s,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            time_to_first_token_s=completion.time_to_first_token_s,
        )
        if request.json_schema is not None:
            completion = replace(
                completion, data=parse_json_answer(completion.text, request.json_schema)
            )
        if request.tools:
            completion = with_tool_calls(request, completion, calls, usage)
        yield Finished(completion)

    def _completion(
        self,
        request: Request,
        text: str,
        pieces: int,
        usage: Usage | None,
        first: float | None,
        start: float,
    ) -> Completion:
        usage = usage or Usage(finish_reason="unknown")
        estimated = usage.prompt_tokens is None or usage.completion_tokens is None
        prompt = usage.prompt_tokens
        if prompt is None:
            prompt = estimate_prompt_tokens(request.messages)
        produced = usage.completion_tokens
        if produced is None:
            produced = pieces  # servers stream about one token per chunk
        return Completion(
            text=text,
            model=usage.model or self.model,
            prompt_tokens=prompt,
            completion_tokens=produced,
            time_to_first_token_s=first,
            latency_s=time.perf_counter() - start,
            finish_reason=usage.finish_reason,
            provider=usage.provider or self.where,
            tokens_estimated=estimated,
            fallbacks=usage.fallbacks,
        )

    def _log_failure(self, exc: LLMUnavailableError, start: float) -> None:
        self.telemetry.llm_call(
            provider=self.where,
            model=self.model,
            latency_s=time.perf_counter() - start,
            error=type(exc).__name__,
        )
        log.warning(
            "llm.failed",
            backend=self.backend,
            provider=self.where,
            error=type(exc).__name__,
            message=str(exc),
            partial_chars=len(exc.partial),
            latency_s=time.perf_counter() - start,
        )


def open(url: SlotURL | str, **options: Any) -> LanguageModel:
    """Construct (not open) the language model for ``url``; call ``.open()`` or use ``with``."""
    if isinstance(url, str):
        url = SlotURL.parse("llm", url)
    return load_backend(url, BACKENDS, LanguageModel, **options)
