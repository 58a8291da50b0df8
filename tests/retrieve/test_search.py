"""Every search mode on a real memory (MiniLM, Qdrant Edge, ladybug, spaCy), per ledger.

The corpus (see ``retrieve_corpus.py``) is ingested once per ledger backend
(SQLite, PostgreSQL); each test asks questions only one mode can answer
well, and checks what the hit says about its source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from retrieve_corpus import (  # noqa: F401 - fixtures
    TENANT,
    Memory,
    extractor_fixture,
    memory_fixture,
    module_pg_url_fixture,
    write,
)
from sqlalchemy import select

from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError, JanusError, NotFoundError
from janus_stack.ingest.documents import document_key
from janus_stack.ingest.removal import delete_document
from janus_stack.ledger.models import Chunk
from janus_stack.ops.verify import verify
from janus_stack.retrieve import Filters, FusionWeights, Hit, Mode, Retriever
from janus_stack.retrieve.chunks import load_chunks
from janus_stack.retrieve.graph_ledger import best_mentions
from janus_stack.retrieve.types import MAX_QUERY_CHARS

MODES = ("dense", "keyword", "graph", "hybrid")


def names(hits: list[Hit]) -> list[str]:
    return [Path(hit.source).name for hit in hits]


# -- one mode at a time --------------------------------------------------------------


def test_dense_finds_the_paraphrased_topic(memory: Memory) -> None:
    query = "advice for raising vegetables in a backyard plot"
    hits = memory.retriever.search(query, mode="dense", k=3)
    assert names(hits)[0] == "garden.txt"
    top = hits[0]
    assert set(top.scores) == {"dense"} and top.ranks == {"dense": 1}
    assert top.score == top.scores["dense"] > hits[1].score
    # No word of the query is in the text: keyword search has nothing to say.
    assert memory.retriever.search(query, mode="keyword") == []


def test_keyword_finds_an_exact_rare_term_and_cites_it(memory: Memory) -> None:
    hits = memory.retriever.search("zorbulite", mode="keyword")
    assert names(hits) == ["bakery.md"]
    hit = hits[0]
    assert "zorbulite" in hit.snippet and hit.score > 0
    assert hit.title == "Sourdough in Lyon" and hit.heading_path == ("Sourdough in Lyon",)
    assert hit.version == 1 and hit.page is None and hit.ordinal == 0
    assert hit.document_id == document_key(TENANT, str(memory.files["bakery.md"].resolve()), "")
    with memory.janus.ledger.session() as session:
        chunk = session.get(Chunk, hit.chunk_id)
        assert chunk is not None and chunk.doc_id == hit.doc_id and chunk.text == hit.text
    data = hit.as_dict()
    assert list(data) == [
        "chunk_id",
        "score",
        "scores",
        "ranks",
        "document",
        "ordinal",
        "page",
        "heading_path",
        "snippet",
        "text",
        "graph_paths",
    ]
    assert list(data["document"]) == ["id", "doc_id", "title", "source", "sub_id", "version"]
    # Stemmed on both engines: "fermenting" finds "fermentation".
    assert names(memory.retriever.search("fermenting", mode="keyword")) == ["bakery.md"]


@pytest.mark.parametrize(
    "query",
    [
        '"AND OR (',
        "NEAR(zorbulite glaze)",
        "title:zorbulite",
        "zorbulite*",
        "zorbulite OR",
        "'; DROP TABLE chunks; --",
        '""""',
        "^zorbulite -glaze +crust",
        "a & b | !c <-> d:*",
        "() {} [] \\ /",
    ],
)
def test_keyword_never_parses_the_query_as_syntax(memory: Memory, query: str) -> None:
    hits = memory.retriever.search(query, mode="keyword")
    if "zorbulite" in query:
        assert names(hits)[0] == "bakery.md"
    with memory.janus.ledger.session() as session:
        assert session.scalar(select(Chunk.id).limit(1)) is not None  # chunks survived


