"""The ledger side of ingestion: documents, versions, stages and what each contributed.

Contributions are keyed by ``doc_id`` (sha256 of tenant and bytes), not by
version: two sources with identical bytes share one set of chunks, and a
``doc_id``'s chunks, mentions and relation supports are removed only when no
live version still carries it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from janus_stack.ids import NAMESPACE
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import (
    Chunk,
    Document,
    DocumentVersion,
    Entity,
    IngestionStage,
    Mention,
    Relation,
    RelationSupport,
    Tenant,
)

STAGES = ("store", "extract", "chunk", "embed", "index", "entities", "graph")
LIVE = ("pending", "running", "done")


def document_key(tenant: str, source: str, sub_id: str) -> str:
    """The stable ID of a logical document: the same source keeps it across versions."""
    return str(uuid.uuid5(NAMESPACE, f"document:{tenant}:{source}#{sub_id}"))


@dataclass(frozen=True)
class VersionRef:
    """What the pipeline needs to know about one document version."""

    version_id: int
    document_id: str
    tenant: str
    doc_id: str
    source: str
    sub_id: str
    title: str
    object_key: str
    tags: dict[str, Any]
    stages: frozenset[str]
    status: str


def refs_by_tenant(refs: Iterable[VersionRef]) -> dict[str, list[VersionRef]]:
    """Versions grouped by tenant, in the order given: each projection batch is one tenant's."""
    grouped: dict[str, list[VersionRef]] = {}
    for ref in refs:
        grouped.setdefault(ref.tenant, []).append(ref)
    return grouped


