"""Value types of retrieval: what a search asks for and what it returns.

A search runs one or more *modes*, each of which ranks chunk IDs
(:class:`Candidate`); the ledger then turns the surviving IDs into
:class:`Hit` objects carrying everything a caller needs to cite the chunk
(document, version, page, heading path, snippet) and to explain its rank
(a score and rank per mode, and for graph hits the entity → relation →
entity paths with the chunks that support each step).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from janus_stack.errors import InvalidInputError

MAX_QUERY_CHARS = 2_000
MAX_K = 100
DEFAULT_K = 10


class Mode(StrEnum):
    """How to search: one retriever, or all three fused."""

    DENSE = "dense"
    KEYWORD = "keyword"
    GRAPH = "graph"
    HYBRID = "hybrid"


SINGLE_MODES: tuple[Mode, ...] = (Mode.DENSE, Mode.KEYWORD, Mode.GRAPH)


def check_mode(mode: object) -> Mode:
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        try:
            return Mode(mode.strip().lower())
        except ValueError:
            pass
    choices = ", ".join(m.value for m in Mode)
    raise InvalidInputError(f"search: unknown mode {mode!r}; choose one of {choices}")


def check_query(query: object) -> str:
    if not isinstance(query, str):
        raise InvalidInputError(f"search: the query must be text, not {type(query).__name__}")
    text = query.strip()
    if not text:
        raise InvalidInputError("search: the query is empty", hint="give a few words to look for")
    if len(text) > MAX_QUERY_CHARS:
        raise InvalidInputError(
            f"search: the query is {len(text):,} characters long; the limit is {MAX_QUERY_CHARS:,}",
            hint="shorten it to the words that matter",
        )
    if "\x00" in text:
        raise InvalidInputError("search: the query contains a NUL character")
    return text


def check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInputError(f"search: k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


@dataclass(frozen=True)
class Candidate:
    """One mode's verdict on one chunk: ``score`` (higher is better) and why."""

    chunk_id: str
    score: float
    paths: tuple[GraphPath, ...] = ()


@dataclass(frozen=True)
class EntityRef:
    id: str
    name: str
    type: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "type": self.type}


@dataclass(frozen=True)
class RelationRef:
    """One step of a path; ``source_id → target_id`` is the stored direction."""

    id: str
    type: str
    source_id: str
    target_id: str
    chunk_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "source_id": self.source_id,
            "target_id": self.target_id,
            "chunk_ids": list(self.chunk_ids),
        }


@dataclass(frozen=True)
class GraphPath:
    """A walk: ``relations[i]`` joins ``entities[i]`` and ``entities[i + 1]``.

    A path of one entity and no relation means the chunk mentions that
    entity of the query. ``kind`` says how the walk was found: ``mention``,
    ``neighbour`` (within the expansion hops of a query entity) or
    ``between`` (a shortest path joining two entities of the query).
    """

    kind: str
    entities: tuple[EntityRef, ...]
    relations: tuple[RelationRef, ...] = ()

    @property
    def hops(self) -> int:
        return len(self.relations)

    def describe(self) -> str:
        """``A -[TYPE]- B -[TYPE]- C``, for people."""
        parts = [self.entities[0].name]
        for relation, entity in zip(self.relations, self.entities[1:], strict=True):
            parts.append(f"-[{relation.type}]-")
            parts.append(entity.name)
        return " ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "entities": [e.as_dict() for e in self.entities],
            "relations": [r.as_dict() for r in self.relations],
            "text": self.describe(),
        }


@dataclass(frozen=True)
class Hit:
    """A chunk found by a search, ready to cite.

    Attributes:
        score: the score of the mode asked for; the fused score in hybrid mode.
        scores: each mode's own score (cosine for dense, BM25/``ts_rank_cd``
            for keyword, evidence weight for graph) plus ``fused`` in hybrid mode.
        ranks: the chunk's 1-based rank in each mode that found it.
        paths: for graph evidence, the walks that led to the chunk.
    """

    chunk_id: str
    doc_id: str
    document_id: str
    title: str
    source: str
    sub_id: str
    version: int
    ordinal: int
    page: int | None
    heading_path: tuple[str, ...]
    text: str
    snippet: str
    score: float
    scores: Mapping[str, float] = field(default_factory=dict)
    ranks: Mapping[str, int] = field(default_factory=dict)
    paths: tuple[GraphPath, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Stable keys for ``--json`` and the API."""
        return {
            "chunk_id": self.chunk_id,
            "score": round(self.score, 6),
            "scores": {mode: round(value, 6) for mode, value in sorted(self.scores.items())},
            "ranks": dict(sorted(self.ranks.items())),
            "document": {
                "id": self.document_id,
                "doc_id": self.doc_id,
                "title": self.title,
                "source": self.source,
                "sub_id": self.sub_id,
                "version": self.version,
            },
            "ordinal": self.ordinal,
            "page": self.page,
            "heading_path": list(self.heading_path),
            "snippet": self.snippet,
            "text": self.text,
            "graph_paths": [path.as_dict() for path in self.paths],
        }
