"""The vectors slot: chunk embeddings with payload filters.

Design (ARCHITECTURE.md §1-2):

* **One collection, tenants in the payload.** Every point lives in one
  collection (``janus_chunks``, or ``?collection=NAME`` in the URL) and
  carries a ``tenant`` payload field with a keyword index (Qdrant's
  ``is_tenant`` flavour), plus a keyword index on ``doc_id``. Every public
  operation takes a ``VectorFilter`` whose ``tenant`` is mandatory and always
  applied, so tenant isolation cannot be forgotten by a caller.
* **The dimension is part of the contract.** ``open(url, dim=384)`` states
  what the embedder produces; the distance is cosine. Opening a collection
  that holds another dimension fails (``SlotUnavailableError``) instead of
  mixing two models' vectors in one space.
* **A narrow core.** Backends implement five methods on checked input
  (``_upsert``, ``_search``, ``_scroll``, ``_count``, ``_delete``);
  validation, batching, ``retrieve``, ``iter_points``, ``delete_ids`` and the
  ``probe`` used by ``janus doctor`` are written once here.
* **Exact search by default.** PROBES.md measured HNSW recall on 384-d
  vectors far below 1 at default ``ef``; a filtered exact scan over one
  tenant costs well under a millisecond per 10k points, so search is exact
  unless a server URL asks for ``?hnsw_ef=N``.
* **Idempotent writes.** Points are keyed by ``ids.chunk_id``; upserting an
  id again replaces the point, so a re-run stage never duplicates.

Backends, chosen by URL scheme:

* ``qdrant+edge:///abs/path`` → ``QdrantEdgeVectors`` (embedded default,
  Qdrant Edge, one process per folder).
* ``http://host:6333`` / ``https://…`` with optional ``?api_key=…`` →
  ``QdrantVectors`` (a Qdrant server through qdrant-client).
* ``qdrant+local:///abs/path`` → ``QdrantLocalVectors``: ``QdrantVectors``
  over qdrant-client's local mode. It speaks the server client's API and is the tests' stand-in
  for a server; it is slow (filters in Python) and not meant for real data.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from janus_stack.errors import (
    IntegrityError,
    InvalidInputError,
    JanusError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots.base import Slot, load_backend
from janus_stack.slots.params import check_params
from janus_stack.slots.vectors.types import (
    MAX_LIMIT,
    Range,
    Scalar,
    VectorFilter,
    VectorHit,
    VectorPoint,
    check_filter,
    check_id,
    check_limit,
    check_points,
    check_vector,
)
from janus_stack.urls import SlotURL

__all__ = [
    "ACCEPTED_SCHEMES",
    "BACKENDS",
    "DEFAULT_COLLECTION",
    "DEFAULT_DIM",
    "Range",
    "Scalar",
    "VectorFilter",
    "VectorHit",
    "VectorIndex",
    "VectorPoint",
    "open",
]

DEFAULT_COLLECTION = "janus_chunks"
DEFAULT_DIM = 384
PROBE_TENANT = "_doctor"
"""Tenants starting with '_' are reserved for Janus (see ``ids.check_tenant``)."""

BACKENDS: dict[str, str] = {
    "qdrant+edge": "vectors.edge:QdrantEdgeVectors",
    "http": "vectors.qdrant:QdrantVectors",
    "https": "vectors.qdrant:QdrantVectors",
    "qdrant+local": "vectors.qdrant:QdrantLocalVectors",
}
ACCEPTED_SCHEMES: tuple[str, ...] = tuple(BACKENDS)

_COLLECTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MAX_DIM = 65_536


class VectorIndex(Slot):
    """Contract of the vectors slot. See the module docstring for the design.

    Args:
        url: the slot URL; ``?collection=`` overrides the collection name.
        dim: the dimension of every vector stored and searched.
    """

    slot: ClassVar[str] = "vectors"
    upsert_batch: ClassVar[int] = 256
    indexed_fields: ClassVar[tuple[str, ...]] = ("tenant", "doc_id")
    query_keys: ClassVar[frozenset[str]] = frozenset({"collection"})

    def __init__(self, url: SlotURL, *, dim: int = DEFAULT_DIM) -> None:
        super().__init__(url)
        if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= _MAX_DIM:
            raise InvalidInputError(f"vectors slot: dim must be an integer from 1 to {_MAX_DIM}")
        check_params(url, self.query_keys)
        collection = url.query.get("collection", DEFAULT_COLLECTION)
        if not _COLLECTION.fullmatch(collection):
            raise SlotURLError(
                f"vectors slot: collection name {collection!r} in {url.redacted!r} is invalid; "
                "use 1-64 letters, digits, '_' or '-'"
            )
        self.dim = dim
        self.collection = collection

    # -- the narrow core: checked input only ---------------------------------

    def _upsert(
        self, ids: list[str], vectors: list[list[float]], payloads: list[dict[str, Any]]
    ) -> None:
        """Write one batch (at most ``upsert_batch`` points), durably."""
        raise NotImplementedError

    def _search(
        self,
        vector: list[float],
        flt: VectorFilter,
        limit: int,
        with_vectors: bool,
        with_payload: bool,
    ) -> list[VectorHit]:
        raise NotImplementedError

    def _scroll(
        self, flt: VectorFilter, limit: int, offset: str | None, with_vectors: bool
    ) -> tuple[list[VectorHit], str | None]:
        raise NotImplementedError

    def _count(self, flt: VectorFilter) -> int:
        raise NotImplementedError

    def _delete(self, flt: VectorFilter) -> None:
        raise NotImplementedError

    # -- public API -----------------------------------------------------------

    def upsert(self, points: Sequence[VectorPoint]) -> int:
        """Insert or replace ``points``; returns how many were written.

        Every point is checked before anything is written, so bad input
        never leaves half a call behind.
        """
        self._require_open()
        if isinstance(points, VectorPoint) or not isinstance(points, Sequence):
            raise InvalidInputError("vectors.upsert: expected a sequence of VectorPoint")
        ids, vectors, payloads = check_points(points, self.dim)
        size = self.upsert_batch
        for start in range(0, len(ids), size):
            end = start + size
            self._upsert(ids[start:end], vectors[start:end], payloads[start:end])
        return len(ids)

    def search(
        self,
        vector: Sequence[float],
        filter: VectorFilter,
        limit: int = 10,
        with_vectors: bool = False,
        with_payload: bool = True,
    ) -> list[VectorHit]:
        """The ``limit`` points nearest to ``vector`` (cosine) among those ``filter`` admits.

        ``with_payload=False`` leaves each hit's payload empty: a caller that
        needs only IDs and scores (dense retrieval) saves reading it, a tenth
        of an exact search over 100k points.
        """
        self._require_open()
        query = check_vector(vector, self.dim, "vectors.search")
        flt = check_filter(filter, "vectors.search")
        check_limit(limit, "vectors.search")
        if flt.matches_nothing:
            return []
        return self._search(query, flt, limit, bool(with_vectors), bool(with_payload))

    def delete(self, filter: VectorFilter) -> None:
        """Delete every point ``filter`` admits (all of a tenant's points for a bare filter)."""
        self._require_open()
        flt = check_filter(filter, "vectors.delete")
        if not flt.matches_nothing:
            self._delete(flt)

    def delete_ids(self, tenant: str, ids: Sequence[str]) -> None:
        """Delete the points with these ids that belong to ``tenant``."""
        self.delete(VectorFilter(tenant=tenant, ids=ids))

    def count(self, filter: VectorFilter) -> int:
        """How many points ``filter`` admits (exact)."""
        self._require_open()
        flt = check_filter(filter, "vectors.count")
        return 0 if flt.matches_nothing else self._count(flt)

    def scroll(
        self,
        filter: VectorFilter,
        limit: int = 256,
        offset: str | None = None,
        with_vectors: bool = False,
    ) -> tuple[list[VectorHit], str | None]:
        """One page of points in id order and the offset of the next page (None at the end)."""
        self._require_open()
        flt = check_filter(filter, "vectors.scroll")
        check_limit(limit, "vectors.scroll")
        start = None if offset is None else check_id(offset, "vectors.scroll: offset")
        if flt.matches_nothing:
            return [], None
        return self._scroll(flt, limit, start, bool(with_vectors))

    def iter_points(
        self,
        filter: VectorFilter,
        *,
        batch: int = 256,
        with_vectors: bool = False,
    ) -> Iterator[VectorHit]:
        """Every point ``filter`` admits, fetched page by page."""
        offset: str | None = None
        while True:
            page, offset = self.scroll(filter, batch, offset, with_vectors)
            yield from page
            if offset is None:
                return

    def retrieve(
        self, tenant: str, ids: Sequence[str], *, with_vectors: bool = False
    ) -> list[VectorHit]:
        """The points of ``tenant`` with these ids, in the order asked; missing ids are skipped."""
        self._require_open()
        flt = check_filter(VectorFilter(tenant=tenant, ids=ids), "vectors.retrieve")
        wanted = list(flt.ids or ())
        found: dict[str, VectorHit] = {}
        for start in range(0, len(wanted), MAX_LIMIT):
            part = wanted[start : start + MAX_LIMIT]
            page, _ = self._scroll(
                VectorFilter(tenant=flt.tenant, ids=part), len(part), None, with_vectors
            )
            found.update((hit.id, hit) for hit in page)
        return [found[i] for i in wanted if i in found]

    def compact(self) -> None:
        """Reclaim space left by deletes; a no-op where the engine does it by itself."""
        self._require_open()

    def probe(self) -> None:
        """Round-trip one point under the reserved tenant and compare; for ``janus doctor``.

        Raises:
            IntegrityError: the index returned something other than what was written.
        """
        self._require_open()
        point_id = str(uuid.uuid4())
        vector = [float((i * 7) % 11) - 4.5 for i in range(self.dim)]
        payload: dict[str, Any] = {"tenant": PROBE_TENANT, "doc_id": "probe", "n": 1}
        only = VectorFilter(tenant=PROBE_TENANT, ids=[point_id])
        where = f"vectors slot ({self.backend} at {self.url.redacted}) probe"
        try:
            self._probe_round_trip(point_id, vector, payload, only, where)
        except JanusError:
            raise
        except Exception as exc:  # an engine failure: report it, do not crash the doctor
            raise SlotUnavailableError(
                f"{where}: {type(exc).__name__}: {exc}", hint=self.hint
            ) from exc

    def _probe_round_trip(
        self,
        point_id: str,
        vector: list[float],
        payload: dict[str, Any],
        only: VectorFilter,
        where: str,
    ) -> None:
        try:
            self._upsert([point_id], [vector], [payload])
            hits = self._search(vector, only, 1, True, True)
            if not hits or hits[0].id != point_id:
                raise IntegrityError(f"{where}: search did not find the point just written")
            if hits[0].score < 0.999 or not _same_direction(vector, hits[0].vector):
                raise IntegrityError(f"{where}: the stored vector differs from the one written")
            records, _ = self._scroll(only, 1, None, False)
            if len(records) != 1 or records[0].payload != payload:
                raise IntegrityError(f"{where}: the stored payload differs from the one written")
        finally:
            self._delete(only)
        if self._count(only) != 0:
            raise IntegrityError(f"{where}: the probe point survived its delete")


def _same_direction(a: list[float], b: list[float] | None) -> bool:
    """Compare up to normalisation: cosine collections store unit vectors."""
    if b is None or len(a) != len(b):
        return False
    norm = math.hypot(*a)
    return all(abs(x / norm - y) < 1e-4 for x, y in zip(a, b, strict=True))


def open(url: SlotURL, *, dim: int = DEFAULT_DIM) -> VectorIndex:
    """The backend for ``url``'s scheme, constructed but not yet opened.

    Call ``.open()`` or use it as a context manager; that is where it touches
    the disk or the network and where failures are reported.
    """
    return load_backend(url, BACKENDS, VectorIndex, dim=dim)
