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
from janus_stack.retrieve.search import HybridCandidates
from janus_stack.retrieve.types import Mode

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


def score(evaluator: Evaluator, judged: Sequence[Judged], weights: FusionWeights) -> float:
    """Mean nDCG@10 over ``judged`` with ``weights``.

    The order is ``fuse`` on the weighted modes' candidates, as in
    ``Retriever.fuse_hits`` (without building the hits); documents rank by
    their first chunk, as in ``Evaluator.ranking``.
    """
    values = []
    for item in judged:
        weighted = {m: c for m, c in item.found.per_mode.items() if weights.of(m)}
        ranking: dict[str, None] = {}
        for chunk_id, _ in fuse(weighted, weights, K, item.found.depth):
            doc = item.docs[chunk_id]
            if doc is not None:
                ranking.setdefault(doc, None)
        qrels = evaluator.dataset.qrels[item.query.id]
        values.append(metrics.ndcg_at_k(list(ranking), qrels, K))
    return statistics.fmean(values) if values else 0.0


def label(weights: FusionWeights) -> str:
    text = f"{weights.method} dense={weights.dense:g} keyword={weights.keyword:g}"
    text += f" graph={weights.graph:g}" if weights.graph != 1 else ""
    return text + (f" rrf_k={weights.rrf_k:g}" if weights.method == "rrf" else "")


def run(home: Path, limit: int | None, entities: bool = False) -> dict[str, Any]:
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
        }
        table = {
            name: {"dev": score(evaluator, dev, w), "test": score(evaluator, test, w)}
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
    print(f"{'setting':<62}{'dev':>8}{'test':>8}{'test gain':>11}")
    for name, values in result["ndcg_at_10"].items():
        gain = result["gain_over_best_single_points"][name]["test"]
        print(f"{name:<62}{100 * values['dev']:>8.1f}{100 * values['test']:>8.1f}{gain:>+11.1f}")
    print(f"(goal: hybrid ≥ {result['goal_points']:.0f} points above the better single mode)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True, help="JANUS_HOME to ingest into")
    parser.add_argument("--limit", type=int, help="use N judged queries, spread evenly")
    parser.add_argument(
        "--entities", action="store_true", help="ingest with entities (graph search finds some)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    args.home.mkdir(parents=True, exist_ok=True)
    result = run(args.home, args.limit, args.entities)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
