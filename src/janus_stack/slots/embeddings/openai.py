"""Any OpenAI-compatible ``/v1/embeddings`` server (llama.cpp, Ollama, vLLM, TEI, OpenAI).

``openai+http://host:port/v1?model=NAME&dim=384&api_key=env:KEY`` (or
``openai+https://``). Options: ``batch`` (texts per request, default 64),
``timeout`` (seconds per request, default 30), ``retries`` (default 3) and
``backoff`` (first delay in seconds, doubled each retry, default 0.5),
``max_tokens`` (default 256) and ``tokenizer`` (a ``tokenizer.json``).

Why a local tokenizer: the OpenAI protocol has no tokenize endpoint, yet
the chunker must know token bounds before it sends anything. By default
the MiniLM WordPiece tokenizer (installed with Janus) stands in for the
server's; for another model that is an approximation, so give the server
model's own ``tokenizer.json`` with ``?tokenizer=`` for exact counts, and
keep ``max_tokens`` a little below the server's limit otherwise. Texts
longer than ``max_tokens`` are cut client-side at a token bound, so a
server that refuses long inputs never sees one.

Retries: connection failures, timeouts, 429 and 5xx are retried with
exponential backoff (a server's ``Retry-After`` is honoured); a 4xx is the
caller's or the configuration's fault and fails at once with the server's
message. ``open()`` sends one request, so an unreachable server, a wrong
model name or key, or a ``?dim=`` the server contradicts fail at start-up.
"""

from __future__ import annotations

import base64
import time
from typing import Any, ClassVar

import httpx
import numpy as np
from numpy.typing import NDArray

from janus_stack.errors import (
    ClosedError,
    ConfigError,
    JanusError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.embeddings.minilm import MAX_TOKENS, WordPieces, default_tokenizer
from janus_stack.slots.openai_http import (
    RETRYABLE,
    backoff_delay,
    base_url,
    retry_after_seconds,
    status_error,
)
from janus_stack.slots.params import check_params, float_param, int_param
from janus_stack.urls import SlotURL

_PROBE_TEXT = "Janus checks the embedding server."


class OpenAIEmbedder(Embedder):
    """An OpenAI-compatible embeddings endpoint; see the module docstring."""

    backend: ClassVar[str] = "openai"
    default_batch_size: ClassVar[int] = 64
    hint: ClassVar[str] = "check that the embedding server is running and the URL is right"
    _params: ClassVar[set[str]] = {
        "model",
        "dim",
        "api_key",
        "batch",
        "timeout",
        "retries",
        "backoff",
        "max_tokens",
        "tokenizer",
    }

    def __init__(self, url: SlotURL, *, batch_size: int | None = None) -> None:
        super().__init__(url, batch_size=batch_size)
        check_params(url, self._params)
        query = url.query
        name = query.get("model", "").strip()
        if not name:
            raise SlotURLError(
                f"embeddings slot: {url.redacted!r} names no model",
                hint="add ?model=NAME, the model name the server expects",
            )
        self._model_name = name
        self._expected_dim = int_param(url, "dim", 0, minimum=0) or None
        self._dim = self._expected_dim
        self._max_tokens = int_param(url, "max_tokens", MAX_TOKENS, minimum=3)
        self.timeout = float_param(url, "timeout", 30.0)
        self.retries = int_param(url, "retries", 3, minimum=0)
        self.backoff = float_param(url, "backoff", 0.5)
        self._api_key = query.get("api_key") or None
        self._tokenizer_path = query.get("tokenizer")
        self.base_url = base_url(url)
        self._client: httpx.Client | None = None
        self._tokens: WordPieces | None = None

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise ClosedError(
                f"embeddings slot: the dimension of {self._model_name!r} is known after open()",
                hint="open the slot first, or give ?dim= in the URL",
            )
        return self._dim

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def _open(self) -> None:
        self._tokens = default_tokenizer(self._max_tokens, self._tokenizer_path)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(self.timeout)
        )
        try:
            found = self._post([_PROBE_TEXT]).shape[1]
        except BaseException:
            self._client.close()
            self._client = None
            raise
        if self._expected_dim is not None and found != self._expected_dim:
            self._client.close()
            self._client = None
            raise ConfigError(
                f"embeddings slot: {self._model_name!r} at {self.url.redacted} returns "
                f"{found}-d vectors, but the URL says ?dim={self._expected_dim}",
                hint="fix ?dim= (or the model), and re-embed if the index holds other vectors",
            )
        self._dim = found

    def _close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._tokens = None

    def _embed_batch(self, texts: list[str]) -> NDArray[np.floating]:
        assert self._tokens is not None
        return self._post([self._tokens.truncate(text) for text in texts])

    def _count_tokens(self, texts: list[str]) -> list[int]:
        assert self._tokens is not None
        return self._tokens.count(texts)

    def _tokenize_offsets(self, text: str) -> list[tuple[int, int]]:
        assert self._tokens is not None
        return self._tokens.offsets(text)

    def _tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        assert self._tokens is not None
        return self._tokens.offsets_counted(text)

    # -- HTTP ---------------------------------------------------------------

    def _post(self, texts: list[str]) -> NDArray[np.float32]:
        """One embeddings request, retried on transient failures."""
        assert self._client is not None
        payload = {"model": self._model_name, "input": texts, "encoding_format": "float"}
        where = f"{self._model_name!r} at {self.url.redacted}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            retry_after: float | None = None
            try:
                response = self._client.post("embeddings", json=payload)
            except httpx.TransportError as exc:
                if last:
                    raise SlotUnavailableError(
                        f"embeddings slot: cannot reach {where} after {attempt + 1} "
                        f"attempt(s): {type(exc).__name__}: {exc}",
                        hint=self.hint,
                    ) from exc
            else:
                if response.status_code == 200:
                    return self._parse(response, len(texts), where)
                if response.status_code not in RETRYABLE or last:
                    raise self._http_error(response, where, attempt + 1)
                retry_after = retry_after_seconds(response)
            time.sleep(backoff_delay(self.backoff, attempt + 1, retry_after))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _http_error(self, response: httpx.Response, where: str, attempts: int) -> JanusError:
        return status_error(
            response,
            slot="embeddings",
            where=where,
            attempts=attempts,
            backoff=self.backoff,
            unavailable=SlotUnavailableError,
            hint=self.hint,
            too_large_hint="lower ?batch= (texts per request) or ?max_tokens=",
        )

    def _parse(self, response: httpx.Response, expected: int, where: str) -> NDArray[np.float32]:
        try:
            body: Any = response.json()
            items = sorted(body["data"], key=lambda item: int(item["index"]))
            rows = [_vector(item["embedding"]) for item in items]
            vectors = np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise SlotUnavailableError(
                f"embeddings slot: {where} sent a response that is not an OpenAI embeddings "
                f"list: {type(exc).__name__}: {exc}",
                hint="check that the URL points at an OpenAI-compatible /v1 endpoint",
            ) from exc
        if vectors.shape[0] != expected or vectors.ndim != 2:
            raise SlotUnavailableError(
                f"embeddings slot: {where} returned {vectors.shape[0]} vectors for {expected} texts"
            )
        return vectors


def _vector(value: object) -> NDArray[np.float32]:
    """One embedding, as floats or as base64 little-endian float32 (some servers force it)."""
    if isinstance(value, str):
        return np.frombuffer(base64.b64decode(value), dtype="<f4").astype(np.float32)
    if not isinstance(value, list):
        raise TypeError(f"embedding is {type(value).__name__}")
    return np.asarray(value, dtype=np.float32)
