"""Running a dataset against a memory: ingest once, search every mode, answer, score.

Retrieval is scored by document: a hit counts for the dataset document it
belongs to (:meth:`Corpus.doc_of`), and a query's ranking is the documents
in the order of their first hit among the ``k`` hits returned (so a
document split into many chunks takes one rank). nDCG@k, Recall@k and
MRR@k come from one search with ``k`` hits, whose wall time is the latency
reported; Recall@deep from a second search with ``deep`` hits (at most
100). Queries without any relevant document are not scored.

Questions with reference answers, evidence quotes or supporting documents
also go through the :class:`Answerer` (hybrid retrieval, up to two rounds):
exact match and token F1 of the answer text (citation markers removed)
against the answers, citation precision (share of cited chunks containing
an evidence quote) and, for multi-hop questions, whether every supporting
document was among the hits the answer was drawn from.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select

from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.evaluate import metrics
from janus_stack.evaluate.datasets import Dataset, DatasetError, EvalQuery, spread
from janus_stack.evaluate.report import EvalReport, ModeScores, QAScores
from janus_stack.ids import check_tenant
from janus_stack.ingest.pipeline import IngestOptions, Ingestor, ProgressCallback
from janus_stack.ledger.models import Entity
from janus_stack.retrieve import Retriever
from janus_stack.retrieve.answer import Answer, Answerer
from janus_stack.retrieve.types import MAX_K, Hit, Mode, check_mode

DEFAULT_MODES: tuple[str, ...] = ("dense", "keyword", "graph", "hybrid")
DEFAULT_DEEP = 100
EXCLUDE_SLACK = 2  # extra hits fetched per excluded document
_CITATION_MARK = re.compile(r"\s*\[\d+\]")

Progress = Callable[[str, int, int], None]
"""(stage, done, total): ``stage`` is a mode name or ``qa``."""


class Evaluator:
    """Evaluates one dataset against one open memory.

    Args:
        tenant: where the corpus lives; ``eval-<dataset>`` by default.
        k: hits per search and the cutoff of nDCG, Recall and MRR.
        deep: hits of the second search for Recall@deep (0 skips it).
        entities: extract entities when ingesting; the dataset's default if None.
    """

    def __init__(
        self,
        janus: Janus,
        dataset: Dataset,
        *,
        tenant: str | None = None,
        k: int = 10,
        deep: int = DEFAULT_DEEP,
        entities: bool | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        if not 1 <= k <= MAX_K:
            raise InvalidInputError(f"eval: k must be from 1 to {MAX_K}, got {k}")
        if not 0 <= deep <= MAX_K:
            raise InvalidInputError(f"eval: deep must be from 0 to {MAX_K}, got {deep}")
        self.janus = janus
        self.dataset = dataset
        self.tenant = check_tenant(tenant or dataset.tenant)
        self.k = k
        self.deep = deep
        self.entities = dataset.entities if entities is None else entities
        self.retriever = retriever or Retriever(janus)
        self.workdir = janus.settings.home / "eval"
        dataset.corpus.bind(self.workdir)

    def ingest(self, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Put the corpus into the tenant; unchanged files are skipped by hash."""
        files = self.dataset.corpus.files(self.workdir)
        options = IngestOptions(entities=self.entities, extract=self.dataset.corpus.extract_options)
        ingestor = Ingestor(self.janus, self.janus.embedder, options, progress=progress)
        ingestor.resume(self.tenant)
        report = ingestor.ingest(files, tenant=self.tenant, tags={"eval": self.dataset.name})
        if report.failed:
            first = report.failed[0]
            raise DatasetError(f"eval: ingesting {first.path} failed: {first.error}")
        summary: dict[str, Any] = report.as_dict()["summary"]
        return summary

    def entity_count(self) -> int:
        with self.janus.ledger.session() as session:
            count = session.scalar(
                select(func.count()).select_from(Entity).where(Entity.tenant_id == self.tenant)
            )
        return int(count or 0)

    def retrieval(
        self,
        modes: Sequence[str],
        queries: Sequence[EvalQuery],
        progress: Progress | None = None,
        per_query: list[dict[str, Any]] | None = None,
    ) -> list[ModeScores]:
        """Score each mode over ``queries`` (judged ones)."""
        entities = self.entity_count()
        results = []
        for name in modes:
            mode = check_mode(name)
            if mode is Mode.GRAPH and entities == 0:
                note = f"n/a: tenant {self.tenant} has no entities (ingested without --entities)"
                results.append(ModeScores(mode.value, note=note))
                continue
            results.append(self._score_mode(mode, queries, progress, per_query))
        return results

    def _score_mode(
        self,
        mode: Mode,
        queries: Sequence[EvalQuery],
        progress: Progress | None,
        per_query: list[dict[str, Any]] | None,
    ) -> ModeScores:
        if queries:  # warm up: load models, open slots, fill caches
            self.retriever.search(queries[0].text, mode=mode, k=self.k, tenant=self.tenant)
        ndcg, recall, deep, rr, took = [], [], [], [], []
        for done, query in enumerate(queries, start=1):
            judged = self.dataset.qrels.get(query.id, {})
            started = time.perf_counter()
            hits = self._search(query, mode, self.k)
            took.append((time.perf_counter() - started) * 1000)
            ranking = self.ranking(hits, query)
            ndcg.append(metrics.ndcg_at_k(ranking, judged, self.k))
            recall.append(metrics.recall_at_k(ranking, judged, self.k))
            rr.append(metrics.reciprocal_rank(ranking, judged, self.k))
            if self.deep:
                deep_ranking = self.ranking(self._search(query, mode, self.deep), query)
                deep.append(metrics.recall_at_k(deep_ranking, judged, self.deep))
            if per_query is not None:
                per_query.append(
                    {
                        "query_id": query.id,
                        "mode": mode.value,
                        "ndcg": round(ndcg[-1], 4),
                        "recall": round(recall[-1], 4),
                        "rr": round(rr[-1], 4),
                        "ms": round(took[-1], 1),
                        "ranking": ranking[: self.k],
                        "relevant": sorted(d for d, g in judged.items() if g > 0),
                    }
                )
            if progress is not None:
                progress(mode.value, done, len(queries))
        return ModeScores(
            mode=mode.value,
            queries=len(queries),
            ndcg=metrics.mean(ndcg),
            recall=metrics.mean(recall),
            recall_deep=metrics.mean(deep),
            mrr=metrics.mean(rr),
            latency_mean_ms=metrics.mean(took),
            latency_p95_ms=metrics.percentile(took, 0.95),
        )

    def _search(self, query: EvalQuery, mode: Mode, k: int) -> list[Hit]:
        fetch = min(k + EXCLUDE_SLACK * len(query.exclude_docs), MAX_K)
        hits = self.retriever.search(query.text, mode=mode, k=fetch, tenant=self.tenant)
        if query.exclude_docs:
            corpus = self.dataset.corpus
            hits = [h for h in hits if corpus.doc_of(h) not in query.exclude_docs][:k]
        return hits

    def ranking(self, hits: Sequence[Hit], query: EvalQuery) -> list[str]:
        """Dataset document IDs in order of their first hit, without repeats."""
        seen: dict[str, None] = {}
        for hit in hits:
            doc = self.dataset.corpus.doc_of(hit)
            if doc is not None and doc not in query.exclude_docs:
                seen.setdefault(doc, None)
        return list(seen)

    def qa(
        self,
        queries: Sequence[EvalQuery],
        progress: Progress | None = None,
        per_query: list[dict[str, Any]] | None = None,
    ) -> QAScores | None:
        """Answer the questions that can be checked; None if there are none."""
        questions = [q for q in queries if q.has_qa]
        if not questions:
            return None
        answerer = Answerer(self.janus, retriever=self.retriever)
        found, em, f1, contains, precision, supporting, took = [], [], [], [], [], [], []
        for done, query in enumerate(questions, start=1):
            started = time.perf_counter()
            answer = answerer.ask(query.text, tenant=self.tenant)
            took.append((time.perf_counter() - started) * 1000)
            record = self._score_answer(query, answer)
            found.append(float(answer.found))
            if query.answers:
                em.append(record["exact_match"])
                f1.append(record["f1"])
                contains.append(record["contains_answer"])
            if record["citation_precision"] is not None:
                precision.append(record["citation_precision"])
            if query.multi_hop and query.supporting_docs:
                supporting.append(float(record["all_supporting_retrieved"]))
            if per_query is not None:
                per_query.append(
                    {"query_id": query.id, "mode": "qa", "ms": round(took[-1], 1), **record}
                )
            if progress is not None:
                progress("qa", done, len(questions))
        return QAScores(
            questions=len(questions),
            found=metrics.mean(found),
            answered=len(em),
            exact_match=metrics.mean(em),
            f1=metrics.mean(f1),
            contains=metrics.mean(contains),
            cited=len(precision),
            citation_precision=metrics.mean(precision),
            multi_hop=len(supporting),
            supporting_retrieved=metrics.mean(supporting),
            latency_mean_ms=metrics.mean(took),
            latency_p95_ms=metrics.percentile(took, 0.95),
        )

    def _score_answer(self, query: EvalQuery, answer: Answer) -> dict[str, Any]:
        text = _CITATION_MARK.sub("", answer.text) if answer.found else ""
        chunks = {hit.chunk_id: hit.text for hit in answer.hits}
        cited = [chunks.get(c.chunk_id, c.quote) for c in answer.citations]
        precision = metrics.citation_precision(cited, query.evidence) if query.evidence else None
        retrieved = {self.dataset.corpus.doc_of(hit) for hit in answer.hits}
        missing = [d for d in query.supporting_docs if d not in retrieved]
        return {
            "question": query.text,
            "answer": text,
            "found": answer.found,
            "exact_match": metrics.exact_match(text, query.answers) if query.answers else None,
            "f1": metrics.token_f1(text, query.answers) if query.answers else None,
            "contains_answer": (
                metrics.contains_answer(text, query.answers) if query.answers else None
            ),
            "citation_precision": precision,
            "all_supporting_retrieved": not missing,
            "missing_supporting_docs": missing,
            "rounds": answer.rounds,
        }

    def run(
        self,
        modes: Sequence[str] = DEFAULT_MODES,
        *,
        limit: int | None = None,
        qa: bool = True,
        progress: Progress | None = None,
        ingest_progress: ProgressCallback | None = None,
        details: bool = False,
    ) -> EvalReport:
        """Ingest, then score retrieval (and answers); ``limit`` spreads N queries evenly."""
        started = time.perf_counter()
        summary = self.ingest(ingest_progress)
        judged = self.dataset.judged()
        chosen = spread(judged, limit)
        per_query: list[dict[str, Any]] | None = [] if details else None
        report = EvalReport(
            dataset=self.dataset.name,
            description=self.dataset.description,
            tenant=self.tenant,
            documents=self.dataset.corpus.size,
            queries=len(self.dataset.queries),
            judged=len(judged),
            evaluated=len(chosen),
            k=self.k,
            deep=self.deep,
            entities=self.entity_count(),
            ingest=summary,
            weights=self.retriever.weights.as_dict(),
        )
        report.modes = self.retrieval(modes, chosen, progress, per_query)
        if qa:
            report.qa = self.qa(
                spread([q for q in self.dataset.queries if q.has_qa], limit), progress, per_query
            )
        report.per_query = per_query or []
        report.seconds = time.perf_counter() - started
        return report
