"""The server vectors backend: a Qdrant server through qdrant-client.

URLs: ``http://host:6333`` or ``https://host:6333``, with optional
``?api_key=…`` (write it as ``env:NAME`` / ``file:/path`` to keep it out of
the config), ``?collection=…``, ``?timeout=SECONDS`` and ``?hnsw_ef=N``.
Search is exact unless ``hnsw_ef`` asks for approximate HNSW search with that
beam width — worth it only for collections far larger than one machine's
embedded use; see the vectors slot docstring for why exact is the default.

``qdrant+local:///abs/path`` (``QdrantLocalVectors``) runs this class over
qdrant-client's local mode (``QdrantClient(path=…)``), which implements the server client's API in
Python. It is the tests' stand-in for a server, so every call this adapter
makes to a server is exercised without one; it is slow and single-process
and is not meant for real data. A caller may also hand in a constructed
``QdrantClient`` (``client=``), which this class then uses but never closes.

The collection and its payload indexes are created on ``open()`` when
missing; concurrent first opens from several workers are harmless because
creation re-checks existence on conflict. Writes use ``wait=True`` so an
acknowledged upsert or delete is applied and durable on the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, cast

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from janus_stack.errors import SlotUnavailableError, SlotURLError
from janus_stack.slots.vectors import VectorIndex
from janus_stack.slots.vectors.types import VectorFilter, VectorHit
from janus_stack.urls import SlotURL

_EXACT = models.SearchParams(exact=True)


class QdrantVectors(VectorIndex):
    """Vectors in a Qdrant collection reached through qdrant-client."""

    backend: ClassVar[str] = "qdrant"
    query_keys: ClassVar[frozenset[str]] = frozenset(
        {"collection", "api_key", "timeout", "hnsw_ef"}
    )

    def __init__(self, url: SlotURL, *, dim: int = 384, client: QdrantClient | None = None) -> None:
        super().__init__(url, dim=dim)
        query = url.query
        self._api_key = query.get("api_key") or None
        self._timeout = _positive_int(url, query, "timeout")
        ef = _positive_int(url, query, "hnsw_ef")
        self._params = _EXACT if ef is None else models.SearchParams(hnsw_ef=ef)
        self._given = client
        self._client: Any = None

    def _open(self) -> None:
        client = self._given if self._given is not None else self._connect()
        try:
            self._ensure_collection(client)
        except BaseException:
            if client is not self._given:
                client.close()
            raise
        self._client = client

    def _connect(self) -> QdrantClient:
        return QdrantClient(
            url=self.url.without_query(), api_key=self._api_key, timeout=self._timeout
        )

    def _ensure_collection(self, client: QdrantClient) -> None:
        name = self.collection
        if not client.collection_exists(name):
            params = models.VectorParams(size=self.dim, distance=models.Distance.COSINE)
            try:
                client.create_collection(name, vectors_config=params)
            except (UnexpectedResponse, ValueError):
                if not client.collection_exists(name):  # not a lost creation race
                    raise
        info = client.get_collection(name)
        vectors = info.config.params.vectors
        if (
            not isinstance(vectors, models.VectorParams)
            or vectors.size != self.dim
            or vectors.distance != models.Distance.COSINE
        ):
            found = (
                f"{vectors.size}-d {vectors.distance.value}"
                if isinstance(vectors, models.VectorParams)
                else "named vectors"
            )
            raise SlotUnavailableError(
                f"vectors slot: collection {name!r} at {self.url.redacted} holds {found} "
                f"vectors, not the {self.dim}-d Cosine vectors requested",
                hint="the embedding model changed: keep the old model, or point "
                "?collection= at a new collection and re-embed into it",
            )
        schema = info.payload_schema or {}
        for field in self.indexed_fields:
            if field in schema:
                continue
            index: models.PayloadSchemaType | models.KeywordIndexParams = (
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
                if field == "tenant"
                else models.PayloadSchemaType.KEYWORD
            )
            client.create_payload_index(name, field, field_schema=index, wait=True)

    def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client is not self._given:
            client.close()

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Turn a failed round trip into a Janus error naming the server and the call."""
        try:
            yield
        except (ResponseHandlingException, UnexpectedResponse) as exc:
            raise SlotUnavailableError(
                f"vectors slot: {operation} on collection {self.collection!r} at "
                f"{self.url.redacted} failed: {str(exc).strip().splitlines()[0]}",
                hint=self.hint,
            ) from exc

    # -- core -------------------------------------------------------------------

    def _upsert(
        self, ids: list[str], vectors: list[list[float]], payloads: list[dict[str, Any]]
    ) -> None:
        # Input is already checked; skip pydantic's per-float validation of the batch.
        batch = models.Batch.model_construct(ids=ids, vectors=vectors, payloads=payloads)
        with self._calling("upsert"):
            self._client.upsert(self.collection, points=batch, wait=True)

    def _search(
        self,
        vector: list[float],
        flt: VectorFilter,
        limit: int,
        with_vectors: bool,
        with_payload: bool,
    ) -> list[VectorHit]:
        with self._calling("search"):
            response = self._client.query_points(
                self.collection,
                query=vector,
                query_filter=_filter(flt),
                search_params=self._params,
                limit=limit,
                with_payload=with_payload,
                with_vectors=with_vectors,
            )
        return [
            VectorHit(
                str(p.id), p.score, p.payload or {}, _vector(p.vector) if with_vectors else None
            )
            for p in response.points
        ]

    def _scroll(
        self, flt: VectorFilter, limit: int, offset: str | None, with_vectors: bool
    ) -> tuple[list[VectorHit], str | None]:
        with self._calling("scroll"):
            records, next_offset = self._client.scroll(
                self.collection,
                scroll_filter=_filter(flt),
                limit=limit,
                offset=offset,
                with_payload=True,
                with_vectors=with_vectors,
            )
        hits = [
            VectorHit(str(r.id), 0.0, r.payload or {}, _vector(r.vector) if with_vectors else None)
            for r in records
        ]
        return hits, None if next_offset is None else str(next_offset)

    def _count(self, flt: VectorFilter) -> int:
        with self._calling("count"):
            result = self._client.count(self.collection, count_filter=_filter(flt), exact=True)
        return cast(int, result.count)

    def _delete(self, flt: VectorFilter) -> None:
        selector = models.FilterSelector(filter=_filter(flt))
        with self._calling("delete"):
            self._client.delete(self.collection, points_selector=selector, wait=True)


