"""The answerer that needs no model: the best supporting sentences, each cited.

Every sentence of the retrieved chunks is scored against the question by
cosine similarity of embeddings (the embedder is loaded anyway for dense
search), blended with the IDF-weighted share of the question's terms it
contains (a rare word of the question such as "born" says more than the
name every candidate repeats), whether it holds what the question asks for
(a place for "where", a person for "who", a date for "when", a number for
"how many" — from the entity mentions recorded at ingest, and patterns for
dates and numbers), and the rank of its chunk. The top sentences are the
answer. Deterministic and offline; it cannot paraphrase or combine facts,
which is what the LLM path is for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from janus_stack.retrieve.chunks import query_terms
from janus_stack.retrieve.types import Hit
from janus_stack.slots.embeddings import Embedder

# A sentence ends at . ! ? (and a closing quote or bracket) followed by space and an
# upper-case letter, digit or opening quote; a split after an initial ("J. Smith") or
# an abbreviation ("Dr. Who", "(c. 347 BC)") is undone in split_sentences.
_SENTENCE_END = re.compile(r"(?<=[.!?])(?P<close>[\"')\]]?)\s+(?=[\"'(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    {
        "c",
        "ca",
        "cf",
        "al",
        "approx",
        "dr",
        "e.g",
        "fig",
        "i.e",
        "jr",
        "mr",
        "mrs",
        "ms",
        "no",
        "pp",
        "sr",
        "st",
        "vol",
        "vs",
    }
)
_LAST_WORD = re.compile(r"([\w.]+)\.$")
_WORD = re.compile(r"\w+", re.UNICODE)
MIN_SENTENCE_CHARS = 20
MAX_SENTENCE_CHARS = 600
COSINE_WEIGHT = 0.5
TERMS_WEIGHT = 0.3
TYPE_WEIGHT = 0.15
RANK_WEIGHT = 0.05
# Relation words ("born", "commanded") count double: the names the question is about
# recur in every candidate, the words saying what it asks do not.
RELATION_TERM_WEIGHT = 2.0
BRIDGE_DISCOUNT = 0.95

# What a question word asks for: entity types (spaCy's labels) or a text pattern.
_EXPECTED: tuple[tuple[re.Pattern[str], frozenset[str], re.Pattern[str] | None], ...] = (
    (
        re.compile(
            r"^\s*where\b|\b(?:which|what) (?:city|country|place|town|state|region|river|"
            r"lake|sea|ocean|mountain|island|continent)\b",
            re.I,
        ),
        frozenset({"GPE", "LOC", "FAC"}),
        None,
    ),
    (re.compile(r"^\s*(?:who|whom|whose)\b", re.I), frozenset({"PERSON", "ORG", "NORP"}), None),
    (
        re.compile(r"^\s*when\b|\b(?:which|what) (?:year|date|day|century)\b", re.I),
        frozenset({"DATE", "TIME"}),
        re.compile(
            r"\b(?:1\d{3}|20\d{2})\b|\b(?:January|February|March|April|May|June|July|"
            r"August|September|October|November|December)\b|\bcentury\b"
        ),
    ),
    (
        re.compile(r"^\s*how (?:many|much|long|old|far|big|tall)\b", re.I),
        frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"}),
        re.compile(r"\d"),
    ),
)

# A recorded mention inside a chunk: character span, entity type, normalised name.
MentionSpan = tuple[int, int, str, str]
MentionLoader = Callable[[Sequence[str]], Mapping[str, Sequence[MentionSpan]]]


_SUFFIXES = ("ing", "ed", "es", "s", "ly")


def stem(word: str) -> str:
    """A crude English stem ("sailed", "sails" → "sail"): enough to match word forms."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def expected_answer(question: str) -> tuple[frozenset[str], re.Pattern[str] | None] | None:
    """The entity types (and text pattern) an answer to ``question`` should hold, if known."""
    for asks, types, pattern in _EXPECTED:
        if asks.search(question):
            return types, pattern
    return None


