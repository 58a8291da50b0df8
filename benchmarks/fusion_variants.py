"""What else might lift hybrid search on fitz-gov: every idea measured on the same split.

The companion of ``benchmarks/fusion.py`` (same home, same dev/test halves
by query-ID hash): that one compares the fusion settings Janus offers; this
one asks whether anything *around* fusion would reach the issue's goal
(hybrid nDCG@10 three points above the better single mode), so that the
default is not changed on a hunch. Each variant's free parameter is chosen
on dev; dev and test are both printed.

To try many variants quickly the tenant is read once into memory: every
chunk vector (dense search is then exact and any query vector can be
searched, as Rocchio feedback needs) and a replica of the FTS5 index
(same tokenizer, read back through ``fts5vocab``) so that BM25 can be
scored with other ``k1``/``b`` than FTS5's fixed 1.2/0.75. The ``dense``,
``keyword`` and ``hybrid`` rows replicate the product's numbers to within
a few tenths (exact vs. HNSW search, tie order).

Variants: score normalisation (min-max as shipped, z-score, Mazzeschi's
distribution-based ``mean - 3 sd`` to max; rank fusion is in
``benchmarks.fusion``), candidates per mode, document-level fusion, Rocchio
feedback on the dense query from the fused top chunks, a chunk-length prior
(``gamma * ln tokens``, on each single mode too, so that the comparison
stays fair), BM25's ``k1`` and ``b``, a per-query weight predicted from
query features, a logistic regression over candidate features fit on dev
(learning to rank, the most any fusion of these two rankings could be
taught here), and the per-query oracle of the two single modes.
Run after ``benchmarks.fusion`` has ingested: ``python -m
benchmarks.fusion_variants --home DIR [--limit N]``.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.fusion import is_dev
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.evaluate import Evaluator, load_dataset, metrics
from janus_stack.evaluate.datasets import spread
from janus_stack.retrieve import FusionWeights, keyword
from janus_stack.retrieve.chunks import load_chunks, query_terms
from janus_stack.retrieve.filters import Filters
from janus_stack.retrieve.fusion import fuse
from janus_stack.retrieve.types import Candidate, Mode
from janus_stack.slots.vectors.types import VectorFilter

K = 10
DEPTH = 30  # what hybrid search asks of each mode for k = 10
DEEP = 100
FTS5_K1, FTS5_B = 1.2, 0.75
Ranked = list[tuple[int, float]]  # (chunk row, score), best first
Vector = NDArray[np.float32]


@dataclass(frozen=True)
class Query:
    id: str
    dev: bool
    relevant: dict[str, int]
    vector: Vector
    terms: list[int]  # vocabulary indexes of its stemmed words
    keyword: Ranked  # FTS5 as searched by the product, DEEP deep


class Tenant:
    """Every chunk of the tenant in memory: vectors, documents, and a BM25 replica.

    Chunks with equal text are kept once (the product shows one of them).
    """

    def __init__(self, janus: Janus, evaluator: Evaluator) -> None:
        tenant = evaluator.tenant
        points = list(janus.vectors.iter_points(VectorFilter(tenant=tenant), with_vectors=True))
        rows = load_chunks(janus.ledger, tenant, [p.id for p in points], Filters.parse(None))
        first: dict[str, int] = {}
        self.ids: list[str] = []
        vectors: list[Sequence[float]] = []
        self.docs: list[str | None] = []
        texts: list[str] = []
        for point in sorted(points, key=lambda p: p.id):
            row = rows.get(point.id)
            if row is None or row.text_sha256 in first or point.vector is None:
                continue
            first[row.text_sha256] = len(self.ids)
            self.ids.append(point.id)
            vectors.append(point.vector)
            texts.append(row.text)
            self.docs.append(evaluator.dataset.corpus.doc_of(row.as_hit()))
        self.row_of = {chunk_id: n for n, chunk_id in enumerate(self.ids)}
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.vocabulary: dict[str, int] = {}
        self.postings: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []
        self.lengths = np.zeros(len(texts))
        self._index(texts)
        count = len(texts)
        self.idf = np.array(
            [max(math.log((count - len(r) + 0.5) / (len(r) + 0.5)), 1e-6) for r, _ in self.postings]
        )

    def _index(self, texts: Sequence[str]) -> None:
        """Term frequencies as FTS5 stores them (same tokenizer, read back via fts5vocab)."""
        counts: dict[tuple[int, int], int] = {}
        for term, row in _tokens(texts):
            key = (self.vocabulary.setdefault(term, len(self.vocabulary)), row)
            counts[key] = counts.get(key, 0) + 1
            self.lengths[row] += 1
        per_term: list[list[tuple[int, int]]] = [[] for _ in self.vocabulary]
        for (term_index, row), tf in counts.items():
            per_term[term_index].append((row, tf))
        for entries in per_term:
            entries.sort()
            self.postings.append(
                (np.array([r for r, _ in entries]), np.array([t for _, t in entries], dtype=float))
            )

    def bm25(self, terms: Sequence[int], k1: float, b: float, depth: int = DEEP) -> Ranked:
        scores = np.zeros(len(self.ids))
        norm = k1 * (1 - b + b * self.lengths / self.lengths.mean())
        for term in terms:
            rows, tf = self.postings[term]
            scores[rows] += self.idf[term] * tf * (k1 + 1) / (tf + norm[rows])
        return _top(scores, depth, positive=True)

    def dense(self, vector: Vector, depth: int = DEEP) -> Ranked:
        return _top(self.vectors @ vector, depth)

    def ndcg(self, query: Query, chunks: Sequence[int]) -> float:
        """nDCG@10 by document, documents ranked by their first chunk (as ``janus eval``)."""
        ranking: dict[str, None] = {}
        for row in chunks[:K]:
            doc = self.docs[row]
            if doc is not None:
                ranking.setdefault(doc, None)
        return metrics.ndcg_at_k(list(ranking), query.relevant, K)


def _tokens(texts: Sequence[str]) -> list[tuple[str, int]]:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter unicode61 remove_diacritics 2')"
    )
    connection.executemany("INSERT INTO t(rowid, body) VALUES (?, ?)", enumerate(texts))
    connection.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
    tokens = [(str(term), int(row)) for term, row in connection.execute("SELECT term, doc FROM v")]
    connection.close()
    return tokens


def _top(scores: NDArray[np.floating[Any]], depth: int, positive: bool = False) -> Ranked:
    order = np.argsort(-scores, kind="stable")[:depth]
    return [(int(r), float(scores[r])) for r in order if not positive or scores[r] > 0]


def load(home: Path, limit: int | None) -> tuple[Tenant, list[Query]]:
    settings = load_settings({"home": str(home)}, environ={}, cwd=home)
    dataset = load_dataset("fitz-gov")
    with Janus(settings) as janus:
        evaluator = Evaluator(janus, dataset, k=K, deep=0)
        print("[variants] ingesting fitz-gov (skipped when unchanged)", file=sys.stderr)
        evaluator.ingest()
        tenant = Tenant(janus, evaluator)
        judged = spread(dataset.judged(), limit)
        vectors = janus.embedder.embed([q.text for q in judged])
        stems = _tokens([" ".join(query_terms(q.text)) for q in judged])
        terms: list[list[int]] = [[] for _ in judged]
        for term, row in stems:
            index = tenant.vocabulary.get(term)
            if index is not None and index not in terms[row]:
                terms[row].append(index)
        queries = []
        for n, query in enumerate(judged):
            found = keyword.search(janus.ledger, evaluator.tenant, query.text, Filters({}), DEEP)
            ranked = [
                (tenant.row_of[c.chunk_id], c.score) for c in found if c.chunk_id in tenant.row_of
            ]
            vector = np.asarray(vectors[n], dtype=np.float32)
            queries.append(
                Query(query.id, is_dev(query.id), dataset.qrels[query.id], vector, terms[n], ranked)
            )
    return tenant, queries


def normalised(scores: Sequence[float], how: str) -> list[float]:
    values = np.asarray(scores, dtype=float)
    if how == "zscore":
        spread_ = values.std()
        return list((values - values.mean()) / spread_) if spread_ > 1e-12 else [0.0] * len(values)
    low = values.mean() - 3 * values.std() if how == "dist" else values.min()
    high = values.max()
    return list((values - low) / (high - low)) if high - low > 1e-12 else [1.0] * len(values)


def combine(
    rankings: Sequence[Ranked], how: str, prior: NDArray[np.float64] | None = None
) -> list[int]:
    """CombSUM of per-mode normalised scores (equal weights), plus an optional per-chunk prior."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        if ranking:
            for (row, _), share in zip(
                ranking, normalised([s for _, s in ranking], how), strict=True
            ):
                fused[row] = fused.get(row, 0.0) + share
    if prior is not None:
        fused = {row: value + float(prior[row]) for row, value in fused.items()}
    return sorted(fused, key=lambda row: (-fused[row], row))