def test_graph_links_entities_in_the_query_even_lower_case_or_misspelt(memory: Memory) -> None:
    for query in ("What does Pierre Durand bake?", "pierre durand", "Pierre Durant's bread"):
        hits = memory.retriever.search(query, mode="graph", k=3)
        assert names(hits)[0] == "bakery.md", query
        linked = memory.retriever.last_entities
        assert [e.name for e in linked] == ["Pierre Durand"], query
        mention = next(p for p in hits[0].paths if p.kind == "mention")
        assert [e.name for e in mention.entities] == ["Pierre Durand"]
    assert memory.retriever.search("the weather tomorrow", mode="graph") == []


def test_graph_returns_a_multi_hop_path_across_two_documents(memory: Memory) -> None:
    hits = memory.retriever.search("How is Amara Okafor connected to Copenhagen?", mode="graph")
    by_name = {Path(hit.source).name: hit for hit in hits}
    assert {"observatory.md", "voyage.txt"} <= set(by_name)
    # voyage.txt never names Amara Okafor: only the path reaches it.
    voyage = by_name["voyage.txt"]
    assert "Amara" not in voyage.text
    between = [p for p in voyage.paths if p.kind == "between"]
    assert between, voyage.paths
    path = between[0]
    ends = [path.entities[0].name, path.entities[-1].name]
    assert sorted(ends) == ["Amara Okafor", "Copenhagen"]
    assert "Henrik Larsen" in [e.name for e in path.entities[1:-1]]
    assert path.hops == len(path.relations) >= 2
    support = {c for relation in path.relations for c in relation.chunk_ids}
    assert {by_name["observatory.md"].chunk_id, voyage.chunk_id} <= support
    for relation, (left, right) in zip(
        path.relations, zip(path.entities, path.entities[1:], strict=False), strict=True
    ):
        assert {relation.source_id, relation.target_id} == {left.id, right.id}
        assert relation.chunk_ids
    assert path.as_dict()["text"].startswith(path.entities[0].name)


# -- hybrid -------------------------------------------------------------------------


def test_hybrid_holds_the_best_of_each_mode_once(memory: Memory) -> None:
    query = "zorbulite; cultivating backyard vegetables; Elena Petrowa"
    leaders = {}
    for mode in ("dense", "keyword", "graph"):
        hits = memory.retriever.search(query, mode=mode, k=5)
        assert hits, mode
        leaders[mode] = hits[0].chunk_id
    assert len(set(leaders.values())) >= 2, leaders  # the modes disagree on this query
    k = len(set(leaders.values()))
    hybrid = memory.retriever.search(query, k=k)
    ids = [hit.chunk_id for hit in hybrid]
    assert set(leaders.values()) == set(ids)
    assert len(ids) == len(set(ids))
    fused = [hit.scores["fused"] for hit in hybrid]
    assert fused == sorted(fused, reverse=True) == [hit.score for hit in hybrid]
    for hit in hybrid:
        assert set(hit.ranks) <= {"dense", "keyword", "graph"} and hit.ranks
        assert set(hit.scores) == {"fused", *hit.ranks}
    graph_hit = next(hit for hit in hybrid if hit.chunk_id == leaders["graph"])
    assert graph_hit.paths
    # The default mode is hybrid; more hits come with a larger k.
    assert len(memory.retriever.search(query, k=10)) > k


def test_hybrid_search_is_candidates_then_fusion(memory: Memory) -> None:
    query = "zorbulite; cultivating backyard vegetables; Elena Petrowa"
    found = memory.retriever.candidates(query, k=5)
    assert set(found.per_mode) == {Mode.DENSE, Mode.KEYWORD, Mode.GRAPH}
    assert all(found.per_mode.values())
    fused = memory.retriever.fuse_hits(found, 5)
    assert [h.chunk_id for h in fused] == [h.chunk_id for h in memory.retriever.search(query, k=5)]
    # Another method on the same candidates: ranks only, so at most 3 / (rrf_k + 1).
    rrf = memory.retriever.fuse_hits(found, 5, FusionWeights(1, 1, 1, method="rrf"))
    assert {h.chunk_id for h in rrf} <= set(found.rows)
    assert max(h.score for h in rrf) <= 3 / 61 < max(h.score for h in fused)


