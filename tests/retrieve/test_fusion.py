"""The pure parts of retrieval: fusion, filters, query words and snippets (no stores)."""

from __future__ import annotations

import pytest

from janus_stack.errors import InvalidInputError
from janus_stack.retrieve import Filters, FusionWeights, Mode
from janus_stack.retrieve.chunks import query_terms, snippet
from janus_stack.retrieve.fusion import fuse
from janus_stack.retrieve.keyword import fts5_query
from janus_stack.retrieve.rerank import reorder
from janus_stack.retrieve.types import Candidate, check_mode

D, K, G = Mode.DENSE, Mode.KEYWORD, Mode.GRAPH


def ranked(*chunks: str | tuple[str, float]) -> list[Candidate]:
    """Candidates best first; a bare ID scores by position (10, 9, ...)."""
    return [
        Candidate(c, 10.0 - i) if isinstance(c, str) else Candidate(*c)
        for i, c in enumerate(chunks)
    ]


RRF = FusionWeights(dense=1, keyword=1, graph=1, method="rrf")


def test_rrf_rewards_agreement_between_modes() -> None:
    fused = fuse({D: ranked("a", "b", "c"), K: ranked("b", "a"), G: ranked("b")}, RRF, 3)
    assert [chunk for chunk, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 63)


def test_combsum_keeps_how_far_ahead_a_mode_puts_its_best() -> None:
    # Keyword's "k" is far ahead of the rest; dense ranks "d" first by a hair.
    dense = ranked(("d", 0.61), ("k", 0.60), ("x", 0.51))
    keyword = ranked(("k", 30.0), ("x", 6.0), ("d", 5.0))
    weights = FusionWeights(dense=1, keyword=1, graph=0)
    fused = dict(fuse({D: dense, K: keyword}, weights, 3))
    # Min-max per mode: dense d=1, k=0.9, x=0; keyword k=1, x=0.04, d=0.
    assert fused == pytest.approx({"k": 1.9, "d": 1.0, "x": 0.04})
    # Rank fusion sees only the ranks: x, second for keyword, comes close to d.
    rrf = dict(fuse({D: dense, K: keyword}, RRF, 3))
    assert rrf["d"] - rrf["x"] < 0.001 < fused["d"] - fused["x"]


def test_combsum_scales_each_mode_by_its_weight() -> None:
    dense, keyword = ranked(("a", 0.9), ("b", 0.1)), ranked(("b", 4.0), ("a", 2.0))
    both = {D: dense, K: keyword}
    assert fuse(both, FusionWeights(dense=1, keyword=0.5), 2)[0] == ("a", pytest.approx(1.0))
    assert fuse(both, FusionWeights(dense=0.5, keyword=1), 2)[0] == ("b", pytest.approx(1.0))
    # One candidate, or equal scores, count in full.
    lone = fuse({G: ranked(("g", 0.3))}, FusionWeights(graph=0.5), 1)
    assert lone == [("g", pytest.approx(0.5))]


def test_weights_scale_each_mode_and_zero_ignores_it() -> None:
    for method in ("combsum", "rrf"):
        rankings = {D: ranked("a"), K: ranked("b")}
        assert fuse(rankings, FusionWeights(dense=2, keyword=1, method=method), 2)[0][0] == "a"
        assert fuse(rankings, FusionWeights(dense=1, keyword=2, method=method), 2)[0][0] == "b"
        only_keyword = fuse(rankings, FusionWeights(dense=0, keyword=1, method=method), 2)
        assert [c for c, _ in only_keyword] == ["b"]


def test_every_modes_leader_stays_in_the_top_k() -> None:
    # Five chunks every mode ranks 2nd-6th would push each mode's own leader out of the top 3.
    shared = ["s1", "s2", "s3", "s4", "s5"]
    rankings = {D: ranked("d", *shared), K: ranked("k", *shared), G: ranked("g", *shared)}
    for weights in (RRF, FusionWeights(dense=1, keyword=1, graph=1)):
        top = [chunk for chunk, _ in fuse(rankings, weights, 3)]
        assert sorted(top) == ["d", "g", "k"]
        top = [chunk for chunk, _ in fuse(rankings, weights, 5)]
        assert top[:2] == ["s1", "s2"] and {"d", "k", "g"} <= set(top)
        # With less room than leaders, the fused order decides.
        assert [chunk for chunk, _ in fuse(rankings, weights, 2)] == ["s1", "s2"]


