"""Vectors slot: Janus vs. the raw client for batched upserts and tenant-filtered top-10 search.

Both sides do identical engine work in the same run: the same points in
batches of 256, the same exact search with the same tenant filter and
payloads returned. The raw side builds its requests directly
(``qdrant_edge`` objects; qdrant-client ``Batch``/``Filter`` models), so the
ratio prices what Janus adds: input checks (dimension, finite values, UUIDs,
tenant, JSON payloads), filter translation and the conversion of results to
``VectorHit``. Both sides read each hit's id, score and payload: results that
are never read do not happen in practice, and reading them from the Edge
bindings is a large share of a query's cost.

Backends: Qdrant Edge (embedded default); the server adapter over
qdrant-client's in-memory local mode (its Python engine is slow, so fewer
points); a real Qdrant server when ``JANUS_TEST_QDRANT_URL`` is set.

Run: ``python -m benchmarks.slot_vectors [--cpu]``; ``--cpu`` times by process
CPU time instead of the wall clock, for machines shared with other busy processes.
"""

from __future__ import annotations

import os
import pathlib
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.slots import vectors
from janus_stack.slots.vectors.qdrant import QdrantVectors
from janus_stack.urls import SlotURL

DIM = 384
BATCH = 256
TENANTS = 10
SERVER_ENV = "JANUS_TEST_QDRANT_URL"


class Data:
    """Points and queries shared by both sides; built once, outside the timings."""

    def __init__(self, count: int, queries: int, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.ids = [str(uuid.UUID(int=int(x))) for x in rng.integers(1, 2**62, size=count)]
        self.vectors: list[list[float]] = rng.standard_normal((count, DIM)).tolist()
        self.payloads: list[dict[str, Any]] = [
            {"tenant": f"t{i % TENANTS}", "doc_id": f"doc{i // 8}", "ordinal": i % 8}
            for i in range(count)
        ]
        self.points = [
            vectors.VectorPoint(i, v, p)
            for i, v, p in zip(self.ids, self.vectors, self.payloads, strict=True)
        ]
        self.queries: list[list[float]] = rng.standard_normal((queries, DIM)).tolist()

    def batches(self) -> range:
        return range(0, len(self.ids), BATCH)


def _janus_work(index: vectors.VectorIndex, data: Data) -> tuple[Callable[[], object], ...]:
    def upsert() -> None:
        index.upsert(data.points)

    def search() -> None:
        for k, query in enumerate(data.queries):
            index.search(query, vectors.VectorFilter(f"t{k % TENANTS}"), limit=10)

    return upsert, search


def _rows(
    backend: str,
    data: Data,
    janus: tuple[Callable[[], object], ...],
    raw: tuple[Callable[[], object], ...],
    cpu: bool,
    rounds: int = 7,
) -> list[BenchRow]:
    """Best of ``rounds`` for each side, the sides alternating (and swapping who goes
    first) so that load from other processes and the engine's own state (first
    insert vs. later overwrites, background write-back) hit both alike."""
    rows = []
    for operation, batch, amount, j, r in (
        ("upsert points", BATCH, len(data.ids), janus[0], raw[0]),
        ("search top-10, tenant filter", 1, len(data.queries), janus[1], raw[1]),
    ):
        best = {"janus": 0.0, "raw": 0.0}
        for round_ in range(rounds):
            order = (("raw", r), ("janus", j)) if round_ % 2 == 0 else (("janus", j), ("raw", r))
            for side, work in order:
                best[side] = max(best[side], _measure(work, amount, cpu))
        rows.append(BenchRow("vectors", backend, operation, batch, best["janus"], best["raw"]))
    return rows


def _measure(work: Callable[[], object], amount: int, cpu: bool) -> float:
    """Operations/s by the wall clock, or by this process's CPU time (all threads).

    CPU time keeps the ratio meaningful on a machine shared with other busy
    processes, at the price of leaving out time spent waiting for the disk.
    """
    if not cpu:
        return ops_per_second(work, amount, repeat=1)
    start = time.process_time()
    work()
    spent = time.process_time() - start
    return amount / spent if spent > 0 else float("inf")


def _edge_rows(workdir: pathlib.Path, data: Data, cpu: bool) -> list[BenchRow]:
    url = SlotURL.parse("vectors", f"qdrant+edge://{workdir}/janus-edge")
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
    )
    raw_path = workdir / "raw-edge"
    raw_path.mkdir()
    shard = qe.EdgeShard.create(str(raw_path), config)
    shard.update(
        qe.UpdateOperation.create_field_index("tenant", qe.KeywordIndexParams(is_tenant=True))
    )
    shard.update(qe.UpdateOperation.create_field_index("doc_id", qe.PayloadSchemaType.Keyword))
    exact = qe.SearchParams(exact=True)

    def raw_upsert() -> None:
        for start in data.batches():
            end = start + BATCH
            points = [
                qe.Point(i, v, p)
                for i, v, p in zip(
                    data.ids[start:end],
                    data.vectors[start:end],
                    data.payloads[start:end],
                    strict=True,
                )
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))

    def raw_search() -> None:
        for k, query in enumerate(data.queries):
            tenant = qe.FieldCondition(key="tenant", match=qe.MatchValue(f"t{k % TENANTS}"))
            hits = shard.query(
                qe.QueryRequest(
                    query=qe.Query.Nearest(query),
                    limit=10,
                    filter=qe.Filter(must=[tenant]),
                    with_payload=True,
                    with_vector=False,
                    params=exact,
                )
            )
            for hit in hits:  # read what a caller reads, as Janus does
                _ = (hit.id, hit.score, hit.payload)

    try:
        with vectors.open(url, dim=DIM) as index:
            janus = _janus_work(index, data)
            return _rows("qdrant-edge", data, janus, (raw_upsert, raw_search), cpu)
    finally:
        shard.close()