def product(rankings: Sequence[Ranked], depth: int) -> list[int]:
    """The shipped ``fuse`` (CombSUM, min-max, leaders kept) on these rankings."""
    modes = (Mode.DENSE, Mode.KEYWORD)
    per_mode = {
        mode: [Candidate(str(row), score) for row, score in ranking[:depth]]
        for mode, ranking in zip(modes, rankings, strict=True)
    }
    return [int(c) for c, _ in fuse(per_mode, FusionWeights(), K, depth)]


def doc_level(tenant: Tenant, ranking: Ranked) -> Ranked:
    """One entry per document: its best chunk's score, under its first chunk seen."""
    seen: dict[str | None, tuple[int, float]] = {}
    for row, score in ranking:
        seen.setdefault(tenant.docs[row] or str(row), (row, score))
    return list(seen.values())


Variant = Callable[[Query, Any], list[int]]

ALPHAS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)


def weighted(tenant: Tenant, q: Query, alpha: float) -> list[int]:
    """The shipped ``fuse`` with dense weighing ``alpha`` and keyword ``1 - alpha``."""
    per_mode = {
        Mode.DENSE: [Candidate(str(r), v) for r, v in tenant.dense(q.vector)[:DEPTH]],
        Mode.KEYWORD: [Candidate(str(r), v) for r, v in q.keyword[:DEPTH]],
    }
    weights = FusionWeights(dense=alpha, keyword=1 - alpha, graph=0.0)
    return [int(c) for c, _ in fuse(per_mode, weights, K, DEPTH)]


