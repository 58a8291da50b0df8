"""The embeddings slot: text → L2-normalised float32 vectors, plus the tokenizer view of text.

Validation, de-duplication, length-sorted batching and normalisation live
here once; a backend implements a narrow core: ``_embed_batch`` (raw pooled
vectors for a list of already-validated texts), ``_count_tokens`` and
``_tokenize_offsets`` (and, if its tokenizer gives both at once,
``_tokenize_counted``). Everything else (``embed``, ``probe``) is built on that
core, so the embedded model and a remote OpenAI-compatible server behave the
same to a caller. A backend that runs the model itself may also give each
token's contextual vector (``_token_states``, ``token_vectors``): what
late-interaction re-ranking compares, token against token; a server that
returns only pooled vectors cannot.

Texts must be non-blank strings: an empty chunk carries no meaning, would be
stored as a vector close to every other empty chunk, and real OpenAI-style
servers reject it, so it is refused up front with the offending index.
Texts longer than ``max_tokens`` are truncated (the model sees only the
first ``max_tokens`` tokens, special tokens included); chunkers use
``count_tokens``/``tokenize_offsets`` to never hand over more than that.

Every vector should be stored with ``model``: it names the weights *and*
any runtime or quantisation that changes the numbers, so vectors from
different models are never mixed in one index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from janus_stack.errors import IntegrityError, InvalidInputError
from janus_stack.slots.base import Slot, load_backend
from janus_stack.slots.params import int_param
from janus_stack.urls import SlotURL

__all__ = [
    "ACCEPTED_SCHEMES",
    "BACKENDS",
    "DEFAULT_BATCH_SIZE",
    "Embedder",
    "Vectors",
    "open",
]

Vectors = NDArray[np.float32]

BACKENDS: Mapping[str, str] = MappingProxyType(
    {
        "minilm": "embeddings.minilm:MiniLMEmbedder",
        "openai+http": "embeddings.openai:OpenAIEmbedder",
        "openai+https": "embeddings.openai:OpenAIEmbedder",
    }
)
ACCEPTED_SCHEMES: tuple[str, ...] = tuple(sorted(BACKENDS))

DEFAULT_BATCH_SIZE = 32
# Texts per model run in ``token_vectors``: a re-ranker's few dozen chunks vary in length, and
# fewer texts per run pad less (30 fitz-gov chunks, 2 cores: 940 ms in one run, 500 in runs of 8).
TOKEN_BATCH = 8
PROBE_TEXTS = (
    "The cat sat quietly on the warm windowsill.",
    "A kitten was resting on the sunny window ledge.",
    "Quarterly tax filings are due at the end of March.",
)


class Embedder(Slot):
    """The contract of the embeddings slot; see the module docstring.

    Args:
        url: the slot URL; ``?batch=N`` sets how many texts go to the model at once.
        batch_size: overrides the URL's batch size.
    """

    slot: ClassVar[str] = "embeddings"
    default_batch_size: ClassVar[int] = DEFAULT_BATCH_SIZE
    # Whether ``token_vectors`` works: only a model run in this process has its token states.
    token_level: ClassVar[bool] = False

    def __init__(self, url: SlotURL, *, batch_size: int | None = None) -> None:
        super().__init__(url)
        if batch_size is None:
            batch_size = int_param(url, "batch", self.default_batch_size)
        elif batch_size < 1:
            raise InvalidInputError(f"embeddings slot: batch_size must be >= 1, not {batch_size}")
        self.batch_size = batch_size

    # -- what every backend describes ------------------------------------

    @property
    def model(self) -> str:
        """Stable name of the model (and runtime marker) to record with every vector."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """Length of every vector."""
        raise NotImplementedError

    @property
    def max_tokens(self) -> int:
        """Tokens the model reads per text, special tokens included; the rest is cut."""
        raise NotImplementedError

    # -- public API built on the core ------------------------------------

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; return an ``(len(texts), dim)`` float32 array of unit vectors.

        Identical texts are embedded once; texts are grouped by length so a
        batch pads little, and the result is returned in the input order.
        """
        self._require_open()
        items = check_texts(texts)
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        unique = list(dict.fromkeys(items))
        unique.sort(key=len)
        vectors: dict[str, NDArray[np.float32]] = {}
        for start in range(0, len(unique), self.batch_size):
            batch = unique[start : start + self.batch_size]
            raw = np.asarray(self._embed_batch(batch), dtype=np.float32)
            if raw.shape != (len(batch), self.dim):
                raise IntegrityError(
                    f"embeddings slot ({self.backend}): the model returned shape {raw.shape} "
                    f"for {len(batch)} texts; expected ({len(batch)}, {self.dim})",
                    hint="check that the model and ?dim= of the slot URL match the server",
                )
            for text, row in zip(batch, normalise(raw), strict=True):
                vectors[text] = row
        for i, text in enumerate(items):
            out[i] = vectors[text]
        return out

    def token_vectors(self, texts: Sequence[str]) -> list[Vectors]:
        """Each text's contextual token vectors, unit length, one row per token of the text.

        Special tokens and padding are left out, and a text is truncated as
        ``embed`` truncates it. Texts go to the model sorted by length, so a
        batch pads little.

        Raises:
            InvalidInputError: this backend does not give token vectors
                (``token_level`` is false), or a text is not a non-blank string.
        """
        self._require_open()
        if not self.token_level:
            raise InvalidInputError(
                f"embeddings slot ({self.backend}): this backend gives pooled vectors only, "
                "not token vectors",
                hint="token vectors come from a model run in process (minilm://)",
            )
        items = check_texts(texts)
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        out: dict[int, Vectors] = {}
        size = min(self.batch_size, TOKEN_BATCH)
        for start in range(0, len(order), size):
            batch = order[start : start + size]
            states = self._token_states([items[i] for i in batch])
            for i, rows in zip(batch, states, strict=True):
                out[i] = normalise(rows)
        return [out[i] for i in range(len(items))]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model would see it untruncated, special tokens included."""
        self._require_open()
        items = check_texts(texts, allow_blank=True)
        return self._count_tokens(items) if items else []

    def tokenize_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character ``(start, end)`` of every token of ``text`` (special tokens excluded).

        A chunker cuts at these bounds so that a chunk's token count is known
        before it is embedded.
        """
        self._require_open()
        if not isinstance(text, str):
            raise InvalidInputError(
                f"embeddings slot: tokenize_offsets takes a str, not {type(text).__name__}"
            )
        return self._tokenize_offsets(text)

    def tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        """``tokenize_offsets(text)`` and ``count_tokens([text])[0]`` from one tokenization.

        A chunker needs both for every text; a small document is one chunk,
        so asking twice would tokenize it twice.
        """
        self._require_open()
        if not isinstance(text, str):
            raise InvalidInputError(
                f"embeddings slot: tokenize_counted takes a str, not {type(text).__name__}"
            )
        return self._tokenize_counted(text)

    def probe(self) -> None:
        """Embed a paraphrase pair and an unrelated text; check shape, norm and ordering."""
        vectors = self.embed(list(PROBE_TEXTS))
        if vectors.shape != (len(PROBE_TEXTS), self.dim) or vectors.dtype != np.float32:
            raise IntegrityError(
                f"embeddings slot ({self.backend}): probe got {vectors.shape} {vectors.dtype}"
            )
        norms = np.linalg.norm(vectors, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise IntegrityError(f"embeddings slot ({self.backend}): vectors not unit length")
        close, far = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
        if not close > far:
            raise IntegrityError(
                f"embeddings slot ({self.backend}, {self.model}): a paraphrase scored "
                f"{close:.3f} but an unrelated text {far:.3f}; the model looks broken",
                hint="check the model named in the slot URL",
            )

    # -- the core a backend implements -----------------------------------

    def _embed_batch(self, texts: list[str]) -> NDArray[np.floating]:
        """Raw (not necessarily normalised) vectors for at most ``batch_size`` texts."""
        raise NotImplementedError

    def _token_states(self, texts: list[str]) -> list[NDArray[np.floating]]:
        """Raw token vectors of at most ``batch_size`` texts (``token_level`` backends)."""
        raise NotImplementedError

    def _count_tokens(self, texts: list[str]) -> list[int]:
        raise NotImplementedError

    def _tokenize_offsets(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError

    def _tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        """A backend whose tokenizer gives both at once overrides this."""
        return self._tokenize_offsets(text), self._count_tokens([text])[0]


def open(url: SlotURL | str, **options: object) -> Embedder:
    """Construct (not open) the embedder for ``url``; call ``.open()`` or use ``with``."""
    if isinstance(url, str):
        url = SlotURL.parse("embeddings", url)
    return load_backend(url, BACKENDS, Embedder, **options)


def check_texts(texts: object, *, allow_blank: bool = False) -> list[str]:
    """Return ``texts`` as a list of str or raise InvalidInputError naming the bad item."""
    if isinstance(texts, str | bytes) or not isinstance(texts, Sequence):
        raise InvalidInputError(
            f"embeddings slot: expected a list of str, not {type(texts).__name__}",
            hint="wrap a single text in a list: embed([text])",
        )
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"embeddings slot: text #{i} is {type(text).__name__}, not str",
                hint="decode bytes and convert values to str before embedding",
            )
        if not allow_blank and not text.strip():
            raise InvalidInputError(
                f"embeddings slot: text #{i} is empty or only whitespace",
                hint="drop blank texts before embedding; they carry no meaning",
            )
    return items


def normalise(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """L2-normalise rows in float32; an all-zero row stays zero instead of becoming NaN."""
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: NDArray[np.float32] = rows / np.maximum(norms, np.float32(1e-12))
    return unit
