"""The metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from janus_stack.evaluate import metrics


def test_ndcg_linear_gain_against_the_ideal_order() -> None:
    judged = {"a": 3, "b": 2, "c": 0, "d": 1}
    ranking = ["c", "a", "x", "d"]
    # DCG = 0/log2(2) + 3/log2(3) + 0/log2(4) + 1/log2(5)
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    # ideal order 3, 2, 1: 3/1 + 2/log2(3) + 1/log2(4)
    ideal = 3 + 2 / math.log2(3) + 0.5
    assert metrics.ndcg_at_k(ranking, judged, 10) == pytest.approx(dcg / ideal)
    assert metrics.ndcg_at_k(["a", "b", "d"], judged, 10) == pytest.approx(1.0)
    # the cutoff applies to both the ranking and the ideal
    assert metrics.ndcg_at_k(["b", "a"], judged, 1) == pytest.approx(2 / 3)
    assert metrics.ndcg_at_k(["x"], {"x": 0}, 10) == 0.0


def test_recall_and_reciprocal_rank() -> None:
    judged = {"a": 1, "b": 2, "c": 0, "d": 1}
    ranking = ["c", "x", "b", "a", "y"]
    assert metrics.recall_at_k(ranking, judged, 3) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(ranking, judged, 10) == pytest.approx(2 / 3)
    assert metrics.reciprocal_rank(ranking, judged) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(ranking, judged, 2) == 0.0
    assert metrics.recall_at_k(ranking, {"c": 0}, 10) == 0.0


def test_squad_normalisation_exact_match_and_f1() -> None:
    assert metrics.normalize_answer("The  Treaty of Paris!") == "treaty of paris"
    assert metrics.exact_match("the Treaty of Paris.", ["Treaty of Paris"]) == 1.0
    assert metrics.exact_match("Paris", ["Treaty of Paris"]) == 0.0
    # prediction "treaty of paris 1783" vs "treaty of paris": P = 3/4, R = 1, F1 = 6/7
    assert metrics.token_f1("Treaty of Paris, 1783", ["the Treaty of Paris"]) == pytest.approx(
        6 / 7
    )
    # best over answers; no overlap is 0
    assert metrics.token_f1("Ulm", ["Berlin", "Ulm"]) == 1.0
    assert metrics.token_f1("Berlin", ["Ulm"]) == 0.0
    assert metrics.token_f1("", ["Ulm"]) == 0.0


def test_contains_answer_and_citation_precision() -> None:
    answer = "He was born in Ulm, in the Kingdom of Württemberg. [1]"
    assert metrics.contains_answer(answer, ["ulm"]) == 1.0
    assert metrics.contains_answer(answer, ["Ul"]) == 0.0  # whole tokens only
    evidence = ["was born in Ulm, in the Kingdom of Württemberg"]
    chunks = ["Albert Einstein was born in Ulm,  in the kingdom of Württemberg in 1879.", "Other."]
    assert metrics.citation_precision(chunks, evidence) == 0.5
    assert metrics.citation_precision([], evidence) is None


def test_mean_and_percentile() -> None:
    assert metrics.mean([1.0, None, 3.0]) == 2.0
    assert metrics.mean([]) is None
    values = [float(v) for v in range(1, 21)]
    assert metrics.percentile(values, 0.95) == 19.0
    assert metrics.percentile([5.0], 0.95) == 5.0
    assert metrics.percentile([], 0.5) is None