def standardised(rows: NDArray[np.float64], like: NDArray[np.float64]) -> NDArray[np.float64]:
    """``rows`` on the scale of ``like`` (the dev half), with a constant column."""
    scaled = (rows - like.mean(axis=0)) / (like.std(axis=0) + 1e-9)
    return np.hstack([scaled, np.ones((len(rows), 1))])


def query_features(tenant: Tenant, q: Query) -> list[float]:
    """What a query's two rankings say about which to trust: scores, gaps, agreement, idf."""
    dense = [v for _, v in tenant.dense(q.vector)[:K]]
    keyword = [v for _, v in q.keyword[:K]]
    idf = [float(tenant.idf[t]) for t in q.terms] or [0.0]
    agree = {r for r, _ in tenant.dense(q.vector)[:K]} & {r for r, _ in q.keyword[:K]}
    return [
        dense[0],
        dense[0] - dense[1],
        dense[0] - statistics.fmean(dense),
        keyword[0] if keyword else 0.0,
        (keyword[0] - keyword[1]) / keyword[0] if len(keyword) > 1 else 1.0,
        len(q.keyword) / DEEP,
        len(agree) / K,
        len(q.terms),
        statistics.fmean(idf),
        max(idf),
    ]


def adaptive_weight(tenant: Tenant, dev: Sequence[Query]) -> Variant:
    """Per query, the dense weight of ``ALPHAS`` a ridge regression of each weight's nDCG on
    ``query_features`` (fit on dev) expects to be best."""
    features = np.array([query_features(tenant, q) for q in dev])
    gains = np.array([[tenant.ndcg(q, weighted(tenant, q, a)) for a in ALPHAS] for q in dev])
    x = standardised(features, features)
    coefficients = np.linalg.solve(x.T @ x + 10 * np.eye(x.shape[1]), x.T @ gains)

    def chosen(q: Query, _: Any) -> list[int]:
        row = standardised(np.array([query_features(tenant, q)]), features)
        return weighted(tenant, q, ALPHAS[int((row @ coefficients).argmax())])

    return chosen


