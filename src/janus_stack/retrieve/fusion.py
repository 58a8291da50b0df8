"""Reciprocal rank fusion of the modes' rankings.

``fused(chunk) = Σ_mode weight[mode] / (rrf_k + rank_mode(chunk))`` over the
modes that found the chunk (ranks from 1). RRF needs no score calibration —
cosine, BM25 and graph evidence live on unrelated scales — and ``rrf_k = 60``
is the constant of Cormack et al. (2009), which damps the difference between
neighbouring ranks so that agreement between modes outweighs one mode's
enthusiasm.

One rule is added: each mode's best hit is kept in the fused top ``k``
(when ``k`` leaves room for it), because the modes are complementary — an
exact rare term or a multi-hop path may be the only right answer — and a
chunk several modes rank mediocre should not push all of them out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from janus_stack.errors import InvalidInputError
from janus_stack.retrieve.types import SINGLE_MODES, Mode

DEFAULT_RRF_K = 60


@dataclass(frozen=True)
class FusionWeights:
    """How much each mode counts in hybrid search; a weight of 0 skips the mode."""

    dense: float = 1.0
    keyword: float = 1.0
    graph: float = 1.0
    rrf_k: float = DEFAULT_RRF_K

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

    @classmethod
    def parse(cls, given: Sequence[str]) -> FusionWeights:
        """From ``mode=weight`` strings (the CLI's ``--weight``); unnamed modes keep 1.0."""
        values: dict[str, float] = {}
        for item in given:
            name, sep, number = item.partition("=")
            name = name.strip().lower()
            if not sep or name not in ("dense", "keyword", "graph", "rrf_k"):
                raise InvalidInputError(
                    f"search: weight {item!r} must be written dense|keyword|graph|rrf_k=NUMBER"
                )
            try:
                values[name] = float(number)
            except ValueError:
                raise InvalidInputError(f"search: weight {item!r} is not a number") from None
        return cls(**values)

    def of(self, mode: Mode) -> float:
        value: float = getattr(self, mode.value)
        return value

    def as_dict(self) -> dict[str, float]:
        return {
            "dense": self.dense,
            "keyword": self.keyword,
            "graph": self.graph,
            "rrf_k": self.rrf_k,
        }


def fuse(
    rankings: Mapping[Mode, Sequence[str]], weights: FusionWeights, k: int
) -> list[tuple[str, float]]:
    """The fused top ``k`` (chunk ID, fused score), best first.

    Args:
        rankings: each mode's chunk IDs, best first, without repeats.
        weights: per-mode weights and the RRF constant.
        k: how many to return.
    """
    fused: dict[str, float] = {}
    for mode, ranking in rankings.items():
        weight = weights.of(mode)
        if not weight:
            continue
        for rank, chunk_id in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight / (weights.rrf_k + rank)
    order = sorted(fused, key=lambda chunk_id: (-fused[chunk_id], chunk_id))
    top = order[:k]
    leaders = [
        ranking[0]
        for mode, ranking in sorted(rankings.items(), key=lambda item: -weights.of(item[0]))
        if ranking and weights.of(mode)
    ]
    missing = [c for c in dict.fromkeys(leaders) if c not in top]
    if missing and len(dict.fromkeys(leaders)) <= k:
        keep = set(leaders)
        for chunk_id in missing:
            # Replace the weakest chunk that is not itself some mode's leader.
            for position in range(len(top) - 1, -1, -1):
                if top[position] not in keep:
                    top[position] = chunk_id
                    break
        top.sort(key=lambda chunk_id: (-fused[chunk_id], chunk_id))
    return [(chunk_id, fused[chunk_id]) for chunk_id in top]
