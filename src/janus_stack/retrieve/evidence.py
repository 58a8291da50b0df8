"""Gathering the evidence for a question, in bounded rounds of retrieval.

The first round is one hybrid search. When its best sentences do not look
like an answer (a multi-hop question: "where was the author of X born?"
finds X, whose text names the author but not the birthplace), the next
round follows the entities the best chunks mention that the question does
not, and searches again for the question together with each of them. The
rounds stop at ``max_rounds`` or as soon as the evidence looks sufficient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select

from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.ids import normalise_name
from janus_stack.ledger.models import Entity, Mention
from janus_stack.retrieve.search import Retriever
from janus_stack.retrieve.types import Hit

MAX_ROUNDS = 4
FOLLOW_PER_ROUND = 3
SEED_CHUNKS = 3


@dataclass
class Evidence:
    """The hits that answer a question, in order, and how they were found."""

    question: str
    hits: list[Hit] = field(default_factory=list)
    rounds: int = 0
    followed: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)


Sufficient = Callable[[Sequence[Hit]], bool]


class EvidenceGatherer:
    """Runs retrieval rounds for one question; see the module docstring."""

    def __init__(self, janus: Janus, retriever: Retriever, *, k: int = 8, max_rounds: int = 2):
        if not 1 <= max_rounds <= MAX_ROUNDS:
            raise InvalidInputError(f"ask: rounds must be from 1 to {MAX_ROUNDS}, not {max_rounds}")
        self.janus = janus
        self.retriever = retriever
        self.k = k
        self.max_rounds = max_rounds

    def gather(
        self,
        question: str,
        *,
        tenant: str,
        filters: Mapping[str, object] | None,
        sufficient: Sufficient,
    ) -> Evidence:
        evidence = Evidence(question=question)
        hits = self._search(evidence, question, tenant, filters, self.k)
        evidence.hits = hits
        evidence.rounds = 1
        known = {normalise_name(question)}
        while evidence.rounds < self.max_rounds and not sufficient(evidence.hits):
            names = self._entities_to_follow(tenant, evidence.hits, question, known)
            if not names:
                break
            evidence.rounds += 1
            fresh: list[Hit] = []
            for name in names:
                known.add(normalise_name(name))
                evidence.followed.append(name)
                query = f"{question} {name}"
                fresh.extend(self._search(evidence, query, tenant, filters, max(self.k // 2, 3)))
            evidence.hits = _merge(evidence.hits, fresh)
        return evidence

    def _search(
        self,
        evidence: Evidence,
        query: str,
        tenant: str,
        filters: Mapping[str, object] | None,
        k: int,
    ) -> list[Hit]:
        evidence.queries.append(query)
        return self.retriever.search(query, mode="hybrid", k=k, tenant=tenant, filters=filters)

    def _entities_to_follow(
        self, tenant: str, hits: Sequence[Hit], question: str, known: set[str]
    ) -> list[str]:
        """Names the best chunks mention most that neither the question nor a round used."""
        chunk_ids = [hit.chunk_id for hit in hits[:SEED_CHUNKS]]
        if not chunk_ids:
            return []
        folded_question = normalise_name(question)
        with self.janus.ledger.session() as session:
            rows = session.execute(
                select(Entity.name, Entity.normalised_name, func.count(Mention.id).label("n"))
                .join(Mention, Mention.entity_id == Entity.id)
                .where(Mention.tenant_id == tenant, Mention.chunk_id.in_(chunk_ids))
                .group_by(Entity.id, Entity.name, Entity.normalised_name)
                .order_by(func.count(Mention.id).desc(), Entity.name)
            ).all()
        chosen: list[str] = []
        for name, normalised, _count in rows:
            if normalised in known or normalised in folded_question or len(normalised) < 3:
                continue
            chosen.append(name)
            if len(chosen) == FOLLOW_PER_ROUND:
                break
        return chosen


def mention_spans(
    janus: Janus, tenant: str, chunk_ids: Sequence[str]
) -> dict[str, list[tuple[int, int, str, str]]]:
    """The entity mentions recorded at ingest inside these chunks, by chunk."""
    found: dict[str, list[tuple[int, int, str, str]]] = {}
    with janus.ledger.session() as session:
        rows = session.execute(
            select(
                Mention.chunk_id,
                Mention.char_start,
                Mention.char_end,
                Entity.type,
                Entity.normalised_name,
            )
            .join(Entity, Entity.id == Mention.entity_id)
            .where(Mention.tenant_id == tenant, Mention.chunk_id.in_(list(chunk_ids)))
        ).all()
    for chunk_id, start, end, kind, name in rows:
        found.setdefault(chunk_id, []).append((start, end, kind, name))
    return found


def _merge(first: Sequence[Hit], more: Sequence[Hit]) -> list[Hit]:
    seen = {hit.chunk_id for hit in first}
    merged = list(first)
    for hit in more:
        if hit.chunk_id not in seen:
            seen.add(hit.chunk_id)
            merged.append(hit)
    return merged
