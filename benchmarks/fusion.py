"""Choosing hybrid fusion honestly: tune on half of fitz-gov's queries, report on the other half.

Each judged fitz-gov query goes through ``Retriever.candidates`` once (every
mode, checked against the ledger, exactly what hybrid search fuses); then
every fusion setting of the grid is applied to the same candidates with
``Retriever.fuse_hits`` and scored by nDCG@10 per document, as ``janus eval``
scores it. Queries are split by a hash of their ID into a *dev* half, on
which the best setting of each method is chosen, and a *test* half, on which
the chosen settings, the single modes and the previous default (RRF, all
weights 1, ``rrf_k`` 60) are reported. The issue's goal: hybrid at least 3
nDCG points above the better single mode.

Late-interaction re-ranking (``rerank`` weight, :mod:`janus_stack.retrieve.rerank`)
is measured the same way: its weight is chosen on dev for hybrid search with
the default fusion, and dense search re-ranked with the same weight is shown
beside it, so that what fusion adds on top of the re-ranker stays visible.
Every chunk's token vectors are computed once (a few minutes on 2 cores).

The corpus is ingested into ``--home`` (the same tenant as ``janus eval
fitz-gov``; a re-run skips it by hash). fitz-gov is ingested without
entities by default, so graph search finds nothing; ``--entities`` ingests
with them (into another ``--home``: one already holding the corpus skips it
by hash, entities or not) and adds the graph weight to the grid, so that the graph mode's share of
hybrid search can be measured. ``benchmarks.fusion_variants`` tries what
lies around fusion (normalisation, depth, feedback, BM25's ``b``). Run:
``python -m benchmarks.fusion --home DIR [--entities] [--limit N] [--json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.evaluate import Evaluator, load_dataset, metrics
from janus_stack.evaluate.datasets import EvalQuery, spread
from janus_stack.retrieve import FusionWeights, Retriever
from janus_stack.retrieve.fusion import fuse
from janus_stack.retrieve.rerank import RERANK_DEPTH, maxsim, reorder
from janus_stack.retrieve.search import HybridCandidates
from janus_stack.retrieve.types import Candidate, Mode
from janus_stack.slots.embeddings import Vectors

K = 10
GOAL_POINTS = 3.0
DENSE_ONLY = FusionWeights(dense=1.0, keyword=0.0, graph=0.0)
KEYWORD_ONLY = FusionWeights(dense=0.0, keyword=1.0, graph=0.0)
GRAPH_ONLY = FusionWeights(dense=0.0, keyword=0.0, graph=1.0)
WITHOUT_GRAPH = FusionWeights(dense=1.0, keyword=1.0, graph=0.0)
EVERY_MODE = FusionWeights(dense=1.0, keyword=1.0, graph=1.0)
PREVIOUS = FusionWeights(dense=1.0, keyword=1.0, graph=1.0, rrf_k=60, method="rrf")
KEYWORD_WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.25, 1.5)
RRF_KS = (5, 10, 20, 40, 60)
GRAPH_WEIGHTS = (0.0, 0.25, 0.5, 1.0)
RERANK_WEIGHTS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class Judged:
    """A query, what each mode found for it, and the dataset document of every chunk found."""

    query: EvalQuery
    found: HybridCandidates
    docs: dict[str, str | None]


def is_dev(query_id: str) -> bool:
    """Half the queries, fixed by a hash of the ID (not by order: the file is sorted by topic)."""
    return hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0


def grid(graph: bool) -> list[FusionWeights]:
    """Weights to choose from; the graph weight only matters when the tenant has entities."""
    graphs = GRAPH_WEIGHTS if graph else (1.0,)
    settings = [
        FusionWeights(1.0, w, g, method="combsum")
        for w, g in itertools.product(KEYWORD_WEIGHTS, graphs)
    ]
    settings += [
        FusionWeights(1.0, w, g, rrf_k=k, method="rrf")
        for w, g, k in itertools.product(KEYWORD_WEIGHTS, graphs, RRF_KS)
    ]
    return settings


def weighted(item: Judged, weights: FusionWeights) -> dict[Mode, list[Candidate]]:
    """The candidates of the modes ``weights`` counts, as ``Retriever.fuse_hits`` takes them."""
    return {m: c for m, c in item.found.per_mode.items() if weights.of(m)}


def fused(item: Judged, weights: FusionWeights, k: int = K) -> list[tuple[str, float]]:
    """``fuse`` on the weighted modes' candidates, as in ``Retriever.fuse_hits``."""
    return fuse(weighted(item, weights), weights, k, item.found.depth)