def _filter(flt: VectorFilter) -> models.Filter:
    """Translate a checked ``VectorFilter``; the tenant condition is always first."""
    must: list[models.Condition] = [
        models.FieldCondition(key="tenant", match=models.MatchValue(value=flt.tenant))
    ]
    for key, value in flt.equals.items():
        match: models.Match = (
            models.MatchValue(value=value)
            if isinstance(value, str | int)
            else models.MatchAny(any=cast(list[str] | list[int], list(value)))
        )
        must.append(models.FieldCondition(key=key, match=match))
    for key, bounds in flt.ranges.items():
        rng = models.Range(gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte)
        must.append(models.FieldCondition(key=key, range=rng))
    if flt.ids is not None:
        must.append(models.HasIdCondition(has_id=list(flt.ids)))
    return models.Filter(must=must)


def _vector(value: object) -> list[float] | None:
    return value if isinstance(value, list) else None


def _positive_int(url: SlotURL, query: dict[str, str], key: str) -> int | None:
    text = query.get(key)
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise SlotURLError(
            f"vectors slot: ?{key}= in {url.redacted!r} must be a positive integer, not {text!r}"
        )
    return int(text)


class QdrantLocalVectors(QdrantVectors):
    """``QdrantVectors`` over qdrant-client's local mode: the tests' stand-in for a server.

    Only the client differs; every other call is the server adapter's own.
    """

    backend: ClassVar[str] = "qdrant-local"
    embedded: ClassVar[bool] = True
    single_writer: ClassVar[bool] = True
    query_keys: ClassVar[frozenset[str]] = frozenset({"collection"})

    def _connect(self) -> QdrantClient:
        return QdrantClient(path=str(self.url.path))
