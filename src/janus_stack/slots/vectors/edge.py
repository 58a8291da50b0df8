"""The embedded vectors backend: Qdrant Edge (``qdrant+edge:///abs/path``).

The shard of collection ``C`` lives in ``<path>/C``. Facts this module
relies on (measured on qdrant-edge-py 0.9, see PROBES.md):

* **Durability.** The shard keeps a write-ahead log: once ``update()``
  returns, the operation is in the WAL and survives a killed process (a
  ``kill -9`` right after an upsert loses nothing on reload). ``flush()``
  forces the segments to disk and lets the WAL be truncated; like the Qdrant
  server (``flush_interval_sec`` 5 s) we flush when ``flush_interval``
  seconds have passed since the last flush at the next write, and on close.
  That bounds both the WAL replay time after a crash and what a power loss
  (rather than a killed process) could take.
* **One process per folder.** The WAL is locked; a second ``load`` (in this
  or another process) fails with ``WouldBlock``, which we turn into a
  ``SlotUnavailableError`` naming the folder.
* **No background optimizer.** Segments change only when ``optimize()`` is
  called. The shard is created with HNSW indexing disabled
  (``indexing_threshold=0``) and searched exactly: on 384-d data HNSW recall
  was poor even at ``ef=512`` while a filtered exact scan over one tenant
  stays sub-millisecond per 10k points; ``compact()`` runs the optimizer
  only to vacuum deleted points and merge segments.
* **Dimension check.** ``load`` is given the expected vector parameters and
  refuses incompatible segments; we report that as a model change.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeOptimizersConfig,
    EdgeShard,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    HasIdCondition,
    KeywordIndexParams,
    MatchAny,
    MatchValue,
    PayloadSchemaType,
    Point,
    Query,
    QueryRequest,
    RangeFloat,
    ScrollRequest,
    SearchParams,
    UpdateOperation,
)

from janus_stack.errors import SlotUnavailableError
from janus_stack.slots.vectors import VectorIndex
from janus_stack.slots.vectors.types import VectorFilter, VectorHit
from janus_stack.urls import SlotURL

_CONFIG_FILE = "edge_config.json"
_EXACT = SearchParams(exact=True)


class QdrantEdgeVectors(VectorIndex):
    """Vectors in a Qdrant Edge shard inside this process."""

    backend: ClassVar[str] = "qdrant-edge"
    embedded: ClassVar[bool] = True
    single_writer: ClassVar[bool] = True
    hint: ClassVar[str] = (
        "check that the folder is writable and that no other janus process uses it"
    )
    flush_interval: ClassVar[float] = 5.0

    def __init__(self, url: SlotURL, *, dim: int = 384) -> None:
        super().__init__(url, dim=dim)
        self.path: Path = url.path / self.collection
        self._shard: Any = None
        self._flushed_at = 0.0

    def _open(self) -> None:
        vectors = EdgeVectorParams(size=self.dim, distance=Distance.Cosine)
        try:
            if (self.path / _CONFIG_FILE).exists():
                shard = EdgeShard.load(str(self.path), EdgeConfig(vectors=vectors))
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                config = EdgeConfig(
                    vectors=vectors, optimizers=EdgeOptimizersConfig(indexing_threshold=0)
                )
                shard = EdgeShard.create(str(self.path), config)
        except Exception as exc:
            raise self._open_error(exc) from exc
        try:
            existing = shard.info().payload_schema
            if "tenant" not in existing:
                shard.update(
                    UpdateOperation.create_field_index("tenant", KeywordIndexParams(is_tenant=True))
                )
            for name in self.indexed_fields:
                if name != "tenant" and name not in existing:
                    shard.update(
                        UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword)
                    )
        except Exception:
            shard.close()
            raise
        self._shard = shard
        self._flushed_at = time.monotonic()

    def _open_error(self, exc: Exception) -> Exception:
        text = str(exc)
        if "WouldBlock" in text:
            return SlotUnavailableError(
                f"vectors slot: the Qdrant Edge folder {self.path} is in use by another "
                "process (or another open index in this one); Qdrant Edge allows one per folder",
                hint="stop the other janus process, or let it serve this command",
            )
        if "ncompatible" in text:
            return SlotUnavailableError(
                f"vectors slot: collection {self.collection!r} at {self.path} was created for "
                f"other vectors than the {self.dim}-d cosine vectors requested ({text.strip()})",
                hint="the embedding model changed: keep the old model, or point "
                "?collection= at a new collection and re-embed (janus repair)",
            )
        return exc

    def _close(self) -> None:
        shard, self._shard = self._shard, None
        try:
            shard.flush()
        finally:
            shard.close()

    # -- core -------------------------------------------------------------------

    def _upsert(
        self, ids: list[str], vectors: list[list[float]], payloads: list[dict[str, Any]]
    ) -> None:
        points = [Point(i, v, p) for i, v, p in zip(ids, vectors, payloads, strict=True)]
        self._shard.update(UpdateOperation.upsert_points(points))
        now = time.monotonic()
        if now - self._flushed_at >= self.flush_interval:
            self._shard.flush()
            self._flushed_at = now

    def _search(
        self,
        vector: list[float],
        flt: VectorFilter,
        limit: int,
        with_vectors: bool,
        with_payload: bool,
    ) -> list[VectorHit]:
        request = QueryRequest(
            query=Query.Nearest(vector),
            limit=limit,
            filter=_filter(flt),
            with_payload=with_payload,
            with_vector=with_vectors,
            params=_EXACT,
        )
        return [
            VectorHit(str(p.id), p.score, p.payload or {}, p.vector if with_vectors else None)
            for p in self._shard.query(request)
        ]

    def _scroll(
        self, flt: VectorFilter, limit: int, offset: str | None, with_vectors: bool
    ) -> tuple[list[VectorHit], str | None]:
        request = ScrollRequest(
            offset=offset,
            limit=limit,
            filter=_filter(flt),
            with_payload=True,
            with_vector=with_vectors,
        )
        records, next_offset = self._shard.scroll(request)
        hits = [
            VectorHit(str(r.id), 0.0, r.payload or {}, r.vector if with_vectors else None)
            for r in records
        ]
        return hits, None if next_offset is None else str(next_offset)

    def _count(self, flt: VectorFilter) -> int:
        count: int = self._shard.count(CountRequest(exact=True, filter=_filter(flt)))
        return count

    def _delete(self, flt: VectorFilter) -> None:
        self._shard.update(UpdateOperation.delete_points_by_filter(_filter(flt)))

    def compact(self) -> None:
        """Vacuum deleted points and merge segments (indexing stays off)."""
        self._require_open()
        self._shard.optimize()
        self._shard.flush()


def _filter(flt: VectorFilter) -> Filter:
    """Translate a checked ``VectorFilter``; the tenant condition is always first."""
    must: list[Any] = [FieldCondition(key="tenant", match=MatchValue(flt.tenant))]
    for key, value in flt.equals.items():
        match: MatchValue | MatchAny
        if isinstance(value, bool):
            # qdrant-edge-py 0.9 turns a Python bool into the integer 1/0 (which then
            # never matches a boolean payload); numpy's bool_ is extracted as a bool.
            match = MatchValue(cast(bool, numpy.bool_(value)))
        elif isinstance(value, str | int):
            match = MatchValue(value)
        else:
            match = MatchAny(cast(list[str] | list[int], list(value)))
        must.append(FieldCondition(key=key, match=match))
    for key, bounds in flt.ranges.items():
        bound = RangeFloat(gte=bounds.gte, gt=bounds.gt, lte=bounds.lte, lt=bounds.lt)
        must.append(FieldCondition(key=key, range=bound))
    if flt.ids is not None:
        must.append(HasIdCondition(set(flt.ids)))
    return Filter(must=must)