class TokenVectors:
    """Every query's and candidate chunk's token vectors, computed once for all settings."""

    def __init__(self, janus: Janus, judged: Sequence[Judged], settings: Sequence[FusionWeights]):
        texts: dict[str, str] = {}
        for item in judged:
            for weights in settings:
                for chunk_id, _ in fused(item, weights, RERANK_DEPTH):
                    texts.setdefault(chunk_id, item.found.rows[chunk_id].text)
        print(f"[fusion] token vectors of {len(texts)} chunks", file=sys.stderr, flush=True)
        ids = list(texts)
        vectors = janus.embedder.token_vectors([texts[c] for c in ids])
        self.chunks: dict[str, Vectors] = dict(zip(ids, vectors, strict=True))
        queries = janus.embedder.token_vectors([item.query.text for item in judged])
        self.queries = {item.query.id: v for item, v in zip(judged, queries, strict=True)}

    def reranked(self, item: Judged, weights: FusionWeights) -> list[str]:
        """The top ``K`` of the fused top ``RERANK_DEPTH`` re-ordered as ``Retriever.fuse_hits``."""
        top = fused(item, weights, RERANK_DEPTH)
        query = self.queries[item.query.id]
        late = [maxsim(query, self.chunks[chunk_id]) for chunk_id, _ in top]
        reordered = reorder(top, late, weights, weighted(item, weights), K)
        return [chunk_id for chunk_id, _ in reordered]


def score(
    evaluator: Evaluator,
    judged: Sequence[Judged],
    weights: FusionWeights,
    tokens: TokenVectors | None = None,
) -> float:
    """Mean nDCG@10 over ``judged`` with ``weights`` (re-ranked with ``tokens`` if it has a
    ``rerank`` weight); documents rank by their first chunk, as in ``Evaluator.ranking``."""
    values = []
    for item in judged:
        if weights.rerank and tokens is not None:
            order = tokens.reranked(item, weights)
        else:
            order = [chunk_id for chunk_id, _ in fused(item, weights)]
        ranking: dict[str, None] = {}
        for chunk_id in order:
            doc = item.docs[chunk_id]
            if doc is not None:
                ranking.setdefault(doc, None)
        qrels = evaluator.dataset.qrels[item.query.id]
        values.append(metrics.ndcg_at_k(list(ranking), qrels, K))
    return statistics.fmean(values) if values else 0.0


def label(weights: FusionWeights) -> str:
    text = f"{weights.method} dense={weights.dense:g} keyword={weights.keyword:g}"
    text += f" graph={weights.graph:g}" if weights.graph != 1 else ""
    text += f" rrf_k={weights.rrf_k:g}" if weights.method == "rrf" else ""
    return text + (f" rerank={weights.rerank:g}" if weights.rerank else "")


