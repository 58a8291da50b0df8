"""Any OpenAI-compatible ``/v1/chat/completions`` server, streamed over SSE with httpx.

``openai+http://host:port/v1?model=NAME&api_key=env:KEY`` (or ``openai+https://``)
reaches llama.cpp (``llama-server``, ``python -m llama_cpp.server``), Ollama
(``:11434/v1``), vLLM, LM Studio and OpenAI itself. Options:

* ``model`` — the name the server expects; without it, the first model the
  server lists at ``GET /v1/models`` is used.
* ``api_key`` — sent as ``Authorization: Bearer``; give ``env:NAME`` or ``file:/path``.
* ``timeout`` (s, default 60) — the longest silence while waiting for or
  reading the stream; a stream that stalls longer is an ``LLMTimeoutError``.
  ``connect_timeout`` (s, default 5) bounds connecting.
* ``retries`` (default 2) and ``backoff`` (first delay in s, doubled, default
  0.5) — connection failures, timeouts, 408/425/429/5xx are retried, honouring
  ``Retry-After``, but **only before the first token**: text already streamed
  is never sent twice, so a failure after it is a ``StreamInterruptedError``
  (or ``LLMTimeoutError``) carrying the ``partial`` text.
* ``json`` — how ``json_schema`` is asked for: ``auto`` (default) sends
  OpenAI's ``{"type": "json_schema"}`` and, if the server rejects it, the
  ``{"type": "json_object", "schema": …}`` of llama.cpp, then only the
  prompt; ``schema``, ``object`` or ``off`` pin one. The answer is always
  validated client-side (see the slot's contract).
* ``json_retries`` (default 2) — extra generations on invalid JSON.
* ``tools`` — how a request's ``tools`` are asked for: ``auto`` (default)
  sends OpenAI's ``tools`` + ``tool_choice`` and reads the calls from
  ``delta.tool_calls`` (fragments of one ``index`` concatenated) or
  ``message.tool_calls``; if the server rejects them (a 4xx naming
  tools/tool_choice/functions) or ignores them (a forced ``tool_choice``
  answered with text, or an empty stream), before any text reaches the
  caller, this model instance remembers it and emulates tools with a JSON
  schema from then on, as ``json=auto`` does. ``native`` pins the server's
  tool calling, ``off`` the emulation.
  llama-cpp-python's server (0.3) forces a call under a grammar for a
  named ``tool_choice`` with any chat format; other formats ignore
  ``auto``/``required`` (they answer in text), and ``--chat_format
  chatml-function-calling`` fails on ``required`` and on a call chosen
  under a streamed ``auto`` (an empty stream) and leaves its ``auto``
  message empty: only a named choice is native there.

* ``tool_results`` — how earlier calls and their results travel back:
  ``protocol`` (default) sends the OpenAI tool messages (an assistant's
  ``tool_calls``, ``tool`` results) as they are with ``tools``; ``plain``
  always rewrites them as role/content messages (``plain_messages``), for
  servers whose chat templates drop part of the protocol:
  llama-cpp-python's server (0.3) renders the result but not the call
  with the GGUF's own template, the call but not the result with
  ``chatml-function-calling``. A request without ``tools`` (``tools=off``,
  the emulation, a plain call) always gets plain messages, as a server may
  refuse or misrender the protocol when it was offered no tools.

Usage: ``stream_options.include_usage`` is requested; a server that rejects
the option is asked again without it, and one that sends no usage gets
estimated counts (``Completion.tokens_estimated``). A server that answers a
whole JSON completion instead of a stream is accepted too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar

import httpx
import structlog

from janus_stack.errors import ConfigError, JanusError
from janus_stack.slots.llm import LanguageModel, json_retries_option
from janus_stack.slots.llm._sse import DONE, Chunk, iter_events, parse_chunk, parse_whole
from janus_stack.slots.llm.tools import (
    RawToolCall,
    StreamedToolCalls,
    openai_tools,
    plain_messages,
)
from janus_stack.slots.llm.types import (
    LLMProtocolError,
    LLMTimeoutError,
    LLMUnavailableError,
    Request,
    StreamInterruptedError,
    Usage,
)
from janus_stack.slots.openai_http import (
    RETRYABLE,
    backoff_delay,
    base_url,
    retry_after_seconds,
    server_message,
    status_error,
)
from janus_stack.slots.params import check_params, choice_param, float_param, int_param
from janus_stack.urls import SlotURL

_JSON_MODES = ("auto", "schema", "object", "off")
_TOOL_MODES = ("auto", "native", "off")
_TOOL_RESULTS = ("protocol", "plain")

log = structlog.get_logger("janus.llm")


class _ToolsIgnored(Exception):  # noqa: N818 - a signal inside this module, not an error
    """The server took ``tools`` but did not do tool calling; raised before any text."""


class OpenAILanguageModel(LanguageModel):
    """An OpenAI-compatible chat server; see the module docstring."""

    backend: ClassVar[str] = "openai"
    hint: ClassVar[str] = "check that the model server is running and the slot URL is right"
    _params: ClassVar[set[str]] = {
        "model",
        "api_key",
        "timeout",
        "connect_timeout",
        "retries",
        "backoff",
        "json",
        "json_retries",
        "tools",
        "tool_results",
    }

    def __init__(self, url: SlotURL, *, json_retries: int | None = None) -> None:
        check_params(url, self._params)
        super().__init__(url, json_retries=json_retries_option(url, json_retries))
        query = url.query
        self._model_name = query.get("model", "").strip()
        self.timeout = float_param(url, "timeout", 60.0)
        self.connect_timeout = float_param(url, "connect_timeout", 5.0)
        self.retries = int_param(url, "retries", 2, minimum=0)
        self.backoff = float_param(url, "backoff", 0.5)
        mode = choice_param(url, "json", _JSON_MODES)
        self._json_modes = ["schema", "object", "off"] if mode == "auto" else [mode]
        self._send_usage_option = True
        tools = choice_param(url, "tools", _TOOL_MODES)
        self._native_tools = tools != "off"
        self._tools_fallback = tools == "auto"
        self._tool_protocol = choice_param(url, "tool_results", _TOOL_RESULTS) == "protocol"
        self._api_key = query.get("api_key") or None
        self.base_url = base_url(url)
        self._where = self.where
        self._client: httpx.Client | None = None

    @property
    def model(self) -> str:
        return self._model_name or "unknown"

    @property
    def native_tools(self) -> bool:
        return self._native_tools

    def _open(self) -> None:
        headers = {"Accept": "application/json, text/event-stream"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
        )
        try:
            self._check_server(client)
        except BaseException:
            client.close()
            raise
        self._client = client

    def _check_server(self, client: httpx.Client) -> None:
        """One ``GET models``: the server is up, the key works, and a model has a name."""
        try:
            response = client.get("models")
        except httpx.TransportError as exc:
            raise LLMUnavailableError(
                f"llm slot: cannot reach {self._where}: {type(exc).__name__}: {exc}",
                hint=self.hint,
            ) from exc
        if response.status_code in (401, 403):
            raise self._http_error(response, 1)
        listed: list[str] = []
        if response.status_code == 200:
            try:
                listed = [str(item["id"]) for item in response.json()["data"]]
            except (ValueError, KeyError, TypeError):
                listed = []
        if not self._model_name:
            if not listed:
                raise ConfigError(
                    f"llm slot: {self._where} names no model and the server lists none",
                    hint="add ?model=NAME, the model name the server expects",
                )
            self._model_name = listed[0]

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- generation -------------------------------------------------------------

    def _generate(self, request: Request) -> Iterator[str | RawToolCall | Usage]:
        attempt = 0
        while True:
            started = False
            retry_after: float | None = None
            try:
                with self._post(request) as response:
                    if response.status_code == 200:
                        for item in self._read(response, request):
                            started = started or (isinstance(item, str) and bool(item))
                            yield item
                        return
                    response.read()
                    if self._refuses_tools(response, request):
                        self._stop_native_tools(response.status_code, server_message(response))
                        yield from self._emulated_tools(request)
                        return
                    if self._downgrade(response):
                        continue
                    if response.status_code not in RETRYABLE or attempt >= self.retries:
                        raise self._http_error(response, attempt + 1)
                    retry_after = retry_after_seconds(response)
            except _ToolsIgnored as exc:
                self._stop_native_tools(200, str(exc))
                yield from self._emulated_tools(request)
                return
            except httpx.TimeoutException as exc:
                if started or attempt >= self.retries or request.expired():
                    raise LLMTimeoutError(
                        f"llm slot: {self._where} timed out "
                        f"{'mid-stream' if started else 'before the first token'} "
                        f"({type(exc).__name__}, timeout {self._read_timeout(request):.1f}s, "
                        f"attempt {attempt + 1})",
                        hint="raise ?timeout= or the call's timeout, or check the server's load",
                    ) from exc
            except httpx.TransportError as exc:
                if started:
                    raise StreamInterruptedError(
                        f"llm slot: the stream from {self._where} broke mid-answer: "
                        f"{type(exc).__name__}: {exc}",
                        hint="the server may have been stopped or crashed; the partial text "
                        "is on the error",
                    ) from exc
                if attempt >= self.retries:
                    raise LLMUnavailableError(
                        f"llm slot: cannot reach {self._where} after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}: {exc}",
                        hint=self.hint,
                    ) from exc
            attempt += 1
            self._wait(attempt, retry_after, request)

    def _post(self, request: Request) -> Any:
        assert self._client is not None
        read = self._read_timeout(request)
        return self._client.stream(
            "POST",
            "chat/completions",
            json=self._payload(request),
            timeout=httpx.Timeout(read, connect=min(self.connect_timeout, read)),
        )

    def _read_timeout(self, request: Request) -> float:
        remaining = request.remaining()
        if remaining is None:
            return self.timeout
        return max(0.001, min(self.timeout, remaining))

    def _payload(self, request: Request) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self._model_name,
            "messages": list(
                request.messages
                if request.tools and self._tool_protocol
                else plain_messages(request.messages)
            ),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
        }
        if self._send_usage_option:
            payload["stream_options"] = {"include_usage": True}
        if request.stop:
            payload["stop"] = list(request.stop)
        schema = request.json_schema
        if schema is not None:
            mode = self._json_modes[0]
            if mode == "schema":
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": dict(schema)},
                }
            elif mode == "object":
                payload["response_format"] = {"type": "json_object", "schema": dict(schema)}
        if request.tools:
            payload.update(openai_tools(request.tools, request.tool_choice))
        return payload

    def _refuses_tools(self, response: httpx.Response, request: Request) -> bool:
        """With ``tools=auto``: the server rejected ``tools`` (a 4xx naming them), so this
        instance emulates them from now on; True when that is the case."""
        if not (request.tools and self._tools_fallback and 400 <= response.status_code < 500):
            return False
        detail = server_message(response).lower()
        return any(word in detail for word in ("tool", "function"))

    def _stop_native_tools(self, status: int, why: str) -> None:
        self._native_tools = False
        log.warning("llm.tools_fallback", provider=self._where, status=status, reason=why[:200])

    def _check_tools_used(self, request: Request, text: str, calls: StreamedToolCalls) -> None:
        """With ``tools=auto``: text before any call under a forced ``tool_choice`` means the
        server ignores tools (llama-cpp-python without a function-calling chat format)."""
        forced = request.tools and request.tool_choice != "auto"
        if forced and text and not calls and self._tools_fallback:
            raise _ToolsIgnored(f"text instead of a call under tool_choice={request.tool_choice}")

    def _downgrade(self, response: httpx.Response) -> bool:
        """Drop an optional request feature the server refused; True when one was dropped.

        llama-cpp-python answers a request it cannot validate with 500, not 400/422.
        """
        if response.status_code not in (400, 422, 500):
            return False
        detail = server_message(response).lower()
        if self._send_usage_option and "stream_options" in detail:
            self._send_usage_option = False
            return True
        if len(self._json_modes) > 1 and any(
            word in detail for word in ("response_format", "json_schema", "json_object", "schema")
        ):
            self._json_modes.pop(0)
            return True
        return False

    def _read(
        self, response: httpx.Response, request: Request
    ) -> Iterator[str | RawToolCall | Usage]:
        """Turn one 200 response (a stream, or a whole JSON completion) into pieces, the
        tool calls, and Usage."""
        mode = "native" if request.tools else ""
        calls = StreamedToolCalls()
        if "application/json" in response.headers.get("content-type", ""):
            try:
                body = json.loads(response.read())
                chunk = parse_whole(body)
                if request.tools:
                    calls.add(body, "message")
            except (ValueError, TypeError) as exc:
                raise self._protocol_error(exc, response.text) from exc
            self._raise_if_error(chunk, started=False)
            self._check_tools_used(request, chunk.text, calls)
            yield chunk.text
            yield from calls.finished()
            yield replace(_usage(chunk, chunk.finish_reason or "stop"), tool_mode=mode)
            return
        finish: str | None = None
        model: str | None = None
        prompt = produced = None
        done = started = False
        events = 0
        for data in iter_events(response.iter_lines()):
            events += 1
            if data.strip() == DONE:
                done = True
                break
            if request.expired():
                raise LLMTimeoutError(f"llm slot: {self._where}: the call's timeout ran out")
            try:
                chunk = parse_chunk(data)
                if request.tools and '"tool_calls"' in data:
                    calls.add(json.loads(data), "delta")
            except (ValueError, TypeError) as exc:
                raise self._protocol_error(exc, data) from exc
            self._raise_if_error(chunk, started=started)
            if chunk.text:
                self._check_tools_used(request, chunk.text, calls)
                started = True
                yield chunk.text
            finish = chunk.finish_reason or finish
            prompt = chunk.prompt_tokens if chunk.prompt_tokens is not None else prompt
            produced = chunk.completion_tokens if chunk.completion_tokens is not None else produced
            model = chunk.model or model
        if not events and request.tools and self._tools_fallback:
            raise _ToolsIgnored("an empty stream")  # llama-cpp-python 0.3 on tool_choice=required
        if not done and finish is None:
            raise StreamInterruptedError(
                f"llm slot: the stream from {self._where} ended before the answer was finished "
                "(no finish_reason, no [DONE])",
                hint=self.hint,
            )
        yield from calls.finished()
        yield Usage(
            finish_reason=finish or "unknown",  # [DONE] without a reason: cut short by the server
            model=model,
            prompt_tokens=prompt,
            completion_tokens=produced,
            tool_mode=mode,
        )

    def _raise_if_error(self, chunk: Chunk, *, started: bool) -> None:
        if chunk.error is None:
            return
        kind = StreamInterruptedError if started else LLMUnavailableError
        raise kind(f"llm slot: {self._where} reported an error: {chunk.error}", hint=self.hint)

    def _protocol_error(self, exc: Exception, data: str) -> LLMProtocolError:
        return LLMProtocolError(
            f"llm slot: {self._where} sent something that is not an OpenAI chat completion "
            f"({exc}): {data[:120]!r}",
            hint="check that the URL points at an OpenAI-compatible /v1 endpoint",
        )

    def _wait(self, attempt: int, retry_after: float | None, request: Request) -> None:
        delay = backoff_delay(self.backoff, attempt, retry_after)
        remaining = request.remaining()
        if remaining is not None and delay >= remaining:
            raise LLMTimeoutError(
                f"llm slot: {self._where}: the call's timeout runs out before retry {attempt}",
                hint="raise the call's timeout, or check the server",
            )
        time.sleep(delay)

    def _http_error(self, response: httpx.Response, attempts: int) -> JanusError:
        return status_error(
            response,
            slot="llm",
            where=f"{self._model_name or 'the model'!r} at {self._where}",
            attempts=attempts,
            backoff=self.backoff,
            unavailable=LLMUnavailableError,
            hint=self.hint,
            too_large_hint="shorten the prompt",
            rejected_hint="shorten the prompt or lower max_tokens if the context is exceeded",
        )


def _usage(chunk: Chunk, finish: str) -> Usage:
    return Usage(
        finish_reason=finish,
        model=chunk.model,
        prompt_tokens=chunk.prompt_tokens,
        completion_tokens=chunk.completion_tokens,
    )