def _client_rows(
    backend: str, base_url: str, make_client: Callable[[], QdrantClient], data: Data, cpu: bool
) -> list[BenchRow]:
    """The server adapter vs. qdrant-client called directly, each with its own collection."""
    collection = f"bench_{uuid.uuid4().hex[:10]}"
    raw_collection = f"{collection}_raw"
    janus_client, raw_client = make_client(), make_client()
    raw_client.create_collection(
        raw_collection,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
    )
    raw_client.create_payload_index(
        raw_collection,
        "tenant",
        models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
    )
    raw_client.create_payload_index(raw_collection, "doc_id", models.PayloadSchemaType.KEYWORD)
    exact = models.SearchParams(exact=True)

    def raw_upsert() -> None:
        for start in data.batches():
            end = start + BATCH
            batch = models.Batch(
                ids=data.ids[start:end],  # type: ignore[arg-type]
                vectors=data.vectors[start:end],
                payloads=data.payloads[start:end],
            )
            raw_client.upsert(raw_collection, points=batch, wait=True)

    def raw_search() -> None:
        for k, query in enumerate(data.queries):
            tenant = models.FieldCondition(
                key="tenant", match=models.MatchValue(value=f"t{k % TENANTS}")
            )
            response = raw_client.query_points(
                raw_collection,
                query=query,
                query_filter=models.Filter(must=[tenant]),
                search_params=exact,
                limit=10,
                with_payload=True,
                with_vectors=False,
            )
            for hit in response.points:
                _ = (hit.id, hit.score, hit.payload)

    url = SlotURL.parse("vectors", f"{base_url}?collection={collection}")
    try:
        with QdrantVectors(url, dim=DIM, client=janus_client) as index:
            return _rows(backend, data, _janus_work(index, data), (raw_upsert, raw_search), cpu)
    finally:
        for client, name in ((janus_client, collection), (raw_client, raw_collection)):
            client.delete_collection(name)
            client.close()


def run(workdir: pathlib.Path, *, cpu: bool = False) -> list[BenchRow]:
    rows = _edge_rows(workdir, Data(10_000, 500), cpu)
    with warnings.catch_warnings():  # local mode warns that indexes and ef do nothing there
        warnings.filterwarnings("ignore", "Payload indexes have no effect", UserWarning)
        warnings.filterwarnings("ignore", "Local mode performs exact", UserWarning)
        rows += _client_rows(
            "qdrant-client local (server adapter)",
            "http://in-memory.invalid",  # names the client in messages only; it is handed in
            lambda: QdrantClient(location=":memory:"),
            Data(2_000, 20),
            cpu,
        )
    server = os.environ.get(SERVER_ENV)
    if server:
        rows += _client_rows(
            "qdrant server", server, lambda: QdrantClient(url=server), Data(10_000, 200), cpu
        )
    return rows


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="janus-bench-vectors-") as tmp:
        for row in run(pathlib.Path(tmp), cpu="--cpu" in sys.argv[1:]):
            print(
                f"{row.backend:40} {row.operation:30} batch={row.batch:<4} "
                f"janus={row.janus_ops_s:>10,.0f}/s raw={row.raw_ops_s:>10,.0f}/s "
                f"ratio={row.ratio:.2f}"
            )
