"""The merge every extractor's candidates go through, so all extractors agree.

Merging is a pure function of one document's findings: a document re-run
alone or in a batch gives the same entity IDs, which is what lets the graph
drop a document's contribution and keep what other documents support.
Within a document:

* a span loses a leading "the", a possessive "'s" and surrounding
  punctuation; names compare by :func:`janus_stack.ids.normalise_name`
  (case, width, whitespace);
* a name labelled differently in different places gets its most frequent
  label (ties: PERSON, ORG, GPE, ... in :data:`TYPE_PREFERENCE` order);
* a PERSON name that is the last word(s) of exactly one longer PERSON name
  becomes an alias of it ("Borman" → "Frank Borman");
* an upper-case ORG acronym that spells the initials of exactly one longer
  ORG name becomes an alias of it ("NASA" → "National Aeronautics and Space
  Administration").

Symmetric relations (``CO_OCCURS``) point from the smaller to the larger
entity ID, so one pair is one relation whichever way round it was seen.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from janus_stack.errors import InvalidInputError
from janus_stack.ids import entity_id, normalise_name, relation_id
from janus_stack.ingest.entity_types import (
    DEFAULT_EXCLUDED_TYPES,
    TYPE_PREFERENCE,
    ChunkFindings,
    ChunkText,
    ExtractedEntity,
    ExtractedMention,
    ExtractedRelation,
    Extraction,
    RawMention,
)

MAX_NAME_CHARS = 200  # longer "names" are NER run-ons over tables or lists

_LEADING_THE = re.compile(r"the\s+", re.IGNORECASE)
_POSSESSIVE = re.compile(r"['\u2019]s?$")
_TRAILING_WORD = re.compile(r"\s+(?:of|and|the|in|for|at|on|to|with|or)$")
_EDGE_PUNCT = "\"'`.,;:!?()[]{}<>«»\u201c\u201d\u2018\u2019-\u2013\u2014*#|/\\"
_ACRONYM = re.compile(r"[A-Z][A-Z0-9&]{1,9}")
_INITIALS_SKIP = frozenset({"of", "and", "the", "for", "in", "on", "at", "to", "a", "an", "&"})
_ABBREVIATIONS = frozenset({"inc", "co", "corp", "ltd", "jr", "sr", "st", "bros", "mt", "ft"})
_NON_TYPE = re.compile(r"[^A-Z0-9]+")


def clean_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Narrow ``text[start:end]`` to the name it holds, or None if nothing is left.

    Offsets move rather than the string changing, so a mention's surface is
    always a slice of the chunk.
    """
    while True:
        before = (start, end)
        while start < end and (text[start].isspace() or text[start] in _EDGE_PUNCT):
            start += 1
        while start < end and (text[end - 1].isspace() or text[end - 1] in _EDGE_PUNCT):
            if text[end - 1] == "." and _abbreviation(text, start, end):
                break
            end -= 1
        the = _LEADING_THE.match(text, start, end)
        if the and the.end() < end:
            start = the.end()
        possessive = _POSSESSIVE.search(text, start, end)
        if possessive and possessive.start() > start:
            end = possessive.start()
        dangling = _TRAILING_WORD.search(text, start, end)  # "Anarchism of" (a cut-off span)
        if dangling:
            end = dangling.start()
        if (start, end) == before:
            break
    return (start, end) if start < end else None


def _abbreviation(text: str, start: int, end: int) -> bool:
    """Whether the final "." of ``text[start:end]`` belongs to the name ("U.S.", "Inc.")."""
    words = text[start : end - 1].rsplit(None, 1)
    word = words[-1] if words else ""
    return "." in word or word.casefold() in _ABBREVIATIONS


@dataclass(slots=True)
class _Mention:
    chunk: ChunkText
    start: int
    end: int
    display: str
    norm: str
    label: str
    entity_id: str = ""
    direct: bool = True  # its own name is the entity's name, not an alias of it

    def extracted(self) -> ExtractedMention:
        c, start, end = self.chunk, self.start, self.end
        surface = c.text[start:end]
        return ExtractedMention(c.tenant, c.chunk_id, c.doc_id, self.entity_id, start, end, surface)


