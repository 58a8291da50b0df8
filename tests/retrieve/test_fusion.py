"""The pure parts of retrieval: fusion, filters, query words and snippets (no stores)."""

from __future__ import annotations

import pytest

from janus_stack.errors import InvalidInputError
from janus_stack.retrieve import Filters, FusionWeights, Mode
from janus_stack.retrieve.chunks import query_terms, snippet
from janus_stack.retrieve.fusion import fuse
from janus_stack.retrieve.keyword import fts5_query
from janus_stack.retrieve.types import check_mode

D, K, G = Mode.DENSE, Mode.KEYWORD, Mode.GRAPH


def test_rrf_rewards_agreement_between_modes() -> None:
    fused = fuse({D: ["a", "b", "c"], K: ["b", "a"], G: ["b"]}, FusionWeights(), 3)
    assert [chunk for chunk, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61 + 1 / 61)
    assert fused[2][1] == pytest.approx(1 / 63)


def test_weights_scale_each_mode_and_zero_ignores_it() -> None:
    rankings = {D: ["a"], K: ["b"]}
    assert fuse(rankings, FusionWeights(dense=2), 2)[0][0] == "a"
    assert fuse(rankings, FusionWeights(keyword=2), 2)[0][0] == "b"
    assert fuse(rankings, FusionWeights(dense=0), 2) == [("b", pytest.approx(1 / 61))]


def test_every_modes_leader_stays_in_the_top_k() -> None:
    # Five chunks every mode ranks 2nd-6th would push each mode's own leader out of the top 3.
    shared = ["s1", "s2", "s3", "s4", "s5"]
    rankings = {D: ["d", *shared], K: ["k", *shared], G: ["g", *shared]}
    top = [chunk for chunk, _ in fuse(rankings, FusionWeights(), 3)]
    assert sorted(top) == ["d", "g", "k"]
    top = [chunk for chunk, _ in fuse(rankings, FusionWeights(), 5)]
    assert top[:2] == ["s1", "s2"] and {"d", "k", "g"} <= set(top)
    # With less room than leaders, plain RRF order decides.
    assert [chunk for chunk, _ in fuse(rankings, FusionWeights(), 2)] == ["s1", "s2"]


def test_weights_parse_and_refuse_nonsense() -> None:
    weights = FusionWeights.parse(["graph=0.5", "rrf_k=10"])
    assert weights.as_dict() == {"dense": 1.0, "keyword": 1.0, "graph": 0.5, "rrf_k": 10.0}
    for bad in (["graph"], ["graph=x"], ["colbert=1"], ["dense=nan"], ["dense=-1"]):
        with pytest.raises(InvalidInputError):
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
