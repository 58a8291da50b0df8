"""The stages after chunking: embed → index → entities → graph → done.

Each stage runs over a batch of versions at once and is marked done in the
ledger for the whole batch, in one transaction, when its writes are
durable. Writes are idempotent upserts keyed by deterministic IDs, so a
stage interrupted half-way is simply run again. The last step marks the
versions done and appends their events in one transaction: a version is
announced exactly once, however often a run is killed and resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
from numpy.typing import NDArray

from janus_stack.context import Janus
from janus_stack.errors import IntegrityError
from janus_stack.events import EventDraft
from janus_stack.ingest.documents import (
    UNFINISHED,
    DocumentLedger,
    FinishPlan,
    FinishRaced,
    VersionRef,
    refs_by_tenant,
)
from janus_stack.ingest.entities import ChunkText, EntityExtractor
from janus_stack.ingest.knowledge import KnowledgeLedger
from janus_stack.ingest.removal import chunk_payload, release_object, settle_doc_id
from janus_stack.ledger.models import Chunk
from janus_stack.slots.embeddings import Embedder
from janus_stack.slots.vectors import VectorPoint

_UPSERT_BATCH = 256
_RETRIEVE_BATCH = 1000
# A finish plan goes stale only when another process changes the same versions at
# that very moment; a few fresh plans settle it.
_FINISH_ATTEMPTS = 5
PROJECTION_STAGES = ("embed", "index", "entities", "graph")
TIMED_STAGES = ("index", "entities", "graph")  # telemetry's stages; "index" includes embedding
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
        refs = [ref for ref in self.documents.versions(version_ids) if ref.status in UNFINISHED]
        for tenant, group in refs_by_tenant(refs).items():
            self._run_tenant(tenant, group)

    def _run_tenant(self, tenant: str, refs: list[VersionRef]) -> None:
        # Identical bytes under another source: their contributions exist already.
        done_elsewhere = self.documents.done_doc_ids(tenant, {ref.doc_id for ref in refs})
        ready = [ref.version_id for ref in refs if ref.doc_id in done_elsewhere]
        if ready:
            self.documents.mark_stages(ready, PROJECTION_STAGES, "done")
        work = [ref for ref in refs if ref.doc_id not in done_elsewhere]
        chunks = self.documents.chunks_by_doc_id(ref.doc_id for ref in work)
        todo = {stage: [ref for ref in work if stage not in ref.stages] for stage in TIMED_STAGES}
        telemetry = self.janus.telemetry
        with telemetry.stage("index", len(todo["index"])):
            self._index(tenant, todo["index"], chunks)
        if self.extractor is not None:
            with telemetry.stage("entities", len(todo["entities"])):
                self._entities(todo["entities"], chunks)
        with telemetry.stage("graph", len(todo["graph"])):
            self._graph(tenant, todo["graph"])
        counts = {
            ref.version_id: 0 if ref.doc_id in done_elsewhere else len(chunks[ref.doc_id])
            for ref in refs
        }
        self._finish(refs, counts)

    def _index(self, tenant: str, refs: list[VersionRef], chunks: dict[str, list[Chunk]]) -> None:
        if not refs:
            return
        # One entry per doc_id: two sources with identical bytes share their chunks.
        ref_of = {ref.doc_id: ref for ref in refs}
        rows = [chunk for doc_id in ref_of for chunk in chunks[doc_id]]
        present = {
            hit.id
            for start in range(0, len(rows), _RETRIEVE_BATCH)
            for hit in self.janus.vectors.retrieve(
                tenant, [row.id for row in rows[start : start + _RETRIEVE_BATCH]]
            )
        }
        todo = [row for row in rows if row.id not in present]
        vectors = self._reuse(tenant, todo)
        # Shortest first: a batch is padded to its longest text, so batching texts of
        # similar length saves about a third of the embedder's work on real documents.
        # The chunks of every document in the batch go together: many tiny documents
        # still fill the embedder's batches.
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
        points = [
            VectorPoint(
                id=row.id,
                vector=vectors[row.id].tolist(),
                payload=chunk_payload(row, ref_of[row.doc_id], model, self.embedder.dim),
            )
            for row in todo
        ]
        for start in range(0, len(points), _UPSERT_BATCH):
            self.janus.vectors.upsert(points[start : start + _UPSERT_BATCH])
        self.documents.mark_indexed(
            [ref.version_id for ref in refs], [row.id for row in rows], model
        )

    def _reuse(self, tenant: str, rows: list[Chunk]) -> dict[str, NDArray[np.float32]]:
        """Vectors of identical chunk texts embedded before: never embed a text twice."""
        known = self.documents.vectors_by_text(
            tenant, sorted({row.text_sha256 for row in rows}), self.embedder.model
        )
        wanted = {row.id: known[row.text_sha256] for row in rows if row.text_sha256 in known}
        sources = sorted(set(wanted.values()) - set(wanted))
        stored = {
            hit.id: hit.vector
            for start in range(0, len(sources), _RETRIEVE_BATCH)
            for hit in self.janus.vectors.retrieve(
                tenant, sources[start : start + _RETRIEVE_BATCH], with_vectors=True
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
        ref_of = {ref.doc_id: ref for ref in refs}
        texts = [
            ChunkText(chunk_id=row.id, doc_id=row.doc_id, tenant=ref.tenant, text=row.text)
            for doc_id, ref in ref_of.items()
            for row in chunks[doc_id]
        ]
        with self.janus.cache.semaphore(
            "stage:entities", limit=ENTITY_CONCURRENCY, lease_seconds=1800, wait_timeout=3600
        ):
            found = self.extractor.extract(texts)
        self.knowledge.save(found)
        self.documents.mark_stages([ref.version_id for ref in refs], ("entities",), "done")

    def _graph(self, tenant: str, refs: list[VersionRef]) -> None:
        if not refs:
            return
        entities, relations, mentions = self.knowledge.graph_items(
            tenant, sorted({ref.doc_id for ref in refs})
        )
        self.janus.graph.upsert_entities(entities)
        self.janus.graph.upsert_relations(relations)
        self.janus.graph.add_mentions(mentions)
        self.documents.mark_stages([ref.version_id for ref in refs], ("graph",), "done")

    def _finish(self, refs: list[VersionRef], chunk_counts: dict[int, int]) -> None:
        """Mark the versions done and announce them in one transaction, then clean up.

        A version reopened by ``janus repair`` (status ``running``) was
        announced when it first finished and is not announced again.
        """
        by_id = {ref.version_id: ref for ref in refs}
        for _attempt in range(_FINISH_ATTEMPTS):
            plan = self.documents.plan_finish(list(by_id))
            drafts = self._events(plan, by_id, chunk_counts)
            try:
                replaced, _records = self.janus.events.append_with(
                    partial(self.documents.finish, plan=plan), drafts
                )
            except FinishRaced:
                continue
            break
        else:
            raise IntegrityError(
                f"ingest: versions {sorted(by_id)} kept changing while they were finished",
                hint="another process keeps rewriting them; run `janus ingest --resume` later",
            )
        for tenant, old_doc_id, old_key in replaced:
            settle_doc_id(self.janus, self.documents, tenant, old_doc_id)
            release_object(self.janus, self.documents, old_key)
        # Deleted (or superseded) while projected: what the stages wrote for it goes too,
        # unless a live version carries the same bytes.
        for version_id in plan.abandoned:
            ref = by_id[version_id]
            settle_doc_id(self.janus, self.documents, ref.tenant, ref.doc_id)
            release_object(self.janus, self.documents, ref.object_key)
        self._progress("document", len(refs))

    def _events(
        self, plan: FinishPlan, by_id: dict[int, VersionRef], chunk_counts: dict[int, int]
    ) -> list[EventDraft]:
        replacing = plan.replacing()
        drafts = []
        for version_id in plan.finishing:
            ref = by_id[version_id]
            if plan.versions[version_id][2] != "pending":
                continue
            drafts.append(
                self.janus.events.draft(
                    tenant=ref.tenant,
                    actor="ingest",
                    type="document.updated" if replacing[version_id] else "document.ingested",
                    subject=ref.document_id,
                    payload={
                        "source": ref.source,
                        "sub_id": ref.sub_id,
                        "doc_id": ref.doc_id,
                        "version_id": version_id,
                        "chunks": chunk_counts[version_id],
                        "replaced_doc_id": replacing[version_id],
                    },
                )
            )
        return drafts