@dataclass(frozen=True)
class Sentence:
    """A scored sentence of one hit, with its character span inside the chunk."""

    hit: Hit
    text: str
    start: int
    end: int
    score: float
    cosine: float  # against the question as asked, whatever variant scored best
    says_what_is_asked: bool = True


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (headings and list lines count as one)."""
    spans: list[tuple[int, int]] = []
    for block in re.finditer(r"[^\n]+(?:\n(?!\s*\n)[^\n]+)*", text):
        start = block.start()
        for end_match in _SENTENCE_END.finditer(block.group()):
            end = block.start() + end_match.end("close")
            if not _ends_in_abbreviation(text[start:end]):
                spans.append((start, end))
                start = block.start() + end_match.end()
        spans.append((start, block.end()))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def _ends_in_abbreviation(sentence: str) -> bool:
    last = _LAST_WORD.search(sentence.rstrip("\"')]"))
    if last is None:
        return False
    word = last.group(1)
    return (len(word) == 1 and word.isupper()) or word.casefold() in _ABBREVIATIONS


class SentenceScorer:
    """Scores the sentences of hits against one question; embeds each sentence once.

    Retrieval rounds score growing sets of hits, so the sentence vectors of
    earlier rounds are kept for the later ones.
    """

    def __init__(
        self,
        question: str,
        embedder: Embedder,
        *,
        mentions: MentionLoader | None = None,
        per_hit: int = 40,
    ) -> None:
        self.question = question
        self.embedder = embedder
        self.per_hit = per_hit
        self.terms = {stem(t) for t in query_terms(question)}
        self._names = {
            stem(w.casefold()) for w in _WORD.findall(question) if w[:1].isupper() or w.isdigit()
        }
        self.expected = expected_answer(question)
        self._load_mentions = mentions
        self._mentions: dict[str, Sequence[MentionSpan]] = {}
        self._vectors: dict[str, NDArray[np.float32]] = {}

    def score(self, hits: Sequence[Hit], bridges: Sequence[str] = ()) -> list[Sentence]:
        """Every usable sentence of ``hits``, best first.

        ``bridges`` are entities a later retrieval round followed ("Henrik
        Larsen" for "where did Amara Okafor's colleague sail?"): a sentence
        is also scored against the question with the bridge added, at a
        small discount, and keeps the better score.
        """
        candidates: list[tuple[Hit, int, int, str, int]] = []
        for rank, hit in enumerate(hits):
            for start, end in split_sentences(hit.text)[: self.per_hit]:
                text = " ".join(hit.text[start:end].split())
                if MIN_SENTENCE_CHARS <= len(text) <= MAX_SENTENCE_CHARS:
                    candidates.append((hit, start, end, text, rank))
        if not candidates:
            return []
        variants = [self.question, *(f"{self.question} {bridge}" for bridge in bridges)]
        self._embed([*variants, *(c[3] for c in candidates)])
        self._fetch_mentions([hit.chunk_id for hit in hits])
        words_of = [{stem(w.casefold()) for w in _WORD.findall(c[3])} for c in candidates]
        relation_terms = self.terms - self._names
        best: list[tuple[float, float]] = [(-1.0, 0.0)] * len(candidates)
        for number, variant in enumerate(variants):
            extra = {stem(w.casefold()) for w in _WORD.findall(variant[len(self.question) :])}
            terms = self.terms | extra
            idf = {
                t: (1.0 if t in self._names or t in extra else RELATION_TERM_WEIGHT)
                * math.log(1 + len(candidates) / (1 + sum(t in w for w in words_of)))
                for t in terms
            }
            total = sum(idf.values())
            discount = 1.0 if number == 0 else BRIDGE_DISCOUNT
            question_vector = self._vectors[variant]
            for i, ((hit, start, end, text, rank), words) in enumerate(
                zip(candidates, words_of, strict=True)
            ):
                cosine = float(self._vectors[text] @ question_vector)
                coverage = sum(idf[t] for t in terms & words) / total if total else 0.0
                typed = 1.0 if self._holds_expected(hit, start, end, text) else 0.0
                value = discount * (
                    COSINE_WEIGHT * cosine
                    + TERMS_WEIGHT * coverage
                    + TYPE_WEIGHT * typed
                    + RANK_WEIGHT / (1 + rank)
                )
                if value > best[i][0]:
                    best[i] = (value, best[i][1] if number else cosine)
        scored = [
            Sentence(
                hit,
                text,
                start,
                end,
                value,
                cosine,
                not relation_terms or bool(relation_terms & words),
            )
            for (hit, start, end, text, _rank), words, (value, cosine) in zip(
                candidates, words_of, best, strict=True
            )
        ]
        scored.sort(key=lambda s: (-s.score, s.hit.chunk_id, s.start))
        return scored

    def _holds_expected(self, hit: Hit, start: int, end: int, text: str) -> bool:
        """Whether the sentence names something of the kind the question asks for.

        An entity the question itself names does not count: "Who commanded
        Apollo 8?" is not answered by a sentence whose only name is Apollo.
        """
        if self.expected is None:
            return False
        types, pattern = self.expected
        if pattern is not None and pattern.search(text):
            return True
        folded = self.question.casefold()
        return any(
            kind in types and start <= m_start and m_end <= end and name not in folded
            for m_start, m_end, kind, name in self._mentions.get(hit.chunk_id, ())
        )

    def _fetch_mentions(self, chunk_ids: Sequence[str]) -> None:
        todo = [c for c in chunk_ids if c not in self._mentions]
        if self._load_mentions is None or not todo or self.expected is None:
            return
        loaded = self._load_mentions(todo)
        for chunk_id in todo:
            self._mentions[chunk_id] = loaded.get(chunk_id, ())

    def _embed(self, texts: Sequence[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if todo:
            vectors = np.asarray(self.embedder.embed(todo), dtype=np.float32)
            self._vectors.update(zip(todo, vectors, strict=True))


def pick(sentences: Sequence[Sentence], *, limit: int = 3, margin: float = 0.06) -> list[Sentence]:
    """The best sentence and those within ``margin`` of it, distinct, at most ``limit``.

    Returned in reading order (by the rank of their hit, then position), so
    that two sentences of one paragraph read as they were written.
    """
    if not sentences:
        return []
    best = sentences[0].score
    chosen: list[Sentence] = []
    seen: set[str] = set()
    for sentence in sentences:
        if len(chosen) == limit or sentence.score < best - margin:
            break
        key = sentence.text.casefold()
        if key not in seen:
            seen.add(key)
            chosen.append(sentence)
    order = {s.hit.chunk_id: i for i, s in enumerate(sentences)}
    return sorted(chosen, key=lambda s: (order[s.hit.chunk_id], s.start))
