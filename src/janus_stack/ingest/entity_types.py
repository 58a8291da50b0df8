"""The values an entity extractor takes and gives: chunks in, raw candidates, merged facts out.

They sit apart from :mod:`janus_stack.ingest.entities` (the extractor contract)
and :mod:`janus_stack.ingest.entity_merge` (the merge rules) because both of
those, and every extractor, build on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from janus_stack.errors import InvalidInputError
from janus_stack.ids import check_tenant

CO_OCCURS = "CO_OCCURS"
# Numbers and dates are attributes of things, not things: as graph nodes they
# would link every article that mentions "1968" or "two".
DEFAULT_EXCLUDED_TYPES = frozenset(
    {"DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "PERCENT", "MONEY"}
)
TYPE_PREFERENCE = (
    "PERSON", "ORG", "GPE", "LOC", "FAC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "NORP",
    "LANGUAGE",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ChunkText:
    """The input: one chunk's text and where it came from."""

    chunk_id: str
    doc_id: str
    tenant: str
    text: str

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        if not all(isinstance(v, str) and v for v in (self.chunk_id, self.doc_id)):
            raise InvalidInputError("ChunkText: chunk_id and doc_id must be non-empty strings")
        if not isinstance(self.text, str):
            raise InvalidInputError(f"chunk {self.chunk_id}: text must be a string")


@dataclass(frozen=True, slots=True)
class ExtractedEntity:
    """A merged entity; ``aliases`` are the other surface forms that mapped to it."""

    id: str
    tenant: str
    name: str
    type: str
    aliases: tuple[str, ...] = ()
    chunk_ids: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ExtractedMention:
    """One occurrence: ``chunk text[char_start:char_end] == surface``."""

    tenant: str
    chunk_id: str
    doc_id: str
    entity_id: str
    char_start: int
    char_end: int
    surface: str


@dataclass(frozen=True, slots=True)
class ExtractedRelation:
    """A typed edge with every chunk that supports it; ``count`` = supporting sightings."""

    id: str
    tenant: str
    source_id: str
    target_id: str
    type: str
    chunk_ids: tuple[str, ...]
    doc_ids: tuple[str, ...]
    count: int = 1


@dataclass(frozen=True, slots=True)
class Extraction:
    """What :meth:`EntityExtractor.extract` returns; lists in first-seen order."""

    entities: list[ExtractedEntity] = field(default_factory=list)
    mentions: list[ExtractedMention] = field(default_factory=list)
    relations: list[ExtractedRelation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RawMention:
    """A candidate span of the chunk text, as an extractor found it (not yet cleaned)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True, slots=True)
class RawRelation:
    """A candidate edge between two of the chunk's raw mentions, by index."""

    source: int
    target: int
    type: str
    symmetric: bool = False


@dataclass(frozen=True, slots=True)
class ChunkFindings:
    """An extractor's candidates for one chunk."""

    chunk: ChunkText
    mentions: Sequence[RawMention] = ()
    relations: Sequence[RawRelation] = ()
