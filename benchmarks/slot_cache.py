"""Cache slot: Janus vs. the bare way, for set+get of 1 KB values and rate-limit takes.

The bare baselines do the same work with nothing around it: a dict behind a
lock (and a hand-written token bucket) for ``memory://``; redis-py ``SET``/
``GET`` and the very same Lua script called directly for ``redis://``. The
ratio therefore prices exactly what Janus adds: validation, the open check,
key prefixing, LRU bookkeeping and error translation.

Run: ``python -m benchmarks.slot_cache [redis-url]``.
"""

from __future__ import annotations

import os
import pathlib
import sys
import threading
import time
import uuid
from collections.abc import Callable

import redis

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.slots import cache as cache_slot
from janus_stack.slots.cache.redis import load_script
from janus_stack.urls import SlotURL

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
N = 5_000
VALUE = os.urandom(1024)
ROUNDS = 7
RATE, BURST = 1e9, 10**9  # never refuses, so both sides do the same work every call


def _pair(janus: Callable[[], None], raw: Callable[[], None], ops: int) -> tuple[float, float]:
    """Best ops/s of each, alternating runs so both see the same machine load."""
    best_janus = best_raw = 0.0
    for _ in range(ROUNDS):
        best_janus = max(best_janus, ops_per_second(janus, ops, repeat=1))
        best_raw = max(best_raw, ops_per_second(raw, ops, repeat=1))
    return best_janus, best_raw


def _memory_rows() -> list[BenchRow]:
    keys = [f"key-{i}" for i in range(N)]
    rows: list[BenchRow] = []
    with cache_slot.open(SlotURL.parse("cache", "memory://")) as janus:

        def janus_set_get() -> None:
            for key in keys:
                janus.set(key, VALUE)
            for key in keys:
                janus.get(key)

        def janus_take() -> None:
            for _ in range(N):
                janus.take("bench", rate=RATE, burst=BURST)

        lock = threading.Lock()
        table: dict[str, bytes] = {}

        def raw_set_get() -> None:
            for key in keys:
                with lock:
                    table[key] = VALUE
            for key in keys:
                with lock:
                    table.get(key)

        buckets: dict[str, tuple[float, float]] = {}

        def raw_take() -> None:
            for _ in range(N):
                with lock:
                    now = time.monotonic()
                    tokens, stamp = buckets.get("bench", (float(BURST), now))
                    tokens = min(float(BURST), tokens + (now - stamp) * RATE)
                    if tokens >= 1:
                        tokens -= 1
                    buckets["bench"] = (tokens, now)

        rows.append(
            BenchRow(
                "cache",
                "memory",
                "set+get 1 KB",
                1,
                *_pair(janus_set_get, raw_set_get, 2 * N),
            )
        )
        rows.append(
            BenchRow(
                "cache",
                "memory",
                "take",
                1,
                *_pair(janus_take, raw_take, N),
            )
        )
    return rows


def _redis_rows(redis_url: str) -> list[BenchRow]:
    prefix = f"janus_bench_{uuid.uuid4().hex[:8]}"
    keys = [f"key-{i}" for i in range(N)]
    raw = redis.Redis.from_url(redis_url)
    raw_take_script = raw.register_script(load_script("take"))
    url = SlotURL.parse("cache", f"{redis_url}?prefix={prefix}")
    try:
        with cache_slot.open(url) as janus:

            def janus_set_get() -> None:
                for key in keys:
                    janus.set(key, VALUE)
                for key in keys:
                    janus.get(key)

            def janus_take() -> None:
                for _ in range(N):
                    janus.take("bench", rate=RATE, burst=BURST)

            def raw_set_get() -> None:
                for key in keys:
                    raw.set(f"{prefix}:raw:{key}", VALUE)
                for key in keys:
                    raw.get(f"{prefix}:raw:{key}")

            def raw_take() -> None:
                for _ in range(N):
                    raw_take_script(keys=[f"{prefix}:raw:bench"], args=[RATE, BURST, 1])

            rows = [
                BenchRow(
                    "cache",
                    "redis",
                    "set+get 1 KB",
                    1,
                    *_pair(janus_set_get, raw_set_get, 2 * N),
                ),
                BenchRow(
                    "cache",
                    "redis",
                    "take",
                    1,
                    *_pair(janus_take, raw_take, N),
                ),
            ]
    finally:
        stale = list(raw.scan_iter(match=f"{prefix}:*", count=1000))
        if stale:
            raw.delete(*stale)
        raw.close()
    return rows


def run(workdir: pathlib.Path, *, redis_url: str = DEFAULT_REDIS_URL) -> list[BenchRow]:
    """Measure both backends; ``workdir`` is unused (neither backend keeps files)."""
    del workdir
    return _memory_rows() + _redis_rows(redis_url)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        results = run(
            pathlib.Path(tmp), redis_url=sys.argv[1] if len(sys.argv) > 1 else DEFAULT_REDIS_URL
        )
    print(f"{'backend':8} {'operation':14} {'janus ops/s':>12} {'raw ops/s':>12} {'ratio':>6}")
    for row in results:
        print(
            f"{row.backend:8} {row.operation:14} {row.janus_ops_s:12,.0f} "
            f"{row.raw_ops_s:12,.0f} {row.ratio:6.2f}"
        )
