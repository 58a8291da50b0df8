"""Fusing the modes' rankings into one: weighted CombSUM or reciprocal rank fusion.

``combsum`` (the default) adds up the modes' own scores after putting each
mode on one scale: min-max normalisation over the candidates that mode
returned for this query (its best → 1, its weakest → 0), so that

    ``fused(chunk) = Σ_mode weight[mode] · (score - min) / (max - min)``

over the modes that found the chunk (a mode with one candidate gives it 1).
``min`` is the mode's weakest candidate when it returned all it was asked
for, and zero when it returned fewer (it found nothing else: with two
matches, the second is not worth nothing).
Unlike rank fusion it keeps *how much* better a mode's first hit is than its
tenth: a keyword hit far ahead on a rare term, or a dense hit well clear of
the rest, stays ahead. Dense and keyword weigh the same: within 0.01
nDCG points of the best of the grid on half of fitz-gov's queries, and
checked on the other half (``python -m benchmarks.fusion``; CombSUM beat
every RRF setting there). None of z-score or distribution-based
normalisation, 10 to 100 candidates per mode, document-level fusion or
Rocchio feedback on the dense query beat this on the held-out half
(``benchmarks/fusion_variants.py``); a dense weight predicted per query
from its features, and a logistic regression over each candidate's
scores, ranks and length (both fit on the other half) gained 0.2 and 0.7
points. What helps is re-ranking the fused top candidates by late
interaction (``rerank`` weight, :mod:`janus_stack.retrieve.rerank`: +2.0
points), and the keyword ranking itself: BM25 with ``k1 = 0.6, b = 0.3``
instead of FTS5's fixed 1.2 and 0.75 lifts hybrid search by 1.3 points there.
Graph weighs the same too, knowingly: on the Wikipedia multi-hop set
hybrid search then finds every supporting article (18 of 20 questions at
weight 0.5), whereas on fitz-gov ingested with entities (no multi-hop
questions; the chunks naming a query's entity often score alike) it
costs about 1.5 nDCG points, and nothing at 0.25.

``rrf`` is reciprocal rank fusion, ``Σ_mode weight[mode] / (rrf_k + rank)``
(ranks from 1; ``rrf_k = 60`` as in Cormack et al., 2009): no calibration at
all, only ranks. It is the safer choice when a mode's scores are erratic.

One rule applies to both: each mode's best hit is kept in the fused top
``k`` (when ``k`` leaves room for it), because the modes are complementary
— an exact rare term or a multi-hop path may be the only right answer —
and chunks several modes rank mediocre should not push all of them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from janus_stack.errors import InvalidInputError
from janus_stack.retrieve.types import SINGLE_MODES, Candidate, Mode

DEFAULT_RRF_K = 60
METHODS = ("combsum", "rrf")
_NUMBERS = ("dense", "keyword", "graph", "rrf_k", "rerank")


@dataclass(frozen=True)
class FusionWeights:
    """How hybrid search fuses: the method and how much each mode counts (0 skips it).

    ``rerank`` is the share of late-interaction re-ranking in the final
    order (:mod:`janus_stack.retrieve.rerank`): 0, the default, leaves the
    fused order as it is; 1 orders the fused top candidates by the re-ranker alone.
    """

    dense: float = 1.0
    keyword: float = 1.0
    graph: float = 1.0
    rrf_k: float = DEFAULT_RRF_K
    method: str = "combsum"
    rerank: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dense", "keyword", "graph"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidInputError(f"search: weight {name}={value!r} is not a number")
            if not math.isfinite(value) or not 0 <= value <= 100:
                raise InvalidInputError(f"search: weight {name}={value} must be from 0 to 100")
        if not any(self.of(mode) for mode in SINGLE_MODES):
            raise InvalidInputError("search: at least one mode needs a weight above 0")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int | float):
            raise InvalidInputError(f"search: rrf_k={self.rrf_k!r} is not a number")
        if not math.isfinite(self.rrf_k) or not 0 <= self.rrf_k <= 10_000:
            raise InvalidInputError(f"search: rrf_k={self.rrf_k} must be from 0 to 10000")
        if isinstance(self.rerank, bool) or not isinstance(self.rerank, int | float):
            raise InvalidInputError(f"search: rerank={self.rerank!r} is not a number")
        if not 0 <= self.rerank <= 1:
            raise InvalidInputError(f"search: rerank={self.rerank} must be from 0 to 1")
        if self.method not in METHODS:
            raise InvalidInputError(
                f"search: fusion method {self.method!r} is unknown; choose {' or '.join(METHODS)}"
            )

    @classmethod
    def parse(cls, given: Sequence[str], defaults: FusionWeights | None = None) -> FusionWeights:
        """From ``name=value`` strings (the CLI's ``--weight``); unnamed ones keep ``defaults``.

        Names: ``dense``, ``keyword``, ``graph``, ``rrf_k``, ``rerank``
        (numbers) and ``method`` (``combsum`` or ``rrf``).
        """
        numbers: dict[str, float] = {}
        method: str | None = None
        for item in given:
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            if sep and name == "method":
                method = value.strip().lower()
                continue
            if not sep or name not in _NUMBERS:
                raise InvalidInputError(
                    f"search: weight {item!r} must be written "
                    f"dense|keyword|graph|rrf_k|rerank=NUMBER or method={'|'.join(METHODS)}"
                )
            try:
                numbers[name] = float(value)
            except ValueError:
                raise InvalidInputError(f"search: weight {item!r} is not a number") from None
        base = defaults or cls()
        return cls(
            dense=numbers.get("dense", base.dense),
            keyword=numbers.get("keyword", base.keyword),
            graph=numbers.get("graph", base.graph),
            rrf_k=numbers.get("rrf_k", base.rrf_k),
            method=base.method if method is None else method,
            rerank=numbers.get("rerank", base.rerank),
        )

    def of(self, mode: Mode) -> float:
        value: float = getattr(self, mode.value)
        return value

    def as_dict(self) -> dict[str, float | str]:
        return {
            "dense": self.dense,
            "keyword": self.keyword,
            "graph": self.graph,
            "rrf_k": self.rrf_k,
            "method": self.method,
            "rerank": self.rerank,
        }


def fuse(
    rankings: Mapping[Mode, Sequence[Candidate]],
    weights: FusionWeights,
    k: int,
    depth: int | None = None,
) -> list[tuple[str, float]]:
    """The fused top ``k`` (chunk ID, fused score), best first.

    Args:
        rankings: each mode's candidates, best first, one per chunk.
        weights: the method and per-mode weights.
        k: how many to return.
        depth: how many candidates each mode was asked for. A mode that
            returned fewer found nothing else, so its floor is zero, not its
            weakest candidate (which may be nearly as good as its best).
    """
    fused: dict[str, float] = {}
    for mode, ranking in rankings.items():
        weight = weights.of(mode)
        if not weight or not ranking:
            continue
        if weights.method == "rrf":
            shares = [1.0 / (weights.rrf_k + rank) for rank in range(1, len(ranking) + 1)]
        else:
            full = depth is None or len(ranking) >= depth
            shares = _min_max([c.score for c in ranking], full)
        for candidate, share in zip(ranking, shares, strict=True):
            fused[candidate.chunk_id] = fused.get(candidate.chunk_id, 0.0) + weight * share
    order = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))
    top = keep_leaders(order[:k], rankings, weights, k, fused)
    return [(chunk_id, fused[chunk_id]) for chunk_id in top]


def _min_max(scores: Sequence[float], full: bool) -> list[float]:
    high, low = max(scores), min(scores) if full else min(0.0, *scores)
    if high - low <= 1e-12:
        return [1.0] * len(scores)
    return [(score - low) / (high - low) for score in scores]


def keep_leaders(
    top: list[str],
    rankings: Mapping[Mode, Sequence[Candidate]],
    weights: FusionWeights,
    k: int,
    fused: Mapping[str, float],
) -> list[str]:
    """``top`` with every weighted mode's first candidate in it, if ``k`` leaves room."""
    leaders = list(
        dict.fromkeys(
            ranking[0].chunk_id
            for mode, ranking in sorted(rankings.items(), key=lambda item: -weights.of(item[0]))
            if ranking and weights.of(mode)
        )
    )
    missing = [c for c in leaders if c not in top]
    if not missing or len(leaders) > k:
        return top
    keep = set(leaders)
    for chunk_id in missing:
        # Replace the weakest chunk that is not itself some mode's leader.
        for position in range(len(top) - 1, -1, -1):
            if top[position] not in keep:
                top[position] = chunk_id
                break
    return sorted(top, key=lambda chunk_id: (-fused[chunk_id], chunk_id))
