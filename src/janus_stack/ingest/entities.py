"""Entities and relations from chunks: the contract every extractor serves.

An extractor only *finds candidates*: spans of a chunk's text with a label,
and relations between those spans (:class:`ChunkFindings`). Everything that
must be identical whichever extractor ran — cleaning a span, choosing an
entity's type, merging aliases, deriving IDs, de-duplicating relations and
collecting the chunk IDs that support each fact — happens once, in
:mod:`janus_stack.ingest.entity_merge`, called by
:meth:`EntityExtractor.extract`. So the spaCy default and a later LLM
extractor (which falls back to the default per chunk) produce the same kind
of output, and an LLM's answer needs no more than span offsets and labels.

This module is the public face of entity extraction: ``__all__`` names the
values (:mod:`janus_stack.ingest.entity_types`) and merge functions callers
use, so they import from one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from janus_stack.errors import InvalidInputError
from janus_stack.ingest.entity_merge import clean_span, merge_findings
from janus_stack.ingest.entity_types import (
    CO_OCCURS,
    DEFAULT_EXCLUDED_TYPES,
    TYPE_PREFERENCE,
    ChunkFindings,
    ChunkText,
    ExtractedEntity,
    ExtractedMention,
    ExtractedRelation,
    Extraction,
    RawMention,
    RawRelation,
)

__all__ = [
    "CO_OCCURS",
    "DEFAULT_EXCLUDED_TYPES",
    "TYPE_PREFERENCE",
    "ChunkFindings",
    "ChunkText",
    "EntityExtractor",
    "ExtractedEntity",
    "ExtractedMention",
    "ExtractedRelation",
    "Extraction",
    "RawMention",
    "RawRelation",
    "clean_span",
    "merge_findings",
]


class EntityExtractor(ABC):
    """Base class: validates input, asks :meth:`find_candidates`, merges the result.

    Subclasses implement only :meth:`find_candidates`; they may skip types in
    ``exclude_types`` early to save work, and anything they let through is
    dropped by the merge anyway.
    """

    def __init__(self, *, exclude_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES) -> None:
        self.exclude_types = frozenset(label.upper() for label in exclude_types)

    def extract(self, chunks: Sequence[ChunkText]) -> Extraction:
        """Entities, mentions and relations of ``chunks``, merged per document.

        A chunk given twice (equal in every field, e.g. one document under two
        paths in one batch) counts once, as its content-derived ID implies.

        Raises:
            InvalidInputError: ``chunks`` is not a sequence of :class:`ChunkText`,
                or two different chunks share a ``chunk_id``.
        """
        if isinstance(chunks, ChunkText | str) or not isinstance(chunks, Sequence):
            raise InvalidInputError("extract() takes a list of ChunkText, not a single value")
        unique: dict[str, ChunkText] = {}
        for i, chunk in enumerate(chunks):
            if not isinstance(chunk, ChunkText):
                raise InvalidInputError(
                    f"chunks[{i}] must be a ChunkText, got {type(chunk).__name__}"
                )
            if unique.setdefault(chunk.chunk_id, chunk) != chunk:
                raise InvalidInputError(
                    f"chunks[{i}]: chunk_id {chunk.chunk_id!r} was given before with other content"
                )
        if not any(chunk.text.strip() for chunk in unique.values()):
            return Extraction()
        findings = self.find_candidates(list(unique.values()))
        return merge_findings(findings, exclude_types=self.exclude_types)

    @abstractmethod
    def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
        """Raw spans and relations of each chunk (validated input, any order)."""
