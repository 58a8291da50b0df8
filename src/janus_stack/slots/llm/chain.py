"""``chain://?try=URL1&try=URL2``: a fallback chain, the first provider that can answer.

Each ``try=`` is a whole llm slot URL, tried in order. A provider is skipped
when it cannot be opened or reached, times out, breaks before its first
token, is rate limited or misconfigured (``LLMUnavailableError``,
``RateLimitedError``, ``ConfigError``, or any unexpected engine error), or
cannot take the requested ``max_tokens``; the reasons are kept in
``Completion.fallbacks`` and ``Completion.provider`` names the redacted URL
that answered. The caller's bad input (``InvalidInputError``) is never
retried elsewhere, and once a provider has streamed text a failure is
raised as is — the chain never repeats or mixes answers.

Writing the URL: a nested URL may stay readable (``+``, ``:`` and ``?``
are kept), but an ``&`` inside it must be written ``%26`` (or encode the
whole nested URL; ``chain_url(...)`` does that)::

    chain://?try=openai+http://gpu:8000/v1?model=qwen%26api_key=env:GPU_KEY
            &try=llamacpp:///home/me/.janus/models/gemma-3-270m-q4_k_m.gguf

Secrets inside a chain must be ``env:``/``file:`` references: a literal key
would not be masked inside the outer URL, so it is refused. Options of the
chain itself: ``json_retries``.

Tools pass through: the chain has ``native_tools`` when every provider has,
and each provider then sends them its own way (an OpenAI server that
rejects them emulates them with a JSON schema); otherwise the chain
emulates them once for all its providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar
from urllib.parse import quote, unquote, urlsplit

import structlog

from janus_stack.errors import InvalidInputError, JanusError, SlotURLError
from janus_stack.slots.base import _describe
from janus_stack.slots.llm import DEFAULT_JSON_RETRIES, LanguageModel
from janus_stack.slots.llm import open as open_llm
from janus_stack.slots.llm.tools import RawToolCall
from janus_stack.slots.llm.types import (
    LLMTimeoutError,
    LLMUnavailableError,
    Request,
    StreamInterruptedError,
    Usage,
)
from janus_stack.slots.params import display_url
from janus_stack.urls import MASK, SlotURL, redact

log = structlog.get_logger("janus.llm")


def chain_url(*urls: str) -> str:
    """Build a ``chain://`` URL from slot URLs, each fully encoded."""
    return "chain://?" + "&".join(f"try={quote(url, safe='')}" for url in urls)


def parse_chain(url: SlotURL) -> tuple[list[str], dict[str, str]]:
    """The nested URLs (as written, references unresolved) and the chain's own options."""
    query = urlsplit(url.raw).query
    tries: list[str] = []
    options: dict[str, str] = {}
    for piece in filter(None, query.split("&")):
        key, _, value = piece.partition("=")
        if key == "try":
            tries.append(unquote(value).strip())
        elif key == "json_retries":
            options[key] = unquote(value)
        else:
            raise SlotURLError(
                f"llm slot: unknown chain option ?{key} in {display_url(url)!r} (accepted: try, "
                "json_retries); inside a chain, write the & of a nested URL as %26",
                hint="or build the URL with janus_stack.slots.llm.chain.chain_url(url1, url2)",
            )
    if not tries or not all(tries):
        raise SlotURLError(
            f"llm slot: {display_url(url)!r} lists no provider",
            hint="write chain://?try=URL1&try=URL2 (first one first)",
        )
    return tries, options


class ChainLanguageModel(LanguageModel):
    """Providers tried in order; see the module docstring."""

    backend: ClassVar[str] = "chain"
    hint: ClassVar[str] = "check the providers listed in the chain:// URL"

    def __init__(self, url: SlotURL, *, json_retries: int | None = None) -> None:
        tries, options = parse_chain(url)
        if json_retries is None:
            text = options.get("json_retries", str(DEFAULT_JSON_RETRIES))
            if not text.isdigit():
                raise SlotURLError(f"llm slot: ?json_retries={text!r} must be an integer >= 0")
            json_retries = int(text)
        super().__init__(url, json_retries=json_retries)
        self.providers: list[LanguageModel] = []
        for text in tries:
            if MASK in redact(text) and MASK not in text:
                raise SlotURLError(
                    f"llm slot: a provider of the chain holds a literal secret: {redact(text)!r}",
                    hint="write secrets inside chain:// as env:NAME or file:/path references",
                )
            child = SlotURL.parse("llm", text)
            if child.scheme == "chain":
                raise SlotURLError("llm slot: a chain cannot contain another chain://")
            self.providers.append(open_llm(child, json_retries=0))
        self._answered_by: LanguageModel | None = None

    @property
    def model(self) -> str:
        if self._answered_by is not None:
            return self._answered_by.model
        return "chain(" + ", ".join(p.backend for p in self.providers) + ")"

    @property
    def max_tokens_limit(self) -> int:
        return max(p.max_tokens_limit for p in self.providers)

    def _open(self) -> None:
        failures: list[str] = []
        for provider in self.providers:
            try:
                provider.open()
            except JanusError as exc:
                failures.append(f"{provider.where}: {exc}")
                log.warning("llm.chain_open_failed", provider=provider.where, error=str(exc))
        if len(failures) == len(self.providers):
            raise LLMUnavailableError(
                "llm slot: no provider of the chain could be opened: " + "; ".join(failures),
                hint=self.hint,
            )

    def _close(self) -> None:
        for provider in self.providers:
            provider.close()

    @property
    def native_tools(self) -> bool:
        return all(p.native_tools for p in self.providers)

    def _generate(self, request: Request) -> Iterator[str | RawToolCall | Usage]:
        fallbacks: list[str] = []
        for provider in self.providers:
            if request.expired():
                raise LLMTimeoutError(
                    "llm slot: the call's timeout ran out while the chain was falling back: "
                    + "; ".join(fallbacks),
                    hint=self.hint,
                )
            reason = self._unusable(provider, request)
            if reason is not None:
                fallbacks.append(f"{provider.where}: {reason}")
                continue
            started = False
            try:
                for item in provider._pieces(request):
                    if isinstance(item, Usage):
                        self._answered_by = provider
                        yield replace(
                            item,
                            model=item.model or provider.model,
                            provider=item.provider or provider.where,
                            fallbacks=tuple(fallbacks),
                        )
                        continue
                    started = started or (isinstance(item, str) and bool(item))
                    yield item
            except InvalidInputError:
                raise
            except Exception as exc:
                if started:
                    if isinstance(exc, JanusError):
                        raise
                    raise StreamInterruptedError(
                        f"llm slot: {provider.where} failed mid-answer: {_describe(exc)}",
                        hint=provider.hint,
                    ) from exc
                fallbacks.append(f"{provider.where}: {_describe(exc)}")
                log.warning("llm.fallback", provider=provider.where, error=_describe(exc))
            else:
                return
        raise LLMUnavailableError(
            "llm slot: no provider of the chain could answer: " + "; ".join(fallbacks),
            hint=self.hint,
        )

    def _unusable(self, provider: LanguageModel, request: Request) -> str | None:
        if not provider.configured:
            return "no model configured"
        if not provider.is_open:
            try:
                provider.open()
            except JanusError as exc:
                return _describe(exc)
        if request.max_tokens > provider.max_tokens_limit:
            return f"max_tokens {request.max_tokens} exceeds its limit {provider.max_tokens_limit}"
        return None
