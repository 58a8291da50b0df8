"""Answers written by a language model from the fused context, with checked citations.

The context is the retrieved chunks in fused order, each numbered ``[n]``
and packed until a token budget is spent (counted with the embedder's
tokenizer: an estimate of the model's count, erring on the safe side for
the small models this runs with). Numbers instead of raw chunk IDs because
small models copy a short label far more reliably than a UUID; Janus maps
each label back to its chunk ID. After generation every ``[n]`` in the
answer is checked: a label that was not in the context is flagged as a
hallucinated citation, and a sentence with no label at all is flagged as
uncited.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from janus_stack.retrieve.types import Hit
from janus_stack.slots.embeddings import Embedder

DEFAULT_CONTEXT_TOKENS = 1500
MAX_CHUNK_TOKENS = 400
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. "
    "After every sentence, cite the sources it rests on as [1], [2] and so on. "
    "If the sources do not answer the question, say that you do not know. "
    "Be brief."
)
_LABEL = re.compile(r"\[(\d{1,3})\]")
# Sentence boundaries that keep a trailing label with its sentence: "… Montgomery. [1] Next".
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[^\[\s])|(?<=\])\s+(?=[A-Z])")


@dataclass(frozen=True)
class Source:
    """One numbered passage of the context."""

    label: int
    hit: Hit
    text: str


def pack_context(
    hits: Sequence[Hit], embedder: Embedder, budget: int = DEFAULT_CONTEXT_TOKENS
) -> list[Source]:
    """The hits in order, numbered, until ``budget`` tokens; long chunks are cut."""
    sources: list[Source] = []
    spent = 0
    counts = embedder.count_tokens([hit.text for hit in hits]) if hits else []
    for hit, count in zip(hits, counts, strict=True):
        text = " ".join(hit.text.split())
        tokens = min(count, MAX_CHUNK_TOKENS)
        if count > MAX_CHUNK_TOKENS:
            text = text[: int(len(text) * MAX_CHUNK_TOKENS / count)]
        if spent + tokens > budget and sources:
            break
        sources.append(Source(len(sources) + 1, hit, text))
        spent += tokens
    return sources


def messages_for(question: str, sources: Sequence[Source]) -> list[dict[str, str]]:
    listed = "\n\n".join(
        f"[{s.label}] {s.hit.title}" + (f", p. {s.hit.page}" if s.hit.page else "") + f"\n{s.text}"
        for s in sources
    )
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"Sources:\n\n{listed}\n\nQuestion: {question}"},
    ]


@dataclass(frozen=True)
class CitationCheck:
    cited: list[int]
    unknown: list[int]
    uncited_sentences: list[str]

    def flags(self) -> list[str]:
        found = [f"cites [{label}], which is not in the context" for label in self.unknown]
        found += [f"sentence without a citation: {s!r}" for s in self.uncited_sentences]
        return found


def check_citations(text: str, sources: Sequence[Source]) -> CitationCheck:
    """Which labels the answer cites, which of them do not exist, which sentences cite none."""
    known = {s.label for s in sources}
    labels = [int(match) for match in _LABEL.findall(text)]
    cited = list(dict.fromkeys(label for label in labels if label in known))
    unknown = list(dict.fromkeys(label for label in labels if label not in known))
    uncited = [
        sentence.strip()
        for sentence in _BOUNDARY.split(text)
        if len(sentence.strip()) >= 20 and not _LABEL.search(sentence)
    ]
    return CitationCheck(cited, unknown, uncited)
