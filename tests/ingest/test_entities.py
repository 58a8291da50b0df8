"""Entities and relations: the merge rules on hand-made findings, the spaCy extractor on text.

The merge tests build :class:`ChunkFindings` by hand, so they pin the rules
exactly and need no model; the extractor tests run the real packaged model
once per module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from conftest import service_missing
from janus_stack.errors import ConfigError, InvalidInputError
from janus_stack.ids import entity_id, relation_id
from janus_stack.ingest.entities import (
    CO_OCCURS,
    ChunkFindings,
    ChunkText,
    EntityExtractor,
    Extraction,
    RawMention,
    RawRelation,
    clean_span,
    merge_findings,
)
from janus_stack.ingest.spacy_extractor import DEFAULT_PACKAGE, SpacyEntityExtractor, _segments

APOLLO = (
    "Apollo 8 was launched on December 21, 1968 by NASA from Kennedy Space Center in "
    "Florida, with Frank Borman, James Lovell and William Anders aboard."
)


@pytest.fixture(scope="module")
def extractor() -> SpacyEntityExtractor:
    found = SpacyEntityExtractor()
    try:
        found.load()
    except ConfigError as exc:
        service_missing(str(exc))
    return found


def sharing(model_of: SpacyEntityExtractor, **options: Any) -> SpacyEntityExtractor:
    """Another extractor with other options over the already loaded model (saves ~1 s each)."""
    other = SpacyEntityExtractor(**options)
    other._nlp, other._lemmatizer = model_of._nlp, model_of._lemmatizer
    return other


def chunk(text: str, n: int = 0, doc: str = "d1", tenant: str = "t1") -> ChunkText:
    return ChunkText(chunk_id=f"{doc}-c{n}", doc_id=doc, tenant=tenant, text=text)


def found(text: str, *spans: tuple[str, str], n: int = 0, doc: str = "d1") -> ChunkFindings:
    """Findings for ``text`` with one mention per (surface, label), located by search."""
    mentions, position = [], 0
    for surface, label in spans:
        start = text.index(surface, position)
        mentions.append(RawMention(start, start + len(surface), label))
        position = start + len(surface)
    return ChunkFindings(chunk(text, n, doc), mentions)


def names(extraction: Extraction) -> dict[str, str]:
    return {entity.id: entity.name for entity in extraction.entities}


def triples(extraction: Extraction) -> set[tuple[str, str, str]]:
    by_id = names(extraction)
    return {(by_id[r.source_id], r.type, by_id[r.target_id]) for r in extraction.relations}


# -- cleaning and merging (no model) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("surface", "expected"),
    [
        ("The United Nations", "United Nations"),
        ("Borman's", "Borman"),
        ("Jobs\u2019", "Jobs"),
        ('"Apollo 8",', "Apollo 8"),
        ("the Beatles's", "Beatles"),
        ("U.S.", "U.S."),
        ("Apple Inc.", "Apple Inc."),
        ("Florida.", "Florida"),
        ("Individualist Anarchism of", "Individualist Anarchism"),
        ("Theodore Roosevelt", "Theodore Roosevelt"),
        (" -- ", None),
    ],
)
def test_clean_span_narrows_to_the_name(surface: str, expected: str | None) -> None:
    text = f"x {surface} y"
    span = clean_span(text, 2, 2 + len(surface))
    assert (text[span[0] : span[1]] if span else None) == expected


def test_case_and_whitespace_variants_merge_and_the_commonest_form_names_the_entity() -> None:
    text = "Kennedy Space Center. KENNEDY  SPACE CENTER. Kennedy Space Center."
    surfaces = [(s, "FAC") for s in ("Kennedy Space Center", "KENNEDY  SPACE CENTER")]
    result = merge_findings(
        [found(text, *surfaces), found(text[44:], ("Kennedy Space Center", "FAC"), n=1)]
    )
    [entity] = result.entities
    assert entity.name == "Kennedy Space Center"
    assert entity.aliases == ("KENNEDY SPACE CENTER",)
    assert entity.chunk_ids == ("d1-c0", "d1-c1")
    assert {m.entity_id for m in result.mentions} == {entity.id}


def test_person_alias_merges_into_the_full_name_of_the_same_document_only() -> None:
    text = "Frank Borman flew. Later Borman retired."
    result = merge_findings(
        [
            found(text, ("Frank Borman", "PERSON"), ("Borman", "PERSON")),
            found("Borman spoke.", ("Borman", "PERSON"), doc="d2"),
        ]
    )
    full, alone = result.entities
    assert (full.name, full.aliases, full.doc_ids) == ("Frank Borman", ("Borman",), ("d1",))
    assert (alone.name, alone.doc_ids) == ("Borman", ("d2",))
    assert [m.entity_id for m in result.mentions] == [full.id, full.id, alone.id]


def test_ambiguous_short_name_stays_apart() -> None:
    text = "Frank Borman and Susan Borman met. Borman smiled."
    result = merge_findings(
        [found(text, *[(s, "PERSON") for s in ("Frank Borman", "Susan Borman", "Borman")])]
    )
    assert [e.name for e in result.entities] == ["Frank Borman", "Susan Borman", "Borman"]


def test_acronym_merges_into_the_org_whose_initials_it_spells() -> None:
    text = "NASA is the National Aeronautics and Space Administration; NASAL is not."
    result = merge_findings(
        [
            found(
                text,
                ("NASA", "ORG"),
                ("National Aeronautics and Space Administration", "ORG"),
                ("NASAL", "ORG"),
            )
        ]
    )
    long_form, nasal = result.entities
    assert long_form.name == "National Aeronautics and Space Administration"
    assert long_form.aliases == ("NASA",)
    assert long_form.id == entity_id("t1", long_form.name, "ORG")
    assert nasal.name == "NASAL"


def test_a_name_takes_its_most_frequent_label() -> None:
    text = "Apollo 8 flew. Apollo 8 orbited. Apollo 8 returned."
    result = merge_findings(
        [found(text, ("Apollo 8", "PRODUCT"), ("Apollo 8", "PERSON"), ("Apollo 8", "PRODUCT"))]
    )
    [entity] = result.entities
    assert entity.type == "PRODUCT"


def test_excluded_labels_and_their_relations_are_dropped() -> None:
    text = "NASA launched it in 1968."
    base = found(text, ("NASA", "ORG"), ("1968", "DATE"))
    result = merge_findings([dataclasses.replace(base, relations=[RawRelation(0, 1, "IN")])])
    assert [e.name for e in result.entities] == ["NASA"]
    assert result.relations == []
    kept = merge_findings([base], exclude_types=())
    assert {e.type for e in kept.entities} == {"ORG", "DATE"}


def test_co_occurs_is_one_relation_per_pair_whatever_the_order() -> None:
    first = found("Paris and Berlin.", ("Paris", "GPE"), ("Berlin", "GPE"))
    second = found("Berlin and Paris.", ("Berlin", "GPE"), ("Paris", "GPE"), n=1, doc="d2")
    pair = [RawRelation(0, 1, CO_OCCURS, symmetric=True)]
    result = merge_findings(
        [dataclasses.replace(first, relations=pair), dataclasses.replace(second, relations=pair)]
    )
    [relation] = result.relations
    assert relation.source_id < relation.target_id
    assert relation.chunk_ids == ("d1-c0", "d2-c1")
    assert relation.doc_ids == ("d1", "d2")
    assert relation.count == 2
    assert relation.id == relation_id("t1", relation.source_id, CO_OCCURS, relation.target_id)


def test_directed_relations_keep_their_direction_and_self_loops_vanish() -> None:
    text = "Apple bought Beats. Apple"
    base = found(text, ("Apple", "ORG"), ("Beats", "ORG"), ("Apple", "ORG"))
    rels = [RawRelation(1, 0, "bought by"), RawRelation(0, 2, "SAME")]
    result = merge_findings([dataclasses.replace(base, relations=rels)])
    assert triples(result) == {("Beats", "BOUGHT_BY", "Apple")}


def test_a_span_reported_twice_is_one_mention() -> None:
    twice = ChunkFindings(chunk("Ada Lovelace wrote."), [RawMention(0, 12, "PERSON")] * 2)
    result = merge_findings([twice])
    assert [(m.surface, m.char_start, m.char_end) for m in result.mentions] == [
        ("Ada Lovelace", 0, 12)
    ]


def test_bad_findings_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="outside"):
        merge_findings([ChunkFindings(chunk("short"), [RawMention(2, 99, "ORG")])])
    base = found("NASA and ESA", ("NASA", "ORG"), ("ESA", "ORG"))
    with pytest.raises(InvalidInputError, match="refers to mention"):
        merge_findings([dataclasses.replace(base, relations=[RawRelation(0, 5, "X")])])
    with pytest.raises(InvalidInputError, match="no letters"):
        merge_findings([dataclasses.replace(base, relations=[RawRelation(0, 1, "--")])])


def test_input_is_validated_before_any_work() -> None:
    class Never(EntityExtractor):
        def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
            raise AssertionError("not reached")

    with pytest.raises(InvalidInputError, match="given before with other content"):
        Never().extract([chunk("a"), chunk("b")])
    with pytest.raises(InvalidInputError, match="list of ChunkText"):
        Never().extract(chunk("a"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="tenant"):
        chunk("a", tenant="no spaces")
    assert Never().extract([]) == Extraction()
    assert Never().extract([chunk("  \n ")]) == Extraction()


def test_segments_cover_the_text_and_respect_the_limit() -> None:
    text = ("A sentence about Paris. " * 40 + "\n\n") * 2_000
    pieces = list(_segments(text, 20_000))
    assert all(len(piece) <= 20_000 for _, piece in pieces)
    assert "".join(piece for _, piece in pieces) == text
    assert all(text[start : start + len(piece)] == piece for start, piece in pieces)


# -- the spaCy extractor ---------------------------------------------------------------------


def test_apollo_sentence(extractor: SpacyEntityExtractor) -> None:
    result = extractor.extract([chunk(APOLLO)])
    assert {(e.name, e.type) for e in result.entities} == {
        ("Apollo 8", "PRODUCT"),
        ("NASA", "ORG"),
        ("Kennedy Space Center", "FAC"),
        ("Florida", "GPE"),
        ("Frank Borman", "PERSON"),
        ("James Lovell", "PERSON"),
        ("William Anders", "PERSON"),
    }
    for e in result.entities:
        assert e.id == entity_id("t1", e.name, e.type)
        assert e.tenant == "t1"
        assert e.chunk_ids == ("d1-c0",)
    for m in result.mentions:
        assert APOLLO[m.char_start : m.char_end] == m.surface
    assert [m.surface for m in result.mentions][:2] == ["Apollo 8", "NASA"]
    assert ("NASA", "LAUNCHED", "Apollo 8") in triples(result)
    assert ("Kennedy Space Center", "IN", "Florida") in triples(result)


def test_without_relations_only_ner_runs_and_finds_the_same_mentions(
    extractor: SpacyEntityExtractor,
) -> None:
    """Queries are linked with ``relations=False``: parser and shared tok2vec off, NER unchanged."""
    nlp_only = SpacyEntityExtractor(relations=False)
    assert nlp_only.load().pipe_names == ["ner"]
    texts = [
        APOLLO,
        "What did Maria Keller decide about the flood budget of Northwind Energy in Lyon?",
        "Who met james lovell, and when did the Soviet Union answer NASA?",
    ]
    chunks = [chunk(text, n) for n, text in enumerate(texts)]
    full = [f.mentions for f in extractor.find_candidates(chunks)]
    assert [f.mentions for f in nlp_only.find_candidates(chunks)] == full
    assert all(full)


def test_dates_are_kept_when_asked(extractor: SpacyEntityExtractor) -> None:
    result = sharing(extractor, exclude_types=()).extract([chunk(APOLLO)])
    assert ("December 21, 1968", "DATE") in {(e.name, e.type) for e in result.entities}


def test_svo_relation_and_its_passive_are_the_same_relation(
    extractor: SpacyEntityExtractor,
) -> None:
    active = extractor.extract([chunk("Steve Jobs founded Apple in California.")])
    assert ("Steve Jobs", "FOUNDED", "Apple") in triples(active)
    assert ("Steve Jobs", CO_OCCURS, "Apple") not in triples(active)
    assert ("Apple", CO_OCCURS, "Steve Jobs") not in triples(active)
    passive = extractor.extract([chunk("Apple was founded by Steve Jobs.", doc="d2")])
    assert {r.id for r in passive.relations} <= {r.id for r in active.relations}


def test_conjunctions_prepositions_and_appositions(extractor: SpacyEntityExtractor) -> None:
    text = (
        "NASA flew Frank Borman, James Lovell and William Anders. "
        "Tim Cook, the CEO of Apple, visited Paris. Barack Obama was born in Hawaii."
    )
    found_triples = triples(extractor.extract([chunk(text)]))
    for crew in ("Frank Borman", "James Lovell", "William Anders"):
        assert ("NASA", "FLEW", crew) in found_triples
    assert ("Tim Cook", "CEO_OF", "Apple") in found_triples
    assert ("Tim Cook", "VISITED", "Paris") in found_triples
    assert ("Barack Obama", "BORN_IN", "Hawaii") in found_triples


def test_aliases_and_acronyms_from_text(extractor: SpacyEntityExtractor) -> None:
    text = (
        "The National Aeronautics and Space Administration (NASA) hired Frank Borman. "
        "Borman's flight for NASA was famous."
    )
    result = extractor.extract([chunk(text)])
    by_name = {e.name: e for e in result.entities}
    assert by_name["National Aeronautics and Space Administration"].aliases == ("NASA",)
    assert by_name["Frank Borman"].aliases == ("Borman",)
    assert len(result.entities) == 2
    assert [m.surface for m in result.mentions] == [
        "National Aeronautics and Space Administration",
        "NASA",
        "Frank Borman",
        "Borman",
        "NASA",
    ]


def test_relation_support_is_merged_across_chunks(extractor: SpacyEntityExtractor) -> None:
    texts = ["Steve Jobs founded Apple.", "In 1976 Steve Jobs founded Apple."]
    chunks = [chunk(text, n, doc=f"d{n}") for n, text in enumerate(texts)]
    result = extractor.extract(chunks)
    [founded] = [r for r in result.relations if r.type == "FOUNDED"]
    assert founded.chunk_ids == ("d0-c0", "d1-c1")
    assert founded.doc_ids == ("d0", "d1")
    assert founded.count == 2


def test_co_occurrence_is_symmetric_and_unique(extractor: SpacyEntityExtractor) -> None:
    texts = ["Paris, Berlin and Madrid are capitals.", "Madrid, Berlin and Paris are capitals."]
    result = extractor.extract([chunk(text, n) for n, text in enumerate(texts)])
    pairs = [frozenset((r.source_id, r.target_id)) for r in result.relations]
    assert len(pairs) == len(set(pairs)) == 3
    assert all(r.source_id < r.target_id for r in result.relations if r.type == CO_OCCURS)


def test_a_chunk_given_twice_counts_once(extractor: SpacyEntityExtractor) -> None:
    once = extractor.extract([chunk(APOLLO)])
    assert extractor.extract([chunk(APOLLO), chunk(APOLLO)]) == once


def test_same_input_same_output(extractor: SpacyEntityExtractor) -> None:
    chunks = [chunk(APOLLO), chunk("Frank Borman met Borman's family in Houston.", 1)]
    first = extractor.extract(chunks)
    assert extractor.extract(chunks) == first
    assert sharing(extractor).extract(chunks) == first


def test_tenant_is_carried_and_separates_ids(extractor: SpacyEntityExtractor) -> None:
    a = extractor.extract([chunk(APOLLO, tenant="acme")])
    b = extractor.extract([chunk(APOLLO, tenant="globex")])
    tenants = {e.tenant for e in a.entities} | {m.tenant for m in a.mentions}
    assert tenants | {r.tenant for r in a.relations} == {"acme"}
    assert not {e.id for e in a.entities} & {e.id for e in b.entities}
    assert [e.name for e in a.entities] == [e.name for e in b.entities]


def test_huge_chunk_is_cut_and_pairs_stay_bounded(extractor: SpacyEntityExtractor) -> None:
    cities = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Warsaw", "Lisbon"]
    listing = "Delegates came from " + ", ".join(cities * 12) + ".\n"
    story = "Frank Borman flew Apollo 8 from Florida. Borman met NASA engineers in Houston.\n"
    text = listing + story * 250  # ~21,000 characters, cut into several segments
    result = sharing(extractor, max_segment_chars=4_000, window=2).extract([chunk(text)])
    assert all(text[m.char_start : m.char_end] == m.surface for m in result.mentions)
    assert max(m.char_end for m in result.mentions) > len(text) - len(story)
    assert len(result.mentions) > 500
    co = [r for r in result.relations if r.type == CO_OCCURS]
    assert len({e.name for e in result.entities} & set(cities)) == len(cities)
    assert len(co) <= len(result.entities) * 4  # the window bounds pairs, not n²


def test_missing_model_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not installed"):
        SpacyEntityExtractor("no_such_spacy_model_xyz").load()
    spacy = pytest.importorskip("spacy")

    def missing(name: str, **_: object) -> None:
        raise OSError(f"[E050] Can't find model '{name}'")

    monkeypatch.setattr(spacy, "load", missing)
    with pytest.raises(ConfigError, match=f"pip install {DEFAULT_PACKAGE}"):
        SpacyEntityExtractor().load()


def test_constructor_does_no_io_and_checks_settings() -> None:
    assert SpacyEntityExtractor("no_such_spacy_model_xyz").extract([]) == Extraction()
    with pytest.raises(InvalidInputError, match="batch_size"):
        SpacyEntityExtractor(batch_size=0)