class DocumentLedger:
    """Reads and writes the ingestion tables of the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def ensure_tenant(self, tenant: str) -> None:
        with self.ledger.session() as session:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant, name=tenant))

    def versions_of_file(self, tenant: str, source: str) -> list[tuple[str, str, str]]:
        """(sub_id, object_key, status) of the current version of each live document of a file."""
        with self.ledger.session() as session:
            rows = session.execute(
                select(Document.sub_id, DocumentVersion.object_key, DocumentVersion.status)
                .join(DocumentVersion, DocumentVersion.id == Document.current_version_id)
                .where(
                    Document.tenant_id == tenant,
                    Document.source == source,
                    Document.status != "deleted",
                )
            ).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def start_version(
        self,
        *,
        tenant: str,
        source: str,
        sub_id: str,
        title: str,
        media_type: str,
        tags: dict[str, Any],
        doc_id: str,
        object_key: str,
        size: int,
        chunks: Sequence[dict[str, Any]],
    ) -> int | None:
        """Record a new version with its chunks; ``None`` when the latest one is identical.

        Version and chunks are written in one transaction, so every version
        in the ledger can be resumed from its chunks without re-extraction.

        A version whose ``doc_id`` is already done elsewhere needs no work:
        its contributions exist. It still becomes the document's current
        version, so that deleting the other source keeps them alive.
        """
        document_id = document_key(tenant, source, sub_id)
        with self.ledger.session() as session:
            document = session.get(Document, document_id)
            if document is None:
                document = Document(
                    id=document_id,
                    tenant_id=tenant,
                    source=source,
                    sub_id=sub_id,
                    title=title,
                    media_type=media_type,
                    tags=tags,
                    status="pending",
                )
                session.add(document)
                session.flush()
                number = 1
            else:
                latest = session.scalars(
                    select(DocumentVersion)
                    .where(DocumentVersion.document_id == document_id)
                    .order_by(DocumentVersion.version.desc())
                    .limit(1)
                ).first()
                if latest is not None and latest.doc_id == doc_id and latest.status in LIVE:
                    if document.tags != tags or document.title != title:
                        document.tags = tags
                        document.title = title
                    return None
                number = 1 + (
                    session.scalar(
                        select(func.max(DocumentVersion.version)).where(
                            DocumentVersion.document_id == document_id
                        )
                    )
                    or 0
                )
                document.title = title
                document.media_type = media_type
                document.tags = tags
            version = DocumentVersion(
                document_id=document_id,
                tenant_id=tenant,
                doc_id=doc_id,
                version=number,
                object_key=object_key,
                size=size,
                status="pending",
            )
            session.add(version)
            session.flush()
            existing = set(session.scalars(select(Chunk.id).where(Chunk.doc_id == doc_id)))
            session.add_all(
                Chunk(version_id=version.id, tenant_id=tenant, doc_id=doc_id, **chunk)
                for chunk in chunks
                if chunk["id"] not in existing
            )
            now = datetime.now(UTC)
            session.add_all(
                IngestionStage(version_id=version.id, stage=stage, status="done", finished_at=now)
                for stage in ("store", "extract", "chunk")
            )
            if document.current_version_id is None:
                document.current_version_id = version.id
            return version.id

    def version(self, version_id: int) -> VersionRef:
        with self.ledger.session() as session:
            return self._ref(session, version_id)

    def unfinished_versions(self, tenant: str | None = None) -> list[int]:
        """Versions whose stages are not all done: what a killed run left behind."""
        query = select(DocumentVersion.id).where(DocumentVersion.status.in_(("pending", "running")))
        if tenant is not None:
            query = query.where(DocumentVersion.tenant_id == tenant)
        with self.ledger.session() as session:
            return list(session.scalars(query.order_by(DocumentVersion.id)))

    def _ref(self, session: Session, version_id: int) -> VersionRef:
        version = session.get(DocumentVersion, version_id)
        assert version is not None, f"version {version_id} vanished"
        document = session.get(Document, version.document_id)
        assert document is not None
        done = session.scalars(
            select(IngestionStage.stage).where(
                IngestionStage.version_id == version_id, IngestionStage.status == "done"
            )
        )
        return VersionRef(
            version_id=version.id,
            document_id=document.id,
            tenant=version.tenant_id,
            doc_id=version.doc_id,
            source=document.source,
            sub_id=document.sub_id,
            title=document.title,
            object_key=version.object_key,
            tags=dict(document.tags),
            stages=frozenset(done),
            status=version.status,
        )

    def doc_id_done(self, tenant: str, doc_id: str) -> bool:
        """Whether another version already produced every contribution of ``doc_id``."""
        with self.ledger.session() as session:
            found = session.scalar(
                select(func.count())
                .select_from(DocumentVersion)
                .where(
                    DocumentVersion.tenant_id == tenant,
                    DocumentVersion.doc_id == doc_id,
                    DocumentVersion.status == "done",
                )
            )
        return bool(found)

    def mark_stages(
        self, version_id: int, stages: Iterable[str], status: str, error: str | None = None
    ) -> None:
        now = datetime.now(UTC)
        with self.ledger.session() as session:
            for stage in stages:
                row = session.get(IngestionStage, (version_id, stage))
                if row is None:
                    row = IngestionStage(version_id=version_id, stage=stage, attempts=0)
                    session.add(row)
                row.status = status
                row.error = error
                row.attempts = (row.attempts or 0) + (1 if status == "failed" else 0)
                if status == "done":
                    row.finished_at = now
            if status == "failed":
                session.execute(
                    update(DocumentVersion)
                    .where(DocumentVersion.id == version_id)
                    .values(status="failed", error=error)
                )

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        with self.ledger.session() as session:
            return list(
                session.scalars(select(Chunk).where(Chunk.doc_id == doc_id).order_by(Chunk.ordinal))
            )

    def set_embedding_model(self, chunk_ids: Sequence[str], model: str) -> None:
        with self.ledger.session() as session:
            session.execute(
                update(Chunk).where(Chunk.id.in_(chunk_ids)).values(embedding_model=model)
            )

    def vectors_by_text(
        self, tenant: str, text_hashes: Sequence[str], model: str
    ) -> dict[str, str]:
        """text sha256 → a chunk id that already has a vector of ``model`` for that text."""
        if not text_hashes:
            return {}
        with self.ledger.session() as session:
            rows = session.execute(
                select(Chunk.text_sha256, Chunk.id).where(
                    Chunk.tenant_id == tenant,
                    Chunk.text_sha256.in_(text_hashes),
                    Chunk.embedding_model == model,
                )
            ).all()
        return {row[0]: row[1] for row in rows}

    def finish_version(self, version_id: int) -> list[tuple[str, str]]:
        """Mark a version done and current; return the (doc_id, object_key) pairs it replaced.

        Every older live version of the document is superseded: the current
        one and any unfinished one a killed run abandoned. A newer one is
        left alone: with queued ingestion a file may change again while this
        version waits for a worker, and the newer version must win. The
        caller removes their contributions where no other live version
        still carries them.
        """
        with self.ledger.session() as session:
            version = session.get(DocumentVersion, version_id)
            assert version is not None
            document = session.get(Document, version.document_id)
            assert document is not None
            older = list(
                session.scalars(
                    select(DocumentVersion).where(
                        DocumentVersion.document_id == document.id,
                        DocumentVersion.id < version_id,
                        DocumentVersion.status.in_(LIVE),
                    )
                )
            )
            for previous in older:
                previous.status = "superseded"
            version.status = "done"
            version.error = None
            document.current_version_id = version_id
            document.status = "done"
            return [
                (previous.doc_id, previous.object_key)
                for previous in older
                if previous.doc_id != version.doc_id
            ]

    def replacing(self, version_id: int) -> str | None:
        """The doc_id ``finish_version`` will replace: the current version's, if it differs."""
        with self.ledger.session() as session:
            version = session.get(DocumentVersion, version_id)
            assert version is not None
            document = session.get(Document, version.document_id)
            assert document is not None
            if document.current_version_id in (None, version_id):
                return None
            current = session.get(DocumentVersion, document.current_version_id)
            if current is None or current.doc_id == version.doc_id:
                return None
            return current.doc_id

    def live_doc_id_count(self, tenant: str, doc_id: str) -> int:
        with self.ledger.session() as session:
            count = session.scalar(
                select(func.count())
                .select_from(DocumentVersion)
                .where(
                    DocumentVersion.tenant_id == tenant,
                    DocumentVersion.doc_id == doc_id,
                    DocumentVersion.status.in_(LIVE),
                )
            )
        return int(count or 0)

    def adopt_object(self, tenant: str, source: str, object_key: str) -> list[str]:
        """Point every live version read from ``source`` at its newest bytes.

        A file holding many records (JSON Lines, a wiki dump) that changed in
        one record keeps the other records' versions; they were read again
        from the new bytes, so they now refer to the new object. Returns the
        keys they referred to before, for the caller to release.
        """
        with self.ledger.session() as session:
            versions = list(
                session.scalars(
                    select(DocumentVersion)
                    .join(Document, Document.id == DocumentVersion.document_id)
                    .where(
                        Document.tenant_id == tenant,
                        Document.source == source,
                        DocumentVersion.status.in_(LIVE),
                        DocumentVersion.object_key != object_key,
                    )
                )
            )
            previous = sorted({version.object_key for version in versions})
            for version in versions:
                version.object_key = object_key
        return previous

    def live_version_of(self, tenant: str, doc_id: str) -> int | None:
        """The newest live version carrying ``doc_id``: whom its points should name."""
        with self.ledger.session() as session:
            return session.scalar(
                select(DocumentVersion.id)
                .where(
                    DocumentVersion.tenant_id == tenant,
                    DocumentVersion.doc_id == doc_id,
                    DocumentVersion.status.in_(LIVE),
                )
                .order_by(DocumentVersion.id.desc())
                .limit(1)
            )

    def object_in_use(self, object_key: str) -> bool:
        with self.ledger.session() as session:
            count = session.scalar(
                select(func.count())
                .select_from(DocumentVersion)
                .where(
                    DocumentVersion.object_key == object_key,
                    DocumentVersion.status.in_(LIVE),
                )
            )
        return bool(count)

    def remove_contributions(self, tenant: str, doc_id: str) -> None:
        """Delete a doc_id's chunks, mentions and supports, and what lost all support."""
        with self.ledger.session() as session:
            touched_relations = set(
                session.scalars(
                    select(RelationSupport.relation_id).where(RelationSupport.doc_id == doc_id)
                )
            )
            touched_entities = set(
                session.scalars(select(Mention.entity_id).where(Mention.doc_id == doc_id))
            )
            session.execute(delete(RelationSupport).where(RelationSupport.doc_id == doc_id))
            session.execute(delete(Mention).where(Mention.doc_id == doc_id))
            session.execute(delete(Chunk).where(Chunk.doc_id == doc_id, Chunk.tenant_id == tenant))
            unsupported = [
                relation_id
                for relation_id in touched_relations
                if not session.scalar(
                    select(func.count())
                    .select_from(RelationSupport)
                    .where(RelationSupport.relation_id == relation_id)
                )
            ]
            for relation in session.scalars(select(Relation).where(Relation.id.in_(unsupported))):
                touched_entities.update((relation.source_entity_id, relation.target_entity_id))
            session.execute(delete(Relation).where(Relation.id.in_(unsupported)))
            for entity_id in touched_entities:
                mentioned = session.scalar(
                    select(func.count()).select_from(Mention).where(Mention.entity_id == entity_id)
                )
                related = session.scalar(
                    select(func.count())
                    .select_from(Relation)
                    .where(
                        (Relation.source_entity_id == entity_id)
                        | (Relation.target_entity_id == entity_id)
                    )
                )
                if not mentioned and not related:
                    session.execute(delete(Entity).where(Entity.id == entity_id))

    def mark_deleted(self, tenant: str, document_id: str) -> list[tuple[str, str, str]]:
        """Mark a document and all its versions deleted; return (tenant, doc_id, object_key)."""
        with self.ledger.session() as session:
            versions = list(
                session.scalars(
                    select(DocumentVersion).where(
                        DocumentVersion.tenant_id == tenant,
                        DocumentVersion.document_id == document_id,
                        DocumentVersion.status.in_((*LIVE, "failed")),
                    )
                )
            )
            for version in versions:
                version.status = "deleted"
            document = session.get(Document, document_id)
            if document is not None:
                document.status = "deleted"
            return [(v.tenant_id, v.doc_id, v.object_key) for v in versions]

    def record_failure(
        self, *, tenant: str, source: str, sub_id: str, error: str, size: int, doc_id: str
    ) -> None:
        """Record a file that could not be ingested as a failed version with its reason."""
        document_id = document_key(tenant, source, sub_id)
        with self.ledger.session() as session:
            document = session.get(Document, document_id)
            if document is None:
                document = Document(
                    id=document_id,
                    tenant_id=tenant,
                    source=source,
                    sub_id=sub_id,
                    title=source.rsplit("/", 1)[-1],
                    tags={},
                    status="failed",
                )
                session.add(document)
                session.flush()
            elif document.current_version_id is None:
                document.status = "failed"
            latest = session.scalars(
                select(DocumentVersion)
                .where(DocumentVersion.document_id == document_id)
                .order_by(DocumentVersion.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.status == "failed" and latest.error == error:
                return  # the same failure again: the event log counts the attempts
            number = 1 + (latest.version if latest is not None else 0)
            session.add(
                DocumentVersion(
                    document_id=document_id,
                    tenant_id=tenant,
                    doc_id=doc_id,
                    version=number,
                    object_key="",
                    size=size,
                    status="failed",
                    error=error,
                )
            )

    def documents_of_source(self, tenant: str, source: str) -> list[str]:
        """IDs of the live documents ingested from ``source`` (many for a dump)."""
        with self.ledger.session() as session:
            return list(
                session.scalars(
                    select(Document.id).where(
                        Document.tenant_id == tenant,
                        Document.source == source,
                        Document.status != "deleted",
                    )
                )
            )

    def leftovers(self, tenant: str | None = None) -> list[tuple[str, str, list[str]]]:
        """(tenant, doc_id, object keys) of contributions no live version carries any more.

        These are what a run killed between superseding or deleting a
        version and removing its contributions left behind.
        """
        live = select(DocumentVersion.doc_id).where(DocumentVersion.status.in_(LIVE))
        query = select(Chunk.tenant_id, Chunk.doc_id).distinct().where(Chunk.doc_id.not_in(live))
        if tenant is not None:
            query = query.where(Chunk.tenant_id == tenant)
        with self.ledger.session() as session:
            found = list(session.execute(query))
            return [
                (
                    row[0],
                    row[1],
                    sorted(
                        set(
                            session.scalars(
                                select(DocumentVersion.object_key).where(
                                    DocumentVersion.doc_id == row[1]
                                )
                            )
                        )
                    ),
                )
                for row in found
            ]
