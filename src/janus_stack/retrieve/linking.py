"""Entity linking: which entities of the memory does a query name?

Two kinds of candidate span are looked up among the tenant's entity names:

* the named entities the ingestion extractor finds in the query (so a
  query and a document agree on what a name is);
* every run of one to four words of the query, because a typed query is
  often lower-case ("who did alice johnson meet"), where NER sees nothing.

A span links when its normalised form equals an entity's name (score 1.0)
or one of the aliases merged into it at ingest (0.95), or, failing both, when
it is close to a name by edit distance (rapidfuzz ``ratio`` ≥ ``threshold``;
score ratio * 0.9). Only spans that look like names are matched loosely —
found by NER, capitalised, or of two words or more, and at least four
characters long — because a lower-case word close to a name is usually a
word ("relativity" is not the entity "Relativist"). Longer and better
spans win; spans may not overlap. Among entities sharing a name (a city
and a person called "Paris"), the most mentioned come first.

The names of a tenant are read from the ledger once and kept until the
tenant's *generation* changes: the sequence number of its latest event in
the ledger's log, which every ingest, update, delete and repair appends to.
Checking it costs one indexed lookup per query; re-reading the names costs
a scan of the tenant's entities and mentions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process
from sqlalchemy import func, select

from janus_stack.ids import normalise_name
from janus_stack.ingest.entities import ChunkText, EntityExtractor, clean_span
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Entity, Event, Mention
from janus_stack.retrieve.chunks import STOPWORDS

MAX_NGRAM = 4
MAX_WORDS = 100
MIN_FUZZY_CHARS = 4
_WORD = re.compile(r"\w[\w'\u2019.-]*\w|\w", re.UNICODE)
_QUERY_CHUNK = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class LinkedEntity:
    """An entity of the memory named by the query."""

    id: str
    name: str
    type: str
    score: float
    surface: str
    mentions: int = 0


@dataclass
class _NameIndex:
    generation: int
    by_name: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    by_alias: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    mentions: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    text: str
    named: bool = False  # found by NER

    @property
    def loose(self) -> bool:
        """Whether the span may match a name by edit distance."""
        if len(self.text) < MIN_FUZZY_CHARS:
            return False
        return self.named or len(self.text.split()) > 1 or self.text != self.text.lower()


class EntityLinker:
    """Links query text to the entities of one tenant (see the module docstring).

    Args:
        extractor: the NER used at ingest; None links by word runs only.
        threshold: the least rapidfuzz ratio (0-100) of a fuzzy match.
    """

    def __init__(self, extractor: EntityExtractor | None, *, threshold: float = 85.0) -> None:
        self.extractor = extractor
        self.threshold = threshold
        self._indexes: dict[str, _NameIndex] = {}

    def link(self, ledger: Ledger, tenant: str, query: str, limit: int = 8) -> list[LinkedEntity]:
        """The entities ``query`` names, best first, at most ``limit``."""
        index = self._index(ledger, tenant)
        if not index.names:
            return []
        spans = self._ner_spans(tenant, query) + _word_runs(query)
        scored: list[tuple[float, int, _Span, list[tuple[str, str, str]]]] = []
        seen: set[str] = set()
        for span in spans:
            norm = normalise_name(span.text)
            if norm in seen:
                continue
            seen.add(norm)
            score, entities = self._lookup(index, norm, span.loose)
            if entities:
                scored.append((score, span.end - span.start, span, entities))
        scored.sort(key=lambda item: (-item[0], -item[1], item[2].start))
        taken: list[_Span] = []
        linked: dict[str, LinkedEntity] = {}
        for score, _length, span, entities in scored:
            if any(span.start < other.end and other.start < span.end for other in taken):
                continue
            taken.append(span)
            ranked = sorted(entities, key=lambda e: (-index.mentions.get(e[0], 0), e[0]))
            for eid, name, kind in ranked[:3]:
                if eid not in linked:
                    count = index.mentions.get(eid, 0)
                    linked[eid] = LinkedEntity(eid, name, kind, score, span.text, count)
        ordered = sorted(linked.values(), key=lambda e: (-e.score, -e.mentions, e.id))
        return ordered[:limit]

    def forget(self, tenant: str | None = None) -> None:
        """Drop cached names (of one tenant, or all); the next link re-reads them."""
        if tenant is None:
            self._indexes.clear()
        else:
            self._indexes.pop(tenant, None)

    def _lookup(
        self, index: _NameIndex, norm: str, loose: bool
    ) -> tuple[float, list[tuple[str, str, str]]]:
        if norm in index.by_name:
            return 1.0, index.by_name[norm]
        if norm in index.by_alias:
            return 0.95, index.by_alias[norm]
        if not loose:
            return 0.0, []
        best = process.extract(
            norm,
            index.names,
            scorer=fuzz.ratio,
            processor=None,
            score_cutoff=self.threshold,
            limit=3,
        )
        if not best:
            return 0.0, []
        top = best[0][1]
        entities = [e for name, ratio, _ in best if ratio == top for e in index.by_name[name]]
        return round(0.9 * top / 100.0, 4), entities

    def _ner_spans(self, tenant: str, query: str) -> list[_Span]:
        if self.extractor is None:
            return []
        chunk = ChunkText(chunk_id=_QUERY_CHUNK, doc_id="query", tenant=tenant, text=query)
        spans: list[_Span] = []
        for findings in self.extractor.find_candidates([chunk]):
            for raw in findings.mentions:
                if raw.label.upper() in self.extractor.exclude_types:
                    continue
                cleaned = clean_span(query, raw.start, raw.end)
                if cleaned is not None:
                    start, end = cleaned
                    spans.append(_Span(start, end, query[start:end], named=True))
        return spans

    def _index(self, ledger: Ledger, tenant: str) -> _NameIndex:
        with ledger.session() as session:
            # Read before the names: a change landing in between bumps it again.
            generation = session.scalar(
                select(func.max(Event.seq)).where(Event.tenant_id == tenant)
            )
            index = self._indexes.get(tenant)
            if index is not None and index.generation == (generation or 0):
                return index
            index = _NameIndex(generation=generation or 0)
            rows = session.execute(
                select(
                    Entity.id, Entity.name, Entity.type, Entity.normalised_name, Entity.properties
                ).where(Entity.tenant_id == tenant)
            ).all()
            counts = session.execute(
                select(Mention.entity_id, func.count(func.distinct(Mention.chunk_id)))
                .where(Mention.tenant_id == tenant)
                .group_by(Mention.entity_id)
            ).all()
        for eid, name, kind, norm, properties in rows:
            entry = (eid, name, kind)
            index.by_name.setdefault(norm, []).append(entry)
            for alias in (properties or {}).get("aliases", ()) or ():
                if isinstance(alias, str):
                    index.by_alias.setdefault(normalise_name(alias), []).append(entry)
        index.mentions = {eid: int(count) for eid, count in counts}
        index.names = list(index.by_name)
        self._indexes[tenant] = index
        return index


def _word_runs(query: str) -> list[_Span]:
    """Runs of 1-4 words that neither start nor end with a stop word or a short word.

    A number may end a run of two or more words ("Apollo 8").
    """
    words = list(_WORD.finditer(query))[:MAX_WORDS]
    spans: list[_Span] = []
    for i, first in enumerate(words):
        for n in range(1, MAX_NGRAM + 1):
            if i + n > len(words):
                break
            last = words[i + n - 1]
            if _weak(first.group()) or (_weak(last.group()) and not _number(last.group(), n)):
                continue
            cleaned = clean_span(query, first.start(), last.end())
            if cleaned is not None:
                spans.append(_Span(cleaned[0], cleaned[1], query[cleaned[0] : cleaned[1]]))
    return spans


def _number(word: str, words: int) -> bool:
    """A number ending a longer name: "Apollo 8", "Louis XIV" (not a name by itself)."""
    return words > 1 and (word.isdigit() or re.fullmatch(r"[IVXLC]+", word) is not None)


def _weak(word: str) -> bool:
    folded = word.casefold()
    return folded in STOPWORDS or (len(word) < 3 and not word.isupper()) or folded.isdigit()
