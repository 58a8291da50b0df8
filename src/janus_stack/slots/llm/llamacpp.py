"""A local GGUF model run in process by llama.cpp (``llama-cpp-python``).

``llamacpp:///abs/path/model.gguf?n_ctx=2048&threads=2&chat_format=gemma``.
Options: ``n_ctx`` (context tokens, prompt + answer; default 2048),
``threads`` (default: up to 4 CPU cores), ``n_batch`` (prompt batch, default
256), ``chat_format`` (a llama-cpp-python format such as ``gemma`` or
``chatml``; default: the template stored in the GGUF), ``seed`` (sampling
seed, for reproducible answers at temperature > 0), ``json_retries``.

The engine is imported lazily; without the ``llm`` extra, opening the slot
is a ``SlotUnavailableError`` with the pip command. One engine serves one
generation at a time (llama.cpp contexts are not thread-safe): concurrent
calls wait for a lock.

Token counts are exact: a logits processor sees the prompt tokens on its
first call and counts every sampled token. ``json_schema`` becomes a
llama.cpp grammar (``response_format={"type": "json_object", "schema": …}``),
so the answer is JSON of that shape unless ``max_tokens`` cuts it. The
call's ``timeout`` is checked after every streamed token (generation stops
there); the evaluation of a long prompt cannot be interrupted, so a
deadline that passes during it is noticed at the first token.

Tools are emulated with a JSON schema (``native_tools`` is False), not
given to llama-cpp-python's own function calling: that honours
``tool_choice="auto"`` only under ``chat_format=chatml-function-calling``,
a ChatML prompt that replaces the GGUF's own template (wrong for models
trained on another), and fails on ``required`` (0.3); the grammar of the
emulating schema constrains every choice the same way with the model's
own template. For the same reason, messages in the OpenAI tool protocol
(an assistant's ``tool_calls``, ``tool`` results) are rewritten as plain
messages (``plain_messages``) for the GGUF's template.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from janus_stack.errors import InvalidInputError, SlotUnavailableError, SlotURLError
from janus_stack.slots.llm import LanguageModel, json_retries_option
from janus_stack.slots.llm.tools import plain_messages
from janus_stack.slots.llm.types import (
    LLMTimeoutError,
    Request,
    Usage,
)
from janus_stack.slots.params import check_params, display_url, int_param
from janus_stack.urls import SlotURL

ENGINE_HINT = "pip install 'janus-stack[llm]'  (builds llama-cpp-python; ~10 min on 2 cores)"


class _Meter:
    """A logits processor that only counts: prompt tokens on its first call, then each sample."""

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.sampled = 0
        self.timed_out = False

    def process(self, input_ids: Any, scores: Any) -> Any:
        if self.prompt_tokens is None:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return scores


class LlamaCppLanguageModel(LanguageModel):
    """A GGUF file run by llama.cpp in this process; see the module docstring."""

    backend: ClassVar[str] = "llamacpp"
    embedded: ClassVar[bool] = True
    hint: ClassVar[str] = "check the path of the GGUF file and that llama-cpp-python is installed"
    _params: ClassVar[set[str]] = {
        "n_ctx",
        "threads",
        "n_batch",
        "chat_format",
        "seed",
        "json_retries",
    }

    def __init__(self, url: SlotURL, *, json_retries: int | None = None) -> None:
        check_params(url, self._params)
        super().__init__(url, json_retries=json_retries_option(url, json_retries))
        parts = urlsplit(url.resolved)
        path = Path(unquote(parts.netloc + parts.path)).expanduser()
        if not path.is_absolute():
            raise SlotURLError(
                f"llm slot: {display_url(url)!r} must name an absolute path to a .gguf file",
                hint="write llamacpp:///abs/path/model.gguf (three slashes)",
            )
        self.path = path
        self.n_ctx = int_param(url, "n_ctx", 2048, minimum=16)
        self.threads = int_param(url, "threads", min(4, os.cpu_count() or 1))
        self.n_batch = int_param(url, "n_batch", 256)
        self.chat_format = url.query.get("chat_format") or None
        seed = url.query.get("seed")
        self.seed = int_param(url, "seed", 0, minimum=0) if seed is not None else None
        self._engine: Any = None
        self._name = path.stem
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self._name

    @property
    def max_tokens_limit(self) -> int:
        return self.n_ctx

    def _open(self) -> None:
        try:
            import llama_cpp  # noqa: PLC0415 - optional engine, in the llm extra
        except ImportError as exc:
            raise SlotUnavailableError(
                f"llm slot: {self.where} needs llama-cpp-python, which is not installed",
                hint=ENGINE_HINT,
            ) from exc
        if not self.path.is_file():
            raise SlotUnavailableError(
                f"llm slot: no model file at {self.path}",
                hint="check the path, or run `janus models list` to see installed models",
            )
        options: dict[str, Any] = {
            "model_path": str(self.path),
            "n_ctx": self.n_ctx,
            "n_threads": self.threads,
            "n_batch": min(self.n_batch, self.n_ctx),
            "chat_format": self.chat_format,
            "verbose": False,
        }
        if self.seed is not None:
            options["seed"] = self.seed
        self._engine = llama_cpp.Llama(**options)
        name = self._engine.metadata.get("general.name")
        if name:
            self._name = str(name)

    def _close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            close = getattr(engine, "close", None)
            if callable(close):
                close()

    def _generate(self, request: Request) -> Iterator[str | Usage]:
        import llama_cpp  # noqa: PLC0415

        meter = _Meter()
        options: dict[str, Any] = {
            "messages": list(plain_messages(request.messages)),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop) or None,
            "stream": True,
            "logits_processor": llama_cpp.LogitsProcessorList([meter.process]),
        }
        if request.json_schema is not None:
            options["response_format"] = {
                "type": "json_object",
                "schema": dict(request.json_schema),
            }
        remaining = request.remaining()
        if not self._lock.acquire(timeout=-1 if remaining is None else remaining):
            raise LLMTimeoutError(f"llm slot: {self.where} stayed busy past the timeout")
        try:
            yield from self._run(options, meter, request)
        finally:
            self._lock.release()

    def _run(
        self, options: dict[str, Any], meter: _Meter, request: Request
    ) -> Iterator[str | Usage]:
        finish: str | None = None
        try:
            for chunk in self._engine.create_chat_completion(**options):
                choice = chunk["choices"][0] if chunk.get("choices") else {}
                text = (choice.get("delta") or {}).get("content") or ""
                if text:
                    yield text
                finish = choice.get("finish_reason") or finish
                if request.expired():
                    meter.timed_out = True
                    break  # closing the engine's generator stops generation
        except ValueError as exc:
            if "context" in str(exc) or "tokens" in str(exc):
                raise InvalidInputError(
                    f"llm slot: {self.where}: {exc}",
                    hint=f"shorten the prompt or lower max_tokens (n_ctx={self.n_ctx})",
                ) from exc
            raise
        if meter.timed_out:
            raise LLMTimeoutError(
                f"llm slot: {self.where}: the call's timeout ran out mid-answer",
                hint="raise the call's timeout or lower max_tokens",
            )
        finish = finish or "stop"
        produced = meter.sampled - (1 if finish == "stop" and meter.sampled else 0)
        yield Usage(
            finish_reason=finish,
            model=self._name,
            prompt_tokens=meter.prompt_tokens,
            completion_tokens=produced,
        )