@dataclass(slots=True)
class _Tally:
    """What supports one entity or relation, in first-seen order."""

    chunks: dict[str, None] = field(default_factory=dict)
    docs: dict[str, None] = field(default_factory=dict)
    surfaces: dict[str, None] = field(default_factory=dict)
    names: Counter[str] = field(default_factory=Counter)
    count: int = 0

    def add(self, chunk: ChunkText) -> None:
        self.chunks[chunk.chunk_id] = None
        self.docs[chunk.doc_id] = None
        self.count += 1

    def support(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(self.chunks), tuple(self.docs)


def merge_findings(
    findings: Iterable[ChunkFindings], *, exclude_types: Iterable[str] = DEFAULT_EXCLUDED_TYPES
) -> Extraction:
    """Clean, merge and identify raw findings (see the module docstring)."""
    excluded = frozenset(label.upper() for label in exclude_types)
    findings = list(findings)
    resolved = [[_resolve(f.chunk, raw, excluded) for raw in f.mentions] for f in findings]
    by_doc: dict[tuple[str, str], list[_Mention]] = {}
    for mentions in resolved:
        for mention in mentions:
            if mention is not None:
                key = (mention.chunk.tenant, mention.chunk.doc_id)
                by_doc.setdefault(key, []).append(mention)
    for doc_mentions in by_doc.values():
        _identify(doc_mentions)
    all_mentions = [m for mentions in resolved for m in mentions if m is not None]
    return Extraction(
        entities=_entities(all_mentions),
        mentions=list(dict.fromkeys(m.extracted() for m in all_mentions)),  # LLMs repeat
        relations=_relations(findings, resolved),
    )


def _resolve(chunk: ChunkText, raw: RawMention, excluded: frozenset[str]) -> _Mention | None:
    if not 0 <= raw.start < raw.end <= len(chunk.text):
        raise InvalidInputError(
            f"chunk {chunk.chunk_id}: mention offsets {raw.start}:{raw.end} are outside "
            f"its text of {len(chunk.text)} characters"
        )
    label = raw.label.strip().upper()
    if not label or label in excluded:
        return None
    span = clean_span(chunk.text, raw.start, raw.end)
    if span is None:
        return None
    display = " ".join(chunk.text[span[0] : span[1]].split())
    if len(display) > MAX_NAME_CHARS or not any(ch.isalnum() for ch in display):
        return None
    return _Mention(chunk, span[0], span[1], display, normalise_name(display), label)


def _identify(mentions: list[_Mention]) -> None:
    """Give one document's mentions their entity IDs: vote types, merge aliases."""
    labels: dict[str, Counter[str]] = {}
    first_display: dict[str, str] = {}
    for m in mentions:
        labels.setdefault(m.norm, Counter())[m.label] += 1
        first_display.setdefault(m.norm, m.display)
    types = {norm: _vote(counts) for norm, counts in labels.items()}
    canonical = {norm: norm for norm in types}
    _merge_person_aliases(types, canonical)
    _merge_acronyms(types, canonical, first_display)
    tenant = mentions[0].chunk.tenant
    ids: dict[str, str] = {}
    for m in mentions:
        target = canonical[m.norm]
        if target not in ids:
            ids[target] = entity_id(tenant, target, types[target])
        m.entity_id = ids[target]
        m.label = types[target]
        m.direct = m.norm == target


def _vote(counts: Counter[str]) -> str:
    """The most frequent label; ties go by TYPE_PREFERENCE, then by name."""
    order = {label: i for i, label in enumerate(TYPE_PREFERENCE)}
    return min(counts, key=lambda label: (-counts[label], order.get(label, len(order)), label))


def _merge_person_aliases(types: dict[str, str], canonical: dict[str, str]) -> None:
    persons = [norm for norm, label in types.items() if label == "PERSON"]
    persons.sort(key=lambda norm: -len(norm.split()))  # stable: ties keep first-seen order
    for short in persons:
        words = short.split()
        targets = {
            canonical[long]
            for long in persons
            if len(long.split()) > len(words) and long.split()[-len(words) :] == words
        }
        if len(targets) == 1:
            canonical[short] = targets.pop()


def _merge_acronyms(
    types: dict[str, str], canonical: dict[str, str], first_display: dict[str, str]
) -> None:
    orgs = [norm for norm, label in types.items() if label == "ORG"]
    for short in orgs:
        display = first_display[short].replace(".", "")
        if not _ACRONYM.fullmatch(display):
            continue
        letters = display.casefold()
        targets = {
            canonical[long]
            for long in orgs
            if long != short and len(long.split()) > 1 and letters in _initials(long)
        }
        if len(targets) == 1:
            canonical[short] = targets.pop()


def _initials(norm: str) -> tuple[str, str]:
    words = norm.replace("-", " ").split()
    return (
        "".join(word[0] for word in words),
        "".join(word[0] for word in words if word not in _INITIALS_SKIP),
    )


def _entities(mentions: list[_Mention]) -> list[ExtractedEntity]:
    tallies: dict[str, tuple[_Mention, _Tally]] = {}
    for m in mentions:
        first, tally = tallies.setdefault(m.entity_id, (m, _Tally()))
        tally.add(m.chunk)
        tally.surfaces[m.display] = None
        if m.direct:  # aliases never name the entity; every target has a direct mention
            tally.names[m.display] += 1
    entities = []
    for first, tally in tallies.values():
        name = tally.names.most_common(1)[0][0]  # ties: first seen
        aliases = tuple(sorted(surface for surface in tally.surfaces if surface != name))
        entities.append(
            ExtractedEntity(
                first.entity_id, first.chunk.tenant, name, first.label, aliases, *tally.support()
            )
        )
    return entities


def _relation_type(raw: str) -> str:
    kind = _NON_TYPE.sub("_", unicodedata.normalize("NFKC", raw).upper()).strip("_")
    if not kind:
        raise InvalidInputError(f"relation type {raw!r} has no letters or digits")
    return kind


def _relations(
    findings: list[ChunkFindings], resolved: list[list[_Mention | None]]
) -> list[ExtractedRelation]:
    tallies: dict[str, tuple[tuple[str, str, str, str], _Tally]] = {}
    for found, mentions in zip(findings, resolved, strict=True):
        chunk = found.chunk
        for rel in found.relations:
            if not (0 <= rel.source < len(mentions) and 0 <= rel.target < len(mentions)):
                raise InvalidInputError(
                    f"chunk {chunk.chunk_id}: relation refers to mention "
                    f"{rel.source} or {rel.target} of {len(mentions)}"
                )
            source, target = mentions[rel.source], mentions[rel.target]
            if source is None or target is None or source.entity_id == target.entity_id:
                continue
            ends = (source.entity_id, target.entity_id)
            if rel.symmetric:
                ends = (min(ends), max(ends))
            kind = _relation_type(rel.type)
            rid = relation_id(chunk.tenant, ends[0], kind, ends[1])
            tallies.setdefault(rid, ((chunk.tenant, *ends, kind), _Tally()))[1].add(chunk)
    return [
        ExtractedRelation(rid, tenant, source_id, target_id, kind, *tally.support(), tally.count)
        for rid, ((tenant, source_id, target_id, kind), tally) in tallies.items()
    ]