def run(
    home: Path, limit: int | None, entities: bool = False, rerank: bool = True
) -> dict[str, Any]:
    settings = load_settings({"home": str(home)}, environ={}, cwd=home)
    dataset = load_dataset("fitz-gov")
    with Janus(settings) as janus:
        retriever = Retriever(janus)
        evaluator = Evaluator(
            janus, dataset, k=K, deep=0, retriever=retriever, entities=entities or None
        )
        print("[fusion] ingesting fitz-gov (skipped when unchanged)", file=sys.stderr)
        evaluator.ingest()
        graph = evaluator.entity_count() > 0
        queries = spread(dataset.judged(), limit)
        started = time.perf_counter()
        judged = []
        for number, query in enumerate(queries, start=1):
            found = retriever.candidates(query.text, k=K, tenant=evaluator.tenant)
            every = retriever.fuse_hits(found, len(found.rows), EVERY_MODE)
            docs = {hit.chunk_id: dataset.corpus.doc_of(hit) for hit in every}
            judged.append(Judged(query, found, docs))
            if number % 250 == 0:
                print(f"[fusion] {number}/{len(queries)} queries", file=sys.stderr, flush=True)
        took = time.perf_counter() - started
        dev = [j for j in judged if is_dev(j.query.id)]
        test = [j for j in judged if not is_dev(j.query.id)]
        tried = [(weights, score(evaluator, dev, weights)) for weights in grid(graph)]
        chosen = {
            method: max((t for t in tried if t[0].method == method), key=lambda t: t[1])[0]
            for method in ("combsum", "rrf")
        }
        reranked: dict[str, FusionWeights] = {}
        tokens = None
        if rerank:
            tokens = TokenVectors(janus, judged, [FusionWeights(), DENSE_ONLY])
            hybrid = max(
                (FusionWeights(rerank=w) for w in RERANK_WEIGHTS),
                key=lambda weights: score(evaluator, dev, weights, tokens),
            )
            again = FusionWeights(dense=1.0, keyword=0.0, graph=0.0, rerank=hybrid.rerank)
            reranked = {
                f"hybrid re-ranked, weight on dev ({label(hybrid)})": hybrid,
                f"dense re-ranked the same way ({label(again)})": again,
            }
        rows = {
            "dense only": DENSE_ONLY,
            "keyword only": KEYWORD_ONLY,
            **(
                {"graph only": GRAPH_ONLY, "dense + keyword, no graph": WITHOUT_GRAPH}
                if graph
                else {}
            ),
            "previous default (" + label(PREVIOUS) + ")": PREVIOUS,
            "current default (" + label(FusionWeights()) + ")": FusionWeights(),
            **{f"best {m} on dev ({label(w)})": w for m, w in chosen.items()},
            **reranked,
        }
        table = {
            name: {
                "dev": score(evaluator, dev, w, tokens),
                "test": score(evaluator, test, w, tokens),
            }
            for name, w in rows.items()
        }
    best_single = {
        split: max(table["dense only"][split], table["keyword only"][split])
        for split in ("dev", "test")
    }
    return {
        "queries": {"dev": len(dev), "test": len(test)},
        "graph_found_something": sum(bool(j.found.per_mode.get(Mode.GRAPH)) for j in judged),
        "candidate_seconds_per_query": took / max(1, len(judged)),
        "ndcg_at_10": table,
        "gain_over_best_single_points": {
            name: {s: 100 * (v[s] - best_single[s]) for s in ("dev", "test")}
            for name, v in table.items()
        },
        "goal_points": GOAL_POINTS,
        "grid_on_dev": [{"setting": label(w), "ndcg": v} for w, v in tried],
    }


def show(result: dict[str, Any]) -> None:
    sizes = result["queries"]
    print(f"\nfitz-gov nDCG@10 (dev {sizes['dev']} queries, test {sizes['test']} held out)")
    print(f"graph search found chunks for {result['graph_found_something']} queries")
    width = max(len(name) for name in result["ndcg_at_10"]) + 2
    print(f"{'setting':<{width}}{'dev':>8}{'test':>8}{'test gain':>11}")
    for name, values in result["ndcg_at_10"].items():
        gain = result["gain_over_best_single_points"][name]["test"]
        print(
            f"{name:<{width}}{100 * values['dev']:>8.1f}{100 * values['test']:>8.1f}{gain:>+11.1f}"
        )
    print(f"(goal: hybrid ≥ {result['goal_points']:.0f} points above the better single mode)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="JANUS_HOME to ingest into")
    parser.add_argument("--limit", type=int, help="use N judged queries, spread evenly")
    parser.add_argument(
        "--entities", action="store_true", help="ingest with entities (graph search finds some)"
    )
    parser.add_argument(
        "--no-rerank", action="store_true", help="leave late-interaction re-ranking out"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    args.home.mkdir(parents=True, exist_ok=True)
    result = run(args.home, args.limit, args.entities, not args.no_rerank)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