def test_hybrid_keeps_the_multi_hop_path_without_expansion(memory: Memory) -> None:
    hits = memory.retriever.search("How is Amara Okafor connected to Copenhagen?", k=5)
    voyage = next(hit for hit in hits if Path(hit.source).name == "voyage.txt")
    assert "graph" in voyage.ranks
    between = [p for p in voyage.paths if p.kind == "between"]
    assert between and "Henrik Larsen" in [e.name for e in between[0].entities]


def test_mentions_are_ranked_first_and_checked_against_filters_after(memory: Memory) -> None:
    ledger = memory.janus.ledger
    (henrik,) = memory.retriever.linker.link(ledger, TENANT, "Henrik Larsen")
    for name in ("voyage.txt", "observatory.md"):
        # Henrik Larsen is in both; with room for one chunk, the best-ranked one is
        # outside the filter for one of the two sources, and the check must look further.
        only = Filters.parse({"source": str(memory.files[name])})
        found = best_mentions(ledger, TENANT, only, {henrik.id: 1.0}, limit=1)
        assert len(found) == 1 and found[0][1] == henrik.id
        rows = load_chunks(ledger, TENANT, [found[0][0]], Filters.parse(None))
        assert Path(rows[found[0][0]].source).name == name


def test_names_ingested_after_a_search_link_at_once(memory: Memory, tmp_path: Path) -> None:
    tenant = "growing"
    first = write(tmp_path / "a", {"ferry.txt": "Margaret Holloway repaired the ferry in Oslo.\n"})
    memory.ingest(list(first.values()), tenant)
    hits = memory.retriever.search("Margaret Holloway", mode="graph", tenant=tenant)
    assert names(hits) == ["ferry.txt"]
    # Same retriever, names read before the second document existed: still linked at once.
    second = write(tmp_path / "b", {"mill.txt": "Daniel Ferreira rebuilt the mill in Porto.\n"})
    memory.ingest(list(second.values()), tenant)
    hits = memory.retriever.search("Daniel Ferreira", mode="graph", tenant=tenant)
    assert names(hits) == ["mill.txt"]
    assert [e.name for e in memory.retriever.last_entities] == ["Daniel Ferreira"]


def test_hybrid_weights_change_the_order_and_zero_skips_a_mode(memory: Memory) -> None:
    query = "zorbulite; cultivating backyard vegetables; Elena Petrowa"
    only_keyword = Retriever(
        memory.janus,
        extractor=memory.extractor,
        weights=FusionWeights(dense=0, keyword=1, graph=0),
    )
    hits = only_keyword.search(query, k=5)
    keyword = memory.retriever.search(query, mode="keyword", k=5)
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in keyword]
    assert all(set(h.ranks) == {"keyword"} for h in hits)


def test_rerank_reorders_the_fused_top_by_late_interaction(memory: Memory) -> None:
    query = "zorbulite; cultivating backyard vegetables; Elena Petrowa"

    def search(rerank: float, k: int = 10) -> list[Hit]:
        weights = FusionWeights(rerank=rerank)
        return Retriever(memory.janus, extractor=memory.extractor, weights=weights).search(
            query, k=k
        )

    fused = memory.retriever.search(query, k=10)
    assert memory.retriever.weights.rerank == memory.janus.settings.rerank == 0
    assert all("rerank" not in hit.scores for hit in fused)
    alone = search(1.0)
    # The same candidates (all of them: fewer than the re-ranked depth), ordered by MaxSim.
    assert {h.chunk_id for h in alone} == {h.chunk_id for h in fused}
    similarities = [hit.scores["rerank"] for hit in alone]
    assert similarities == sorted(similarities, reverse=True)
    assert [hit.chunk_id for hit in alone] != [hit.chunk_id for hit in fused]
    for hit in alone:
        assert set(hit.scores) == {"fused", "rerank", *hit.ranks}
        assert 0 < hit.scores["rerank"] <= 1
    # A blend: normalised fused score and MaxSim, half each; k cuts after re-ranking.
    half = search(0.5)
    scores = [hit.score for hit in half]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1
    assert [h.chunk_id for h in search(0.5, k=3)] == [h.chunk_id for h in half[:3]]


