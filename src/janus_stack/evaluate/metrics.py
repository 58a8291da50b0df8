"""Retrieval and answer metrics, as plain functions of rankings and strings.

Retrieval metrics take a ranking of document IDs (best first, no repeats)
and the query's graded judgments (document ID → grade, grade > 0 relevant):

* ``ndcg_at_k``: DCG with linear gain, ``Σ grade_i / log2(i + 1)`` over the
  first ``k`` ranks, divided by the DCG of the ideal ordering of all judged
  grades (as trec_eval's ``ndcg_cut``).
* ``recall_at_k``: relevant documents in the first ``k`` / all relevant.
* ``reciprocal_rank``: 1 / rank of the first relevant document (0 if none
  within ``k``).

Answer metrics follow the SQuAD evaluation script: lower-case, strip
punctuation and the articles a/an/the, collapse whitespace
(``normalize_answer``); exact match and token F1 take the best over the
reference answers.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013"}


def dcg(grades: Iterable[int]) -> float:
    return sum(grade / math.log2(rank + 1) for rank, grade in enumerate(grades, start=1))


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    ideal = dcg(sorted((g for g in judged.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(max(judged.get(doc, 0), 0) for doc in ranking[:k]) / ideal


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    relevant = {doc for doc, grade in judged.items() if grade > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def reciprocal_rank(
    ranking: Sequence[str], judged: Mapping[str, int], k: int | None = None
) -> float:
    for rank, doc in enumerate(ranking[:k] if k else ranking, start=1):
        if judged.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals a normalised reference answer."""
    guess = normalize_answer(prediction)
    return float(any(guess == normalize_answer(answer) for answer in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best token-overlap F1 between the prediction and any reference answer."""
    guess = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        truth = normalize_answer(answer).split()
        if not guess or not truth:
            best = max(best, float(guess == truth))
            continue
        common = sum((Counter(guess) & Counter(truth)).values())
        if common:
            precision, recall = common / len(guess), common / len(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def contains_answer(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if a normalised reference answer occurs in the normalised prediction.

    An extractive answer quotes whole sentences, so exact match is near zero
    by design; this says whether the quoted text holds the answer at all.
    """
    guess = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(a)} " in guess for a in answers if normalize_answer(a)))


def supports(chunk_text: str, evidence: Sequence[str]) -> bool:
    """Whether a chunk contains one of the evidence quotes (both normalised)."""
    text = normalize_answer(chunk_text)
    return any(normalize_answer(quote) in text for quote in evidence if normalize_answer(quote))


def citation_precision(cited_texts: Sequence[str], evidence: Sequence[str]) -> float | None:
    """Share of cited chunks that contain supporting evidence; None with no citations."""
    if not cited_texts:
        return None
    return sum(supports(text, evidence) for text in cited_texts) / len(cited_texts)


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` from 0 to 1) of ``values``."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]
