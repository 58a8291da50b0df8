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
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.slots.vectors import VectorFilter


@dataclass
class DeleteReport:
    document_id: str
    doc_ids_removed: list[str] = field(default_factory=list)
    doc_ids_kept: list[str] = field(default_factory=list)
    objects_removed: list[str] = field(default_factory=list)


def remove_doc_id(janus: Janus, documents: DocumentLedger, tenant: str, doc_id: str) -> None:
    """Remove one doc_id's chunks, mentions and unsupported entities/relations everywhere."""
    janus.vectors.delete(VectorFilter(tenant=tenant, equals={"doc_id": doc_id}))
    janus.graph.remove_document(tenant, doc_id)
    documents.remove_contributions(tenant, doc_id)


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
        if doc_id and documents.live_doc_id_count(tenant, doc_id) == 0:
            remove_doc_id(janus, documents, tenant, doc_id)
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