def test_the_settings_rerank_weight_is_every_retrievers_default(tmp_path: Path) -> None:
    settings = load_settings({"home": str(tmp_path), "rerank": 0.8}, environ={}, cwd=tmp_path)
    with Janus(settings) as janus:
        assert Retriever(janus).weights == FusionWeights(rerank=0.8)
        given = FusionWeights(keyword=0.5)
        assert Retriever(janus, weights=given).weights is given


# -- filters and tenants --------------------------------------------------------------


def test_filters_apply_in_every_mode(memory: Memory) -> None:
    query = "Lyon sourdough zorbulite Pierre Durand"
    for mode in MODES:
        food = memory.retriever.search(query, mode=mode, filters={"tags.topic": "food"})
        assert names(food)[0] == "bakery.md", mode
        assert set(names(food)) <= {"bakery.md", "garden.txt"}, mode
        science = memory.retriever.search(query, mode=mode, filters={"tags.topic": "science"})
        assert "bakery.md" not in names(science), mode
        if mode in ("keyword", "graph"):
            assert science == [], mode
    voyage = str(memory.files["voyage.txt"])
    for mode in MODES:
        hits = memory.retriever.search(
            "Amara Okafor and Copenhagen", mode=mode, filters={"source": voyage}
        )
        assert names(hits) == ["voyage.txt"], mode
    science = memory.retriever.search(
        "zorbulite", mode="dense", k=10, filters=["tags.topic=science"]
    )
    assert set(names(science)) == {"observatory.md", "voyage.txt", "chess.txt"}
    doc_id = science[0].doc_id
    assert {h.doc_id for h in memory.retriever.search("chess", filters={"doc_id": doc_id})} == {
        doc_id
    }
    assert memory.retriever.search("zorbulite", mode="keyword", filters={"page": 3}) == []
    titled = memory.retriever.search(
        "glaze", mode="keyword", filters={"title": "Sourdough in Lyon"}
    )
    assert names(titled) == ["bakery.md"]


def test_tenants_are_isolated(memory: Memory) -> None:
    assert names(memory.retriever.search("zorbulite", mode="keyword")) == ["bakery.md"]
    assert names(memory.retriever.search("zorbulite", mode="keyword", tenant="other")) == [
        "rival.txt"
    ]
    for mode in MODES:
        hits = memory.retriever.search("Kaito Tanaka in Osaka", mode=mode, tenant="other")
        assert set(names(hits)) == {"rival.txt"}, mode
        assert "rival.txt" not in names(memory.retriever.search("Kaito Tanaka in Osaka", mode=mode))
    memory.retriever.search("Kaito Tanaka", mode="graph")
    assert memory.retriever.last_entities == []


# -- updates and deletes ---------------------------------------------------------------


