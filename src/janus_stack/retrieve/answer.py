"""``janus ask``: a question in, an answer with checkable citations out.

Evidence is gathered in bounded retrieval rounds (:mod:`evidence`). With
no model configured the extractive answerer quotes the best supporting
sentences; with one, :mod:`generation` writes the answer from the fused
context and its citations are checked against that context. Either way
the result is an :class:`Answer` whose citations name chunk IDs, documents
and pages, plus the graph paths that connected the facts.

``stream`` yields :class:`AnswerEvent` objects (``retrieval``, ``token``,
``answer``, and ``fallback`` when the model fails mid-answer: the tokens
streamed so far are withdrawn and the extractive answer follows) so the CLI
and the API can show progress and tokens as they come; ``ask`` is
``stream`` run to the end.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from janus_stack.context import Janus
from janus_stack.retrieve import extractive, generation
from janus_stack.retrieve.chunks import check_known_tenant
from janus_stack.retrieve.evidence import Evidence, EvidenceGatherer, mention_spans
from janus_stack.retrieve.generation import DEFAULT_CONTEXT_TOKENS
from janus_stack.retrieve.search import Retriever
from janus_stack.retrieve.types import GraphPath, Hit, check_query
from janus_stack.slots.llm import LanguageModel, LLMUnavailableError, TextDelta

# Blended sentence scores (see extractive.py): at SUFFICIENT_SCORE retrieval stops
# following entities; below MIN_ANSWER_SCORE nothing is quoted at all.
SUFFICIENT_SCORE = 0.5
MIN_ANSWER_SCORE = 0.3
PARAPHRASE_COSINE = 0.65
NOT_FOUND = "The memory holds nothing that answers this question."


@dataclass(frozen=True)
class Citation:
    """A numbered source of an answer: ``[n]`` in the text refers to it."""

    label: int
    chunk_id: str
    document_id: str
    title: str
    source: str
    version: int
    page: int | None
    heading_path: tuple[str, ...]
    quote: str

    @classmethod
    def of(cls, label: int, hit: Hit, quote: str) -> Citation:
        return cls(
            label=label,
            chunk_id=hit.chunk_id,
            document_id=hit.document_id,
            title=hit.title,
            source=hit.source,
            version=hit.version,
            page=hit.page,
            heading_path=hit.heading_path,
            quote=quote,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "chunk_id": self.chunk_id,
            "document": {
                "id": self.document_id,
                "title": self.title,
                "source": self.source,
                "version": self.version,
            },
            "page": self.page,
            "heading_path": list(self.heading_path),
            "quote": self.quote,
        }


@dataclass
class Answer:
    """What ``janus ask`` prints and ``--json`` serialises.

    Attributes:
        found: False when the evidence did not support any answer.
        answerer: ``extractive`` or ``llm``; ``model`` names the model.
        flags: problems Janus found in a generated answer (a cited ID that
            was not in the context, sentences without any citation).
        usage: token counts and timings of the model call(s).
    """

    question: str
    text: str
    found: bool
    answerer: str
    citations: list[Citation] = field(default_factory=list)
    paths: list[GraphPath] = field(default_factory=list)
    hits: list[Hit] = field(default_factory=list)
    rounds: int = 1
    followed: list[str] = field(default_factory=list)
    model: str | None = None
    flags: list[str] = field(default_factory=list)
    usage: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "found": self.found,
            "answerer": self.answerer,
            "model": self.model,
            "citations": [c.as_dict() for c in self.citations],
            "graph_paths": [p.as_dict() for p in self.paths],
            "retrieval": {
                "rounds": self.rounds,
                "followed_entities": list(self.followed),
                "hits": [
                    {"chunk_id": h.chunk_id, "title": h.title, "score": round(h.score, 6)}
                    for h in self.hits
                ],
            },
            "flags": list(self.flags),
            "usage": dict(self.usage),
        }


@dataclass(frozen=True)
class AnswerEvent:
    """One step of a streamed answer: ``retrieval`` (data: evidence summary),
    ``token`` (data: text), ``fallback`` (data: reason and withdrawn partial
    text) or ``answer`` (data: the final :class:`Answer`)."""

    kind: str
    data: Any


class Answerer:
    """Answers questions over one ``Janus`` memory.

    Args:
        k: hits per retrieval round.
        max_rounds: retrieval rounds at most (1 disables following entities).
        sentences: how many sentences the extractive answer quotes at most.
    """

    def __init__(
        self,
        janus: Janus,
        *,
        retriever: Retriever | None = None,
        k: int = 8,
        max_rounds: int = 2,
        sentences: int = 3,
        model: LanguageModel | None = None,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        max_answer_tokens: int = 256,
    ) -> None:
        self.janus = janus
        self.retriever = retriever or Retriever(janus)
        self.gatherer = EvidenceGatherer(janus, self.retriever, k=k, max_rounds=max_rounds)
        self.sentences = sentences
        self._model = model
        self.context_tokens = context_tokens
        self.max_answer_tokens = max_answer_tokens

    def _language_model(self, notes: list[str]) -> LanguageModel | None:
        """The configured model; None for extractive answers (``none://``, or it is down)."""
        try:
            chosen = self._model if self._model is not None else self.janus.llm
        except LLMUnavailableError as exc:
            notes.append(f"the model is unavailable ({exc}); answered extractively instead")
            return None
        return chosen if chosen.configured else None

    def ask(
        self,
        question: str,
        *,
        tenant: str | None = None,
        filters: Mapping[str, object] | None = None,
    ) -> Answer:
        final: Answer | None = None
        for event in self.stream(question, tenant=tenant, filters=filters):
            if event.kind == "answer":
                final = event.data
        assert final is not None
        return final

    def stream(
        self,
        question: str,
        *,
        tenant: str | None = None,
        filters: Mapping[str, object] | None = None,
    ) -> Iterator[AnswerEvent]:
        text = check_query(question)
        name = check_known_tenant(
            self.janus.ledger, self.janus.settings.tenant if tenant is None else tenant
        )
        scorer = extractive.SentenceScorer(
            text,
            self.janus.embedder,
            mentions=lambda chunk_ids: mention_spans(self.janus, name, chunk_ids),
        )
        evidence = self.gatherer.gather(
            text,
            tenant=name,
            filters=filters,
            sufficient=lambda hits: _sufficient(scorer.score(hits)),
        )
        yield AnswerEvent(
            "retrieval",
            {
                "rounds": evidence.rounds,
                "hits": len(evidence.hits),
                "followed_entities": list(evidence.followed),
            },
        )
        fallback: list[str] = []
        model = self._language_model(fallback) if evidence.hits else None
        if model is not None:
            try:
                generated = yield from self._generate(model, text, evidence)
            except LLMUnavailableError as exc:
                # Tokens already streamed stay shown; the event says they are withdrawn.
                fallback.append(f"the model failed ({exc}); answered extractively instead")
                yield AnswerEvent("fallback", {"reason": str(exc), "partial": exc.partial})
            else:
                yield AnswerEvent("answer", generated)
                return
        answer = self._extractive(text, evidence, scorer)
        answer.flags.extend(fallback)
        yield AnswerEvent("token", answer.text)
        yield AnswerEvent("answer", answer)

    def _generate(
        self, model: LanguageModel, question: str, evidence: Evidence
    ) -> Generator[AnswerEvent, None, Answer]:
        sources = generation.pack_context(evidence.hits, self.janus.embedder, self.context_tokens)
        completion = None
        for event in model.stream(
            generation.messages_for(question, sources), max_tokens=self.max_answer_tokens
        ):
            if isinstance(event, TextDelta):
                yield AnswerEvent("token", event.text)
            else:
                completion = event.completion
        assert completion is not None
        check = generation.check_citations(completion.text, sources)
        by_label = {source.label: source for source in sources}
        usage = completion.as_dict()
        usage.pop("text")
        answer = Answer(
            question=question,
            text=completion.text.strip(),
            found=bool(check.cited),
            answerer="llm",
            citations=[
                Citation.of(label, by_label[label].hit, by_label[label].text[:300])
                for label in check.cited
            ],
            hits=evidence.hits,
            rounds=evidence.rounds,
            followed=evidence.followed,
            model=completion.model,
            flags=check.flags(),
            usage=usage,
        )
        answer.paths = _paths_of([by_label[label].hit for label in check.cited], evidence.hits)
        return answer

    def _extractive(
        self, question: str, evidence: Evidence, scorer: extractive.SentenceScorer
    ) -> Answer:
        scored = scorer.score(evidence.hits, evidence.followed)
        # Quote only sentences that say what is asked ("born", "commanded"), unless
        # one is so close in meaning that it must use other words for it.
        scored = [s for s in scored if s.says_what_is_asked or s.cosine >= PARAPHRASE_COSINE]
        chosen = extractive.pick(scored, limit=self.sentences)
        found = _best_score(scored) >= MIN_ANSWER_SCORE
        answer = Answer(
            question=question,
            text=NOT_FOUND,
            found=found,
            answerer="extractive",
            hits=evidence.hits,
            rounds=evidence.rounds,
            followed=evidence.followed,
        )
        if not found:
            return answer
        labels: dict[str, int] = {}
        parts: list[str] = []
        for sentence in chosen:
            label = labels.setdefault(sentence.hit.chunk_id, len(labels) + 1)
            if label > len(answer.citations):
                answer.citations.append(Citation.of(label, sentence.hit, sentence.text))
            parts.append(f"{sentence.text} [{label}]")
        answer.text = " ".join(parts)
        answer.paths = _paths_of([s.hit for s in chosen], evidence.hits)
        return answer


def _sufficient(scored: Sequence[extractive.Sentence]) -> bool:
    """An answer-like best sentence that also says what the question asks about.

    "Where did Amara Okafor's colleague sail?" is not answered by "Amara
    Okafor is an astronomer in Chile" however well it scores: it has neither
    "colleague" nor "sail", so the next round follows the entities it names.
    """
    return bool(scored) and scored[0].score >= SUFFICIENT_SCORE and scored[0].says_what_is_asked


def _best_score(scored: Sequence[extractive.Sentence]) -> float:
    return scored[0].score if scored else 0.0


def _paths_of(cited: Sequence[Hit], hits: Sequence[Hit]) -> list[GraphPath]:
    """Graph paths behind the cited hits first, then the other hits', without repeats."""
    paths: list[GraphPath] = []
    seen: set[str] = set()
    for hit in [*cited, *hits]:
        for path in hit.paths:
            key = path.describe()
            if path.relations and key not in seen:
                seen.add(key)
                paths.append(path)
    return paths[:5]
