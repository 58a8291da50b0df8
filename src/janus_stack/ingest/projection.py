"""The stages after chunking: embed → index → entities → graph → done.

Each stage runs over a batch of versions at once and is marked done in the
ledger per version when its writes are durable. Writes are idempotent
upserts keyed by deterministic IDs, so a stage interrupted half-way is
simply run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from janus_stack.context import Janus
from janus_stack.ingest.documents import DocumentLedger, VersionRef, refs_by_tenant
from janus_stack.ingest.entities import ChunkText, EntityExtractor
from janus_stack.ingest.knowledge import KnowledgeLedger
from janus_stack.ingest.removal import chunk_payload, release_object, settle_doc_id
from janus_stack.ledger.models import Chunk
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.vectors import VectorPoint

_UPSERT_BATCH = 256
PROJECTION_STAGES = ("embed", "index", "entities", "graph")
# Machine-wide (per cache slot) limits on the heavy stages: with a Redis cache they hold
# across every worker, so a queue of many tasks never runs more at once than this.
EMBED_CONCURRENCY = 2
ENTITY_CONCURRENCY = 2


class Projector:
    """Projects ledger versions into the vector index and the graph."""

    def __init__(
        self,
        janus: Janus,
        embedder: Embedder,
        documents: DocumentLedger,
        *,
        extractor: EntityExtractor | None,
        progress: Callable[[str, int], None] | None = None,
    ) -> None:
        self.janus = janus
        self.embedder = embedder
        self.documents = documents
        self.knowledge = KnowledgeLedger(janus.ledger)
        self.extractor = extractor
        self._progress = progress or (lambda _kind, _n: None)

    def run(self, version_ids: Sequence[int]) -> None:
        refs = [self.documents.version(v) for v in version_ids]
        refs = [ref for ref in refs if ref.status in ("pending", "running")]
        for tenant, group in refs_by_tenant(refs).items():
            for ref in [r for r in group if self.documents.doc_id_done(tenant, r.doc_id)]:
                # Identical bytes under another source: its contributions exist already.
                self.documents.mark_stages(ref.version_id, PROJECTION_STAGES, "done")
                group.remove(ref)
                self._finish(ref, 0)
            chunks = {ref.doc_id: self.documents.chunks_of(ref.doc_id) for ref in group}
            self._index(tenant, [r for r in group if "index" not in r.stages], chunks)
            if self.extractor is not None:
                self._entities([r for r in group if "entities" not in r.stages], chunks)
            self._graph(tenant, [r for r in group if "graph" not in r.stages])
            for ref in group:
                self._finish(ref, len(chunks[ref.doc_id]))

    def _index(self, tenant: str, refs: list[VersionRef], chunks: dict[str, list[Chunk]]) -> None:
        if not refs:
            return
        rows = [chunk for ref in refs for chunk in chunks[ref.doc_id]]
        by_id = {row.id: row for row in rows}
        present = {
            hit.id
            for start in range(0, len(rows), 1000)
            for hit in self.janus.vectors.retrieve(
                tenant, [r.id for r in rows[start : start + 1000]]
            )
        }
        todo = [row for row in rows if row.id not in present]
        vectors = self._reuse(tenant, todo)
        # Shortest first: a batch is padded to its longest text, so batching texts of
        # similar length saves about a third of the embedder's work on real documents.
        fresh = sorted(
            (row for row in todo if row.id not in vectors), key=lambda row: row.token_count
        )
        model = self.embedder.model
        for start in range(0, len(fresh), self.embedder.batch_size):
            batch = fresh[start : start + self.embedder.batch_size]
            with self.janus.cache.semaphore(
                "stage:embed", limit=EMBED_CONCURRENCY, lease_seconds=600, wait_timeout=3600
            ):
                embedded = self.embedder.embed([row.text for row in batch])
            for row, vector in zip(batch, embedded, strict=True):
                vectors[row.id] = vector
            self._progress("chunk", len(batch))
        ref_of = {ref.doc_id: ref for ref in refs}
        points = [
            VectorPoint(
                id=row_id,
                vector=vectors[row_id].tolist(),
                payload=chunk_payload(
                    by_id[row_id], ref_of[by_id[row_id].doc_id], model, self.embedder.dim
                ),
            )
            for row_id in (row.id for row in todo)
        ]
        for start in range(0, len(points), _UPSERT_BATCH):
            self.janus.vectors.upsert(points[start : start + _UPSERT_BATCH])
        self.documents.set_embedding_model([row.id for row in rows], model)
        for ref in refs:
            self.documents.mark_stages(ref.version_id, ("embed", "index"), "done")

    def _reuse(self, tenant: str, rows: list[Chunk]) -> dict[str, NDArray[np.float32]]:
        """Vectors of identical chunk texts embedded before: never embed a text twice."""
        known = self.documents.vectors_by_text(
            tenant, sorted({row.text_sha256 for row in rows}), self.embedder.model
        )
        wanted = {row.id: known[row.text_sha256] for row in rows if row.text_sha256 in known}
        sources = sorted(set(wanted.values()) - set(wanted))
        stored = {
            hit.id: hit.vector
            for start in range(0, len(sources), 1000)
            for hit in self.janus.vectors.retrieve(
                tenant, sources[start : start + 1000], with_vectors=True
            )
        }
        return {
            row_id: np.asarray(stored[source], dtype=np.float32)
            for row_id, source in wanted.items()
            if stored.get(source) is not None
        }

    def _entities(self, refs: list[VersionRef], chunks: dict[str, list[Chunk]]) -> None:
        if not refs or self.extractor is None:
            return
        texts = [
            ChunkText(chunk_id=row.id, doc_id=row.doc_id, tenant=ref.tenant, text=row.text)
            for ref in refs
            for row in chunks[ref.doc_id]
        ]
        with self.janus.cache.semaphore(
            "stage:entities", limit=ENTITY_CONCURRENCY, lease_seconds=1800, wait_timeout=3600
        ):
            found = self.extractor.extract(texts)
        self.knowledge.save(found)
        for ref in refs:
            self.documents.mark_stages(ref.version_id, ("entities",), "done")

    def _graph(self, tenant: str, refs: list[VersionRef]) -> None:
        if not refs:
            return
        entities, relations, mentions = self.knowledge.graph_items(
            tenant, [ref.doc_id for ref in refs]
        )
        self.janus.graph.upsert_entities(entities)
        self.janus.graph.upsert_relations(relations)
        self.janus.graph.add_mentions(mentions)
        for ref in refs:
            self.documents.mark_stages(ref.version_id, ("graph",), "done")

    def _finish(self, ref: VersionRef, chunk_count: int) -> None:
        # Announce first, then mark done: a run killed in between finishes the version
        # on resume and finds its event there. The other order loses the event, since
        # a done version is never finished again.
        replacing = self.documents.replacing(ref.version_id)
        if not self._announced(ref):
            self.janus.events.append(
                tenant=ref.tenant,
                actor="ingest",
                type="document.updated" if replacing else "document.ingested",
                subject=ref.document_id,
                payload={
                    "source": ref.source,
                    "sub_id": ref.sub_id,
                    "doc_id": ref.doc_id,
                    "version_id": ref.version_id,
                    "chunks": chunk_count,
                    "replaced_doc_id": replacing,
                },
            )
        for old_doc_id, old_key in self.documents.finish_version(ref.version_id):
            settle_doc_id(self.janus, self.documents, ref.tenant, old_doc_id)
            release_object(self.janus, self.documents, old_key)
        self._progress("document", 1)

    def _announced(self, ref: VersionRef) -> bool:
        """Whether a run killed before marking ``ref`` done had appended its event."""
        return any(
            event.type in ("document.ingested", "document.updated")
            and event.payload.get("version_id") == ref.version_id
            for event in self.janus.events.query(
                tenant=ref.tenant, subject=ref.document_id, type="document.*", limit=10_000
            )
        )