def candidate_features(tenant: Tenant, q: Query) -> tuple[list[int], NDArray[np.float64]]:
    """Each candidate of either mode: its normalised score, reciprocal rank and presence per
    mode, its exact cosine, the product of the normalised scores, and its log length."""
    dense, keyword = tenant.dense(q.vector)[:DEPTH], q.keyword[:DEPTH]
    shares = [
        dict(zip([r for r, _ in m], normalised([v for _, v in m], "minmax"), strict=True))
        if m
        else {}
        for m in (dense, keyword)
    ]
    ranks = [{r: n for n, (r, _) in enumerate(m)} for m in (dense, keyword)]
    rows = list(dict.fromkeys([r for r, _ in dense] + [r for r, _ in keyword]))
    table = []
    for row in rows:
        cosine = float(tenant.vectors[row] @ q.vector)
        per_mode = [
            f
            for share, rank in zip(shares, ranks, strict=True)
            for f in (share.get(row, 0.0), 1 / (rank.get(row, DEEP) + 1), float(row in rank))
        ]
        table.append(
            [cosine, cosine - dense[0][1], *per_mode, per_mode[0] * per_mode[3],
             math.log(max(tenant.lengths[row], 1.0))]
        )  # fmt: skip
    return rows, np.array(table)


def learned_fusion(tenant: Tenant, dev: Sequence[Query]) -> Variant:
    """Candidates ranked by a logistic regression of relevance on ``candidate_features``, fit
    on dev (full-batch gradient descent, a light L2 penalty)."""
    found = [candidate_features(tenant, q) for q in dev]
    features = np.vstack([f for _, f in found])
    labels = np.concatenate(
        [[q.relevant.get(tenant.docs[r] or "", 0) > 0 for r in rows] for q, (rows, _) in
         zip(dev, found, strict=True)]
    ).astype(float)  # fmt: skip
    x = standardised(features, features)
    coefficients = np.zeros(x.shape[1])
    for _ in range(3000):
        predicted = 1 / (1 + np.exp(-(x @ coefficients)))
        coefficients -= 0.5 * (x.T @ (predicted - labels) / len(labels) + 1e-3 * coefficients)

    def ranked(q: Query, _: Any) -> list[int]:
        rows, table = candidate_features(tenant, q)
        scores = standardised(table, features) @ coefficients
        return [rows[i] for i in np.argsort(-scores, kind="stable")]

    return ranked


BM25_GRID = [(k1, b) for k1 in (0.6, 0.9, 1.2, 1.6) for b in (0.2, 0.3, 0.4, 0.5, 0.75)]


