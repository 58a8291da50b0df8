"""Entities and relations found by a language model, with the spaCy extractor as fallback.

The model sees one chunk at a time and must answer JSON that matches
:data:`FINDINGS_SCHEMA` (constrained decoding where the engine supports
it, validated here either way, retried by the llm slot on invalid JSON).
Its names are then located in the chunk's text: a name that does not occur
verbatim is dropped, since a mention must point at real characters. A
chunk whose answer is unusable — the model is down, the JSON stays invalid
after the retries, or not one name is found in the text — is handed to the
fallback extractor, so every chunk gets the best findings available and
the count of such chunks is kept in :attr:`LLMEntityExtractor.fallbacks`.
Merging, IDs and aliases are the shared :class:`EntityExtractor` logic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import structlog

from janus_stack.errors import ConfigError, InvalidInputError, JanusError
from janus_stack.ingest.entities import (
    DEFAULT_EXCLUDED_TYPES,
    TYPE_PREFERENCE,
    ChunkFindings,
    ChunkText,
    EntityExtractor,
    RawMention,
    RawRelation,
)
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.slots.llm import LanguageModel

log = structlog.get_logger(__name__)

MAX_ENTITIES = 20
MAX_RELATIONS = 20
MAX_CHUNK_CHARS = 4000
_RELATION_TYPE = re.compile(r"[^A-Z0-9]+")

FINDINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "maxItems": MAX_ENTITIES,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "type": {"type": "string", "enum": list(TYPE_PREFERENCE)},
                },
                "required": ["name", "type"],
            },
        },
        "relations": {
            "type": "array",
            "maxItems": MAX_RELATIONS,
            "items": {
                "type": "object",
                "properties": {
                    "source": {"type": "string", "minLength": 1, "maxLength": 200},
                    "relation": {"type": "string", "minLength": 1, "maxLength": 60},
                    "target": {"type": "string", "minLength": 1, "maxLength": 200},
                },
                "required": ["source", "relation", "target"],
            },
        },
    },
    "required": ["entities", "relations"],
}

INSTRUCTIONS = (
    "Extract the named entities of the text and the relations between them. "
    f"Entity types: {', '.join(TYPE_PREFERENCE)}. Copy each name exactly as it is "
    "written in the text. A relation links two of the entities with a short verb phrase "
    "in upper case with underscores, such as BORN_IN or WORKS_FOR. Answer JSON only: "
    '{"entities": [{"name": ..., "type": ...}], '
    '"relations": [{"source": ..., "relation": ..., "target": ...}]}'
)


class LLMEntityExtractor(EntityExtractor):
    """Asks ``model`` for each chunk's entities; ``fallback`` covers what it cannot do."""

    def __init__(
        self,
        model: LanguageModel,
        fallback: EntityExtractor,
        *,
        max_tokens: int = 512,
        exclude_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES,
    ) -> None:
        super().__init__(exclude_types=exclude_types)
        self.model = model
        self.fallback = fallback
        self.max_tokens = max_tokens
        self.fallbacks = 0

    def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
        found: list[ChunkFindings] = []
        failed: list[ChunkText] = []
        for chunk in chunks:
            findings = self._ask(chunk)
            if findings is None:
                failed.append(chunk)
            else:
                found.append(findings)
        if failed:
            self.fallbacks += len(failed)
            found.extend(self.fallback.find_candidates(failed))
        return found

    def _ask(self, chunk: ChunkText) -> ChunkFindings | None:
        messages = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": chunk.text[:MAX_CHUNK_CHARS]},
        ]
        try:
            completion = self.model.complete(
                messages, max_tokens=self.max_tokens, json_schema=FINDINGS_SCHEMA
            )
        except JanusError as exc:
            log.info("entities.llm_fallback", chunk_id=chunk.chunk_id, reason=str(exc)[:200])
            return None
        findings = locate(chunk, completion.data)
        if not findings.mentions:
            log.info("entities.llm_fallback", chunk_id=chunk.chunk_id, reason="no name in text")
            return None
        return findings


def locate(chunk: ChunkText, data: Any) -> ChunkFindings:
    """Turn the model's names into spans of the chunk; names not in the text are dropped."""
    mentions: list[RawMention] = []
    index_of: dict[str, int] = {}
    for entity in data.get("entities", []) if isinstance(data, dict) else []:
        name = str(entity.get("name", "")).strip()
        key = name.casefold()
        if not name or key in index_of:
            continue
        found = re.search(re.escape(name), chunk.text, re.IGNORECASE)
        if found is None:
            continue
        index_of[key] = len(mentions)
        mentions.append(RawMention(found.start(), found.end(), str(entity.get("type", "ORG"))))
    relations: list[RawRelation] = []
    for relation in data.get("relations", []) if isinstance(data, dict) else []:
        source = index_of.get(str(relation.get("source", "")).strip().casefold())
        target = index_of.get(str(relation.get("target", "")).strip().casefold())
        kind = _RELATION_TYPE.sub("_", str(relation.get("relation", "")).upper()).strip("_")
        if source is not None and target is not None and source != target and kind:
            relations.append(RawRelation(source, target, kind[:60]))
    return ChunkFindings(chunk=chunk, mentions=mentions, relations=relations)


EXTRACTORS = ("spacy", "llm")


def choose_extractor(kind: str, model: LanguageModel | None = None) -> EntityExtractor:
    """The extractor ingestion runs: ``spacy`` (default) or ``llm`` (spaCy as fallback).

    Raises:
        InvalidInputError: an unknown kind.
        ConfigError: ``llm`` with no language model configured.
    """
    if kind not in EXTRACTORS:
        raise InvalidInputError(
            f"unknown entity extractor {kind!r}; choose one of {', '.join(EXTRACTORS)}"
        )
    spacy = SpacyEntityExtractor()
    if kind == "spacy":
        return spacy
    if model is None or not model.configured:
        raise ConfigError(
            "the llm entity extractor needs a language model, and the llm slot is none://",
            hint="set JANUS_LLM_URL (or [slots] llm in janus.toml), e.g. llamacpp:///path/model.gguf",
        )
    return LLMEntityExtractor(model, spacy)
