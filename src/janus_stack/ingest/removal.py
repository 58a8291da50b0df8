"""Contribution-aware removal of documents from every store.

The ledger is updated first (the document is marked deleted), then the
projections follow. A crash in between leaves extra items in the vector
index or graph that ``janus verify`` reports and ``janus repair`` removes —
never a ledger that claims something the stores lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from janus_stack.context import Janus
from janus_stack.errors import NotFoundError
from janus_stack.ingest.documents import DocumentLedger, VersionRef
from janus_stack.ledger.models import Chunk
from janus_stack.slots.vectors import VectorFilter, VectorPoint
from janus_stack.workflows.collaboration import release_topics


@dataclass
class DeleteReport:
    document_id: str
    doc_ids_removed: list[str] = field(default_factory=list)
    doc_ids_kept: list[str] = field(default_factory=list)
    objects_removed: list[str] = field(default_factory=list)


def remove_doc_id(janus: Janus, documents: DocumentLedger, tenant: str, doc_id: str) -> None:
    """Remove one doc_id's chunks, mentions and unsupported entities/relations everywhere.

    A run's ``ABOUT`` edge does not keep a topic entity alive: the entities
    the ledger no longer holds leave the collaboration graph too.
    """
    janus.vectors.delete(VectorFilter(tenant=tenant, equals={"doc_id": doc_id}))
    janus.graph.remove_document(tenant, doc_id)
    documents.remove_contributions(tenant, doc_id)
    release_topics(janus, tenant)


def settle_doc_id(janus: Janus, documents: DocumentLedger, tenant: str, doc_id: str) -> bool:
    """After a version carrying ``doc_id`` went away: remove its contributions or re-point them.

    Identical bytes under two sources share one ``doc_id`` and one set of
    points. While another live version still carries it the contributions
    stay, but the points' payload must name that version's document, or
    search would cite a deleted (or since changed) source. Returns whether
    the contributions were removed.
    """
    survivor = documents.live_version_of(tenant, doc_id)
    if survivor is None:
        remove_doc_id(janus, documents, tenant, doc_id)
        return True
    ref = documents.version(survivor)
    rows = {row.id: row for row in documents.chunks_of(doc_id)}
    hits = janus.vectors.retrieve(tenant, list(rows), with_vectors=True)
    points = [
        VectorPoint(
            id=hit.id,
            vector=list(hit.vector),
            payload=chunk_payload(
                rows[hit.id], ref, str(hit.payload.get("model", "")), len(hit.vector)
            ),
        )
        for hit in hits
        if hit.vector is not None and hit.payload.get("document_id") != ref.document_id
    ]
    if points:
        janus.vectors.upsert(points)
    return False


def chunk_payload(row: Chunk, ref: VersionRef, model: str, dim: int) -> dict[str, object]:
    """The point payload: IDs to move between stores, filters, and the embedding model."""
    return {
        "tenant": ref.tenant,
        "doc_id": row.doc_id,
        "document_id": ref.document_id,
        "chunk_id": row.id,
        "source": ref.source,
        "title": ref.title,
        "ordinal": row.ordinal,
        "page": row.page,
        "heading_path": list(row.heading_path),
        "text_sha256": row.text_sha256,
        "model": model,
        "dim": dim,
        "tags": dict(ref.tags),
    }


def release_object(janus: Janus, documents: DocumentLedger, object_key: str) -> bool:
    """Delete a raw object unless a live version still references it."""
    if not object_key or documents.object_in_use(object_key):
        return False
    return janus.objects.delete(object_key)


def delete_document(janus: Janus, tenant: str, document_id: str) -> DeleteReport:
    """Delete one document of ``tenant`` from the ledger, then from every projection."""
    documents = DocumentLedger(janus.ledger)
    versions = documents.mark_deleted(tenant, document_id)
    if not versions:
        raise NotFoundError(
            f"tenant {tenant!r} has no live document {document_id!r}",
            hint="`janus docs list` shows the documents",
        )
    report = DeleteReport(document_id=document_id)
    for _tenant, doc_id, object_key in versions:
        if doc_id and settle_doc_id(janus, documents, tenant, doc_id):
            report.doc_ids_removed.append(doc_id)
        elif doc_id:
            report.doc_ids_kept.append(doc_id)
        if release_object(janus, documents, object_key):
            report.objects_removed.append(object_key)
    janus.events.append(
        tenant=tenant,
        actor="ingest",
        type="document.deleted",
        subject=document_id,
        payload={
            "doc_ids_removed": report.doc_ids_removed,
            "doc_ids_kept": report.doc_ids_kept,
            "objects_removed": report.objects_removed,
        },
    )
    return report