def test_reranking_blends_the_scales_and_keeps_each_modes_leader() -> None:
    rankings = {D: ranked("a", "b", "c"), G: ranked("g")}
    fused = [("a", 2.0), ("b", 1.5), ("g", 1.0), ("c", 0.5)]
    late = [0.2, 0.9, 0.1, 0.6]  # MaxSim: b, then c, resemble the query most
    alone = FusionWeights(rerank=1.0)
    assert reorder(fused, late, alone, rankings, 4) == [
        ("b", 1.0), ("c", 0.625), ("a", 0.125), ("g", 0.0)
    ]  # fmt: skip
    # Room for three: graph's leader stays, in place of the weakest that leads no mode;
    # room for two: the two leaders.
    assert [c for c, _ in reorder(fused, late, alone, rankings, 3)] == ["b", "a", "g"]
    assert [c for c, _ in reorder(fused, late, alone, rankings, 2)] == ["a", "g"]
    half = dict(reorder(fused, late, FusionWeights(rerank=0.5), rankings, 4))
    assert half == pytest.approx({"b": 0.8333, "a": 0.5625, "c": 0.3125, "g": 0.1667}, abs=1e-4)
    assert reorder([("a", 1.0)], [0.3], alone, rankings, 1) == [("a", 1.0)]


def test_weights_parse_and_refuse_nonsense() -> None:
    weights = FusionWeights.parse(["graph=0.5", "rrf_k=10", "method=RRF"])
    assert weights.as_dict() == {
        "dense": FusionWeights().dense,
        "keyword": FusionWeights().keyword,
        "graph": 0.5,
        "rrf_k": 10.0,
        "method": "rrf",
        "rerank": 0.0,
    }
    assert FusionWeights.parse([]) == FusionWeights()
    # Unnamed weights keep the defaults given (the settings' rerank weight, say).
    assert FusionWeights.parse(["graph=0"], FusionWeights(rerank=0.8)).rerank == 0.8
    assert FusionWeights.parse(["rerank=0"], FusionWeights(rerank=0.8)).rerank == 0.0
    assert FusionWeights().method == "combsum"
    for bad, words in (
        (["graph"], "NUMBER"),
        (["graph=x"], "not a number"),
        (["colbert=1"], "NUMBER"),
        (["dense=nan"], "from 0 to 100"),
        (["dense=-1"], "from 0 to 100"),
        (["method=borda"], "combsum or rrf"),
        (["rerank=1.5"], "from 0 to 1"),
        (["rerank=nan"], "from 0 to 1"),
        (["rerank=much"], "not a number"),
        (["dense=0", "keyword=0", "graph=0"], "at least one mode"),
    ):
        with pytest.raises(InvalidInputError, match=words):
            FusionWeights.parse(bad)


def test_filters_parse_check_and_translate() -> None:
    filters = Filters.parse(["source=/a.txt", "page=3", "tags.topic=food", "title = A = B"])
    assert filters.as_dict() == {
        "source": "/a.txt",
        "page": 3,
        "tags.topic": "food",
        "title": "A = B",
    }
    flt = filters.vector_filter("acme")
    assert flt.tenant == "acme" and dict(flt.equals) == filters.as_dict()
    assert len(filters.sql()) == 4
    assert not Filters.parse(None) and not Filters.parse({})
    for bad, words in (
        (["colour=red"], "unknown filter field"),
        (["tenant=other"], "unknown filter field"),
        (["tags.=x"], "unknown filter field"),
        (["source"], "field=value"),
        (["page=3.5"], "whole number"),
        (["source=a", "source=b"], "twice"),
        ({"source": 3}, "text"),
        ("source=a", "mapping or a list"),
    ):
        with pytest.raises(InvalidInputError, match=words):
            Filters.parse(bad)  # type: ignore[arg-type]


def test_query_words_drop_stop_words_unless_nothing_is_left() -> None:
    assert query_terms("Who flew Apollo 8 to the Moon?") == ["flew", "apollo", "8", "moon"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]
    assert query_terms('"AND OR (') == ["and", "or"]
    assert query_terms("?!") == []
    assert fts5_query(["and", "or"]) == '"and" OR "or"'


def test_modes_by_name() -> None:
    assert check_mode(" Dense ") is Mode.DENSE and check_mode(Mode.GRAPH) is Mode.GRAPH
    with pytest.raises(InvalidInputError, match="dense, keyword, graph, hybrid"):
        check_mode("bm25")


def test_snippets_centre_on_the_first_query_word() -> None:
    text = ("filler words here " * 30) + "the zorbulite glaze shines " + ("more filler " * 30)
    cut = snippet(text, ["zorbulite"])
    assert "zorbulite" in cut and cut.startswith("…") and cut.endswith("…")
    assert len(cut) <= 242
    assert snippet("short  text\nhere", ["x"]) == "short text here"
    assert snippet(text, ["absent"]).startswith("filler words")
