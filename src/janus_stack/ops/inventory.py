"""What the ledger holds: documents, their versions and stages, and per-tenant totals."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from janus_stack.context import Janus
from janus_stack.errors import NotFoundError
from janus_stack.ingest.documents import STAGES
from janus_stack.ledger.models import (
    Chunk,
    Document,
    DocumentVersion,
    Entity,
    IngestionStage,
    Mention,
    Relation,
)
from janus_stack.slots.vectors import VectorFilter

# Stages in pipeline order, as people read them.
_STAGE_ORDER = {stage: i for i, stage in enumerate(STAGES)}


def list_documents(
    janus: Janus, tenant: str, *, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    with janus.ledger.session() as session:
        chunk_counts = (
            select(Chunk.doc_id, func.count().label("chunks"))
            .where(Chunk.tenant_id == tenant)
            .group_by(Chunk.doc_id)
            .subquery()
        )
        query = (
            select(Document, DocumentVersion, chunk_counts.c.chunks)
            .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
            .outerjoin(chunk_counts, chunk_counts.c.doc_id == DocumentVersion.doc_id)
            .where(Document.tenant_id == tenant, Document.status != "deleted")
            .order_by(Document.source, Document.sub_id)
            .limit(limit)
            .offset(offset)
        )
        if status is not None:
            query = query.where(Document.status == status)
        return [
            {
                "id": document.id,
                "title": document.title,
                "source": document.source,
                "sub_id": document.sub_id,
                "status": document.status,
                "version": version.version if version else None,
                "doc_id": version.doc_id if version else None,
                "chunks": chunks or 0,
            }
            for document, version, chunks in session.execute(query)
        ]


def show_document(janus: Janus, tenant: str, document_id: str) -> dict[str, Any]:
    with janus.ledger.session() as session:
        document = session.get(Document, document_id)
        if document is None or document.tenant_id != tenant:
            raise NotFoundError(f"tenant {tenant!r} has no document {document_id!r}")
        versions = list(
            session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.version)
            )
        )
        stages = {
            v.id: [
                {"stage": s.stage, "status": s.status, "attempts": s.attempts, "error": s.error}
                for s in sorted(
                    session.scalars(
                        select(IngestionStage).where(IngestionStage.version_id == v.id)
                    ),
                    key=lambda s: (_STAGE_ORDER.get(s.stage, len(_STAGE_ORDER)), s.stage),
                )
            ]
            for v in versions
        }
        return {
            "id": document.id,
            "tenant": document.tenant_id,
            "title": document.title,
            "source": document.source,
            "sub_id": document.sub_id,
            "media_type": document.media_type,
            "tags": document.tags,
            "status": document.status,
            "current_version_id": document.current_version_id,
            "versions": [
                {
                    "id": v.id,
                    "version": v.version,
                    "doc_id": v.doc_id,
                    "status": v.status,
                    "size": v.size,
                    "object_key": v.object_key,
                    "error": v.error,
                    "created_at": v.created_at,
                    "stages": stages[v.id],
                }
                for v in versions
            ],
        }


def _count_by_tenant(session: Any, column: Any, *where: Any) -> dict[str, int]:
    query = select(column, func.count()).group_by(column)
    for condition in where:
        query = query.where(condition)
    return {row[0]: row[1] for row in session.execute(query)}


def stats(janus: Janus, *, with_stores: bool = True) -> dict[str, dict[str, int]]:
    """Per-tenant totals from the ledger, and the vector count from the index."""
    with janus.ledger.session() as session:
        columns = {
            "documents": _count_by_tenant(
                session, Document.tenant_id, Document.status != "deleted"
            ),
            "failed_documents": _count_by_tenant(
                session, Document.tenant_id, Document.status == "failed"
            ),
            "versions": _count_by_tenant(session, DocumentVersion.tenant_id),
            "chunks": _count_by_tenant(session, Chunk.tenant_id),
            "entities": _count_by_tenant(session, Entity.tenant_id),
            "relations": _count_by_tenant(session, Relation.tenant_id),
            "mentions": _count_by_tenant(session, Mention.tenant_id),
        }
    tenants = sorted({tenant for counts in columns.values() for tenant in counts})
    result = {
        tenant: {name: counts.get(tenant, 0) for name, counts in columns.items()}
        for tenant in tenants
    }
    if with_stores:
        for tenant in tenants:
            result[tenant]["vectors"] = janus.vectors.count(VectorFilter(tenant=tenant))
    return result
