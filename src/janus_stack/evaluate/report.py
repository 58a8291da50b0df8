"""What an evaluation run reports, and the stable JSON keys it reports them under.

The report is data the CLI prints (``janus eval --json``) and benchmarks
compare across runs, so its shape lives apart from the runner that fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModeScores:
    """One mode's retrieval scores, averaged over the judged queries run."""

    mode: str
    queries: int = 0
    ndcg: float | None = None
    recall: float | None = None
    recall_deep: float | None = None
    mrr: float | None = None
    latency_mean_ms: float | None = None
    latency_p95_ms: float | None = None
    note: str = ""

    def as_dict(self, deep: int) -> dict[str, Any]:
        """Stable keys: ``ndcg``, ``recall``, ``mrr`` at ``k``; ``recall_deep`` at ``deep``."""
        return {
            "mode": self.mode,
            "queries": self.queries,
            "ndcg": _round(self.ndcg),
            "recall": _round(self.recall),
            "recall_deep": _round(self.recall_deep) if deep else None,
            "mrr": _round(self.mrr),
            "latency_mean_ms": _round(self.latency_mean_ms, 1),
            "latency_p95_ms": _round(self.latency_p95_ms, 1),
            "note": self.note or None,
        }


@dataclass
class QAScores:
    """Answer quality over the questions that have answers, evidence or supporting docs."""

    questions: int = 0
    found: float | None = None
    answered: int = 0
    exact_match: float | None = None
    f1: float | None = None
    contains: float | None = None
    cited: int = 0
    citation_precision: float | None = None
    multi_hop: int = 0
    supporting_retrieved: float | None = None
    latency_mean_ms: float | None = None
    latency_p95_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "found": _round(self.found),
            "with_answers": self.answered,
            "exact_match": _round(self.exact_match),
            "f1": _round(self.f1),
            "contains_answer": _round(self.contains),
            "with_citations": self.cited,
            "citation_precision": _round(self.citation_precision),
            "multi_hop": self.multi_hop,
            "multi_hop_all_supporting_retrieved": _round(self.supporting_retrieved),
            "latency_mean_ms": _round(self.latency_mean_ms, 1),
            "latency_p95_ms": _round(self.latency_p95_ms, 1),
        }


@dataclass
class EvalReport:
    dataset: str
    description: str
    tenant: str
    documents: int
    queries: int
    judged: int
    evaluated: int
    k: int
    deep: int
    entities: int
    ingest: dict[str, Any]
    weights: dict[str, float | str] = field(default_factory=dict)
    modes: list[ModeScores] = field(default_factory=list)
    qa: QAScores | None = None
    per_query: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self, details: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "description": self.description,
            "tenant": self.tenant,
            "documents": self.documents,
            "entities_in_tenant": self.entities,
            "queries": {"total": self.queries, "judged": self.judged, "run": self.evaluated},
            "k": self.k,
            "deep": self.deep,
            "weights": self.weights,
            "ingest": self.ingest,
            "retrieval": [m.as_dict(self.deep) for m in self.modes],
            "qa": self.qa.as_dict() if self.qa else None,
            "seconds": round(self.seconds, 1),
        }
        if details:
            data["per_query"] = self.per_query
        return data


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)
