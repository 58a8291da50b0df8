"""Shared measuring helpers for the slot benchmarks.

Each benchmark times Janus and the raw client doing the same work in the
same run, so the printed ratio is meaningful on any machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BenchRow:
    """One measured path: Janus vs. the raw client, operations per second."""

    slot: str
    backend: str
    operation: str
    batch: int
    janus_ops_s: float
    raw_ops_s: float

    @property
    def ratio(self) -> float:
        return self.janus_ops_s / self.raw_ops_s if self.raw_ops_s else float("nan")


def ops_per_second(work: Callable[[], object], operations: int, *, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``work`` (which performs ``operations`` operations)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return operations / best if best > 0 else float("inf")