def test_an_updated_then_deleted_document_leaves_every_mode(memory: Memory, tmp_path: Path) -> None:
    tenant = "scratch"
    path = write(
        tmp_path,
        {
            "lighthouse.txt": "Quentin Bellamy restored the old lighthouse at Skagen "
            "with quarzonite mortar.\n"
        },
    )["lighthouse.txt"]
    memory.ingest([path], tenant)
    retriever = memory.retriever
    queries = {
        "dense": "repairing an old lighthouse",
        "keyword": "quarzonite",
        "graph": "Quentin Bellamy",
        "hybrid": "Quentin Bellamy quarzonite lighthouse",
    }
    old = {mode: retriever.search(q, mode=mode, tenant=tenant) for mode, q in queries.items()}
    assert all(names(hits) == ["lighthouse.txt"] for hits in old.values()), old
    old_chunk = old["keyword"][0].chunk_id

    path.write_text("Beatrix Holm painted the harbour of Aarhus in ultramarine.\n")
    memory.ingest([path], tenant)
    for mode, query in queries.items():
        hits = retriever.search(query, mode=mode, tenant=tenant)
        assert old_chunk not in [h.chunk_id for h in hits], mode
        assert all("quarzonite" not in h.text for h in hits), mode
    assert retriever.search("quarzonite", mode="keyword", tenant=tenant) == []
    assert retriever.search("Quentin Bellamy", mode="graph", tenant=tenant) == []
    new = retriever.search("ultramarine Beatrix Holm", tenant=tenant)
    assert names(new) == ["lighthouse.txt"] and new[0].version == 2
    report = verify(memory.janus, tenant).as_dict()["tenants"][tenant]
    assert report["ok"] and report["keyword"]["expected"] == report["keyword"]["found"] == 1

    delete_document(memory.janus, tenant, new[0].document_id)
    for mode in MODES:
        assert retriever.search("ultramarine Beatrix Holm", mode=mode, tenant=tenant) == [], mode
    report = verify(memory.janus, tenant).as_dict()["tenants"][tenant]
    assert report["ok"] and report["keyword"]["expected"] == report["keyword"]["found"] == 0


def test_verify_agrees_with_the_keyword_index(memory: Memory) -> None:
    report = verify(memory.janus).as_dict()
    assert report["ok"], report
    keyword = report["tenants"][TENANT]["keyword"]
    assert (
        keyword["expected"]
        == keyword["found"]
        == len({h.chunk_id for h in memory.retriever.search("the", mode="dense", k=100)})
    )
    engine = "sqlite-fts5-bm25" if memory.backend == "sqlite" else "postgresql-tsvector-ts_rank_cd"
    assert keyword["engine"] == engine


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        ({"query": ""}, InvalidInputError, "empty"),
        ({"query": "   \n\t"}, InvalidInputError, "empty"),
        ({"query": "x" * (MAX_QUERY_CHARS + 1)}, InvalidInputError, "2,000"),
        ({"query": "ok\x00"}, InvalidInputError, "NUL"),
        ({"mode": "semantic"}, InvalidInputError, "unknown mode"),
        ({"k": 0}, InvalidInputError, "k must be"),
        ({"k": 101}, InvalidInputError, "k must be"),
        ({"k": True}, InvalidInputError, "k must be"),
        ({"tenant": "ghost"}, NotFoundError, "does not exist"),
        ({"tenant": "bad tenant!"}, InvalidInputError, "invalid tenant"),
        ({"filters": {"colour": "red"}}, InvalidInputError, "unknown filter field"),
        ({"filters": ["source"]}, InvalidInputError, "field=value"),
        ({"filters": {"page": "three"}}, InvalidInputError, "whole number"),
        ({"filters": {"title": ""}}, InvalidInputError, "value"),
    ],
)
def test_bad_input_is_a_clear_error(
    memory: Memory, arguments: dict[str, object], error: type[JanusError], words: str
) -> None:
    call = {"query": "zorbulite", **arguments}
    query = call.pop("query")
    with pytest.raises(error, match=words):
        memory.retriever.search(query, **call)  # type: ignore[arg-type]


def test_bad_settings_are_clear_errors(memory: Memory) -> None:
    with pytest.raises(InvalidInputError, match="hops"):
        Retriever(memory.janus, hops=9)
    with pytest.raises(InvalidInputError, match="at least one mode"):
        FusionWeights(dense=0, keyword=0, graph=0)
    with pytest.raises(InvalidInputError, match="from 0 to 100"):
        FusionWeights(dense=-1)
    with pytest.raises(InvalidInputError, match="NUMBER"):
        FusionWeights.parse(["semantic=2"])