def variants(tenant: Tenant, dev: Sequence[Query]) -> dict[str, tuple[Sequence[Any], Variant]]:
    """Name → (parameter grid, ranking function); an empty grid: nothing to choose."""
    log_length = np.log(np.maximum(tenant.lengths, 1.0))

    def dense(q: Query, _: float) -> list[int]:
        return [r for r, _ in tenant.dense(q.vector)]

    def keyword_(q: Query, _: float) -> list[int]:
        return [r for r, _ in q.keyword]

    def hybrid(q: Query, depth: float) -> list[int]:
        return product([tenant.dense(q.vector), q.keyword], int(depth))

    def normalise(how: str) -> Variant:
        return lambda q, _: combine([tenant.dense(q.vector)[:DEPTH], q.keyword[:DEPTH]], how)

    def by_document(q: Query, _: float) -> list[int]:
        ranked = [doc_level(tenant, tenant.dense(q.vector)), doc_level(tenant, q.keyword)]
        return product(ranked, DEPTH)

    def rocchio(q: Query, beta: float) -> list[int]:
        top = hybrid(q, DEPTH)[:3]
        moved = q.vector + beta * tenant.vectors[top].mean(axis=0)
        return product([tenant.dense(moved / np.linalg.norm(moved)), q.keyword], DEPTH)

    def prior(ranked: Callable[[Query], list[Ranked]]) -> Variant:
        return lambda q, g: combine([r[:DEPTH] for r in ranked(q)], "minmax", g * log_length)

    return {
        "dense": ((), dense),
        "keyword (FTS5)": ((), keyword_),
        "keyword, BM25 replica, k1 and b chosen on dev": (
            BM25_GRID,
            lambda q, p: [r for r, _ in tenant.bm25(q.terms, *p)],
        ),
        "hybrid as shipped (min-max CombSUM, 30 per mode)": ((), lambda q, _: hybrid(q, DEPTH)),
        "hybrid, candidates per mode chosen on dev": ((10, 20, 30, 50, 100), hybrid),
        "hybrid, z-score CombSUM": ((), normalise("zscore")),
        "hybrid, distribution-based (mean-3sd..max) CombSUM": ((), normalise("dist")),
        "hybrid, document-level fusion": ((), by_document),
        "hybrid + Rocchio on dense from fused top 3, beta on dev": ((0.25, 0.5, 1.0), rocchio),
        "hybrid, keyword BM25 k1 and b chosen on dev": (
            BM25_GRID,
            lambda q, p: product([tenant.dense(q.vector), tenant.bm25(q.terms, *p)], DEPTH),
        ),
        "hybrid, per-query dense weight from query features (ridge on dev)": (
            (),
            adaptive_weight(tenant, dev),
        ),
        "hybrid, learned linear fusion of candidate features (logistic on dev)": (
            (),
            learned_fusion(tenant, dev),
        ),
        "dense + length prior (gamma ln tokens), gamma on dev": (
            (0.1, 0.2, 0.3),
            prior(lambda q: [tenant.dense(q.vector)]),
        ),
        "keyword + length prior, gamma on dev": ((0.1, 0.2, 0.3), prior(lambda q: [q.keyword])),
        "hybrid + length prior, gamma on dev": (
            (0.1, 0.2, 0.3),
            prior(lambda q: [tenant.dense(q.vector), q.keyword]),
        ),
    }


def run(home: Path, limit: int | None) -> dict[str, Any]:
    tenant, queries = load(home, limit)
    dev = [q for q in queries if q.dev]
    test = [q for q in queries if not q.dev]

    def score(split: Sequence[Query], variant: Variant, parameter: Any) -> float:
        return statistics.fmean(tenant.ndcg(q, variant(q, parameter)) for q in split)

    table: dict[str, dict[str, Any]] = {}
    for name, (grid, variant) in variants(tenant, dev).items():
        chosen = max(grid, key=lambda p: score(dev, variant, p)) if grid else 0.0
        table[name] = {"dev": score(dev, variant, chosen), "test": score(test, variant, chosen)}
        if grid:
            table[name]["parameter"] = chosen
        print(f"[variants] {name}", file=sys.stderr, flush=True)
    table["oracle: better of dense and keyword per query"] = {
        split: statistics.fmean(
            max(
                tenant.ndcg(q, [r for r, _ in tenant.dense(q.vector)]),
                tenant.ndcg(q, [r for r, _ in q.keyword]),
            )
            for q in qs
        )
        for split, qs in (("dev", dev), ("test", test))
    }
    return {"queries": {"dev": len(dev), "test": len(test)}, "ndcg_at_10": table}


def show(result: dict[str, Any]) -> None:
    sizes = result["queries"]
    table = result["ndcg_at_10"]
    print(f"\nfitz-gov nDCG@10 (dev {sizes['dev']} queries, test {sizes['test']} held out)")
    print(f"{'variant':<60}{'param':>7}{'dev':>8}{'test':>8}")
    for name, row in table.items():
        parameter = str(row.get("parameter", ""))
        print(f"{name:<60}{parameter:>7}{100 * row['dev']:>8.1f}{100 * row['test']:>8.1f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="JANUS_HOME holding fitz-gov")
    parser.add_argument("--limit", type=int, help="use N judged queries, spread evenly")
    args = parser.parse_args(argv)
    show(run(args.home, args.limit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
