"""The ledger side of ingestion: documents, versions, stages and what each contributed.

``DocumentLedger`` is the one handle the pipeline, the worker tasks and the
operations use. Its parts live by responsibility:

* this module: taking in documents — new versions with their chunks,
  failures, moved objects, deletion;
* ``progress.py``: the projection stages of batches of versions, finishing them;
* ``contributions.py``: what a ``doc_id`` contributed, and removing it;
* ``versions.py``: ``VersionRef``, the document key, the status names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from janus_stack.ingest.contributions import ContributionLedger
from janus_stack.ingest.progress import FinishPlan, FinishRaced, ProgressLedger
from janus_stack.ingest.versions import (
    LIVE,
    STAGES,
    UNFINISHED,
    VersionDraft,
    VersionRef,
    document_key,
    in_batches,
    refs_by_tenant,
)
from janus_stack.ledger.models import (
    Chunk,
    Document,
    DocumentVersion,
    IngestionStage,
    Tenant,
)

__all__ = [
    "LIVE",
    "STAGES",
    "UNFINISHED",
    "DocumentLedger",
    "FinishPlan",
    "FinishRaced",
    "VersionDraft",
    "VersionRef",
    "document_key",
    "refs_by_tenant",
]


class DocumentLedger(ProgressLedger, ContributionLedger):
    """Reads and writes the ingestion tables of the ledger."""

    def ensure_tenant(self, tenant: str) -> None:
        with self.ledger.session() as session:
            if session.get(Tenant, tenant) is None:
                session.add(Tenant(id=tenant, name=tenant))

    def versions_of_files(
        self, tenant: str, sources: Sequence[str]
    ) -> dict[str, list[tuple[str, str, str]]]:
        """Per source: (sub_id, object_key, status) of the current version of each live document.

        One query for many files: the hash check before any work costs a
        single round trip per block of files, not one per file.
        """
        found: dict[str, list[tuple[str, str, str]]] = {source: [] for source in sources}
        with self.ledger.session() as session:
            for part in in_batches(sorted(set(sources))):
                rows = session.execute(
                    select(
                        Document.source,
                        Document.sub_id,
                        DocumentVersion.object_key,
                        DocumentVersion.status,
                    )
                    .join(DocumentVersion, DocumentVersion.id == Document.current_version_id)
                    .where(
                        Document.tenant_id == tenant,
                        Document.source.in_(part),
                        Document.status != "deleted",
                    )
                )
                for source, sub_id, object_key, status in rows:
                    found[source].append((sub_id, object_key, status))
        return found

    def start_versions(self, drafts: Sequence[VersionDraft]) -> list[int | None]:
        """Record new versions with their chunks, in order, in one transaction.

        Returns each draft's version ID, or ``None`` where the document's
        latest version has the same bytes (and is live): nothing to do. A
        version and its chunks commit together, so every version in the
        ledger can be resumed from its chunks without re-extraction; one
        transaction for a batch of drafts keeps many small files from paying
        a round trip per statement beside the embedder.

        A version whose ``doc_id`` is already done elsewhere needs no work:
        its contributions exist. It still becomes the document's current
        version, so that deleting the other source keeps them alive.
        """
        if not drafts:
            return []
        with self.ledger.session() as session:
            return _Intake(session.connection(), drafts).write()

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


class _Intake:
    """One transaction of :meth:`DocumentLedger.start_versions`.

    What the ledger holds of the drafts' documents is read up front and kept
    current as drafts are recorded, so a document drafted twice in one batch
    (a file named twice) ends exactly as if recorded one draft at a time.
    The drafts are decided in memory first and written with one statement
    per kind of row, not two round trips per draft: with thousands of small
    files these statements run beside the embedder.
    """

    def __init__(self, connection: Connection, drafts: Sequence[VersionDraft]) -> None:
        self.connection = connection
        self.drafts = drafts
        document_ids = sorted({draft.document_id for draft in drafts})
        # document id → [current version (id, or index of a new version row), title, tags]
        self.documents: dict[str, list[Any]] = {}
        # document id → (number, doc_id, status) of its latest version
        self.latest: dict[str, tuple[int, str, str]] = {}
        for part in in_batches(document_ids):
            for document_id, current, title, tags in connection.execute(
                select(
                    Document.id, Document.current_version_id, Document.title, Document.tags
                ).where(Document.id.in_(part))
            ):
                self.documents[document_id] = [current, title, tags]
            for document_id, number, doc_id, status in connection.execute(
                select(
                    DocumentVersion.document_id,
                    DocumentVersion.version,
                    DocumentVersion.doc_id,
                    DocumentVersion.status,
                )
                .where(DocumentVersion.document_id.in_(part))
                .order_by(DocumentVersion.document_id, DocumentVersion.version)
            ):
                self.latest[document_id] = (number, doc_id, status)
        self.chunk_ids: set[str] = set()
        for doc_ids in in_batches(sorted({draft.doc_id for draft in drafts})):
            self.chunk_ids.update(
                connection.scalars(select(Chunk.id).where(Chunk.doc_id.in_(doc_ids)))
            )
        self.new_documents: dict[str, dict[str, Any]] = {}
        # document id → the columns to change, merged in draft order
        self.changed_documents: dict[str, dict[str, Any]] = {}
        self.version_rows: list[dict[str, Any]] = []
        # per new version row: its tenant, doc_id and the chunk rows not yet in the ledger
        self.version_chunks: list[tuple[str, str, list[dict[str, Any]]]] = []
        self.first_versions: dict[str, int] = {}  # document id → its new version row's index

    def write(self) -> list[int | None]:
        rows = [self._record(draft) for draft in self.drafts]
        if self.new_documents:
            self.connection.execute(insert(Document), list(self.new_documents.values()))
        for columns, changes in self._changes():
            self.connection.execute(
                update(Document)
                .where(Document.id == bindparam("b_document"))
                .values({column: bindparam(f"b_{column}") for column in columns}),
                changes,
            )
        if not self.version_rows:
            return [None] * len(rows)
        version_ids = list(
            self.connection.scalars(
                insert(DocumentVersion).returning(DocumentVersion.id, sort_by_parameter_order=True),
                self.version_rows,
            )
        )
        chunk_rows = [
            {"version_id": version_id, "tenant_id": tenant, "doc_id": doc_id} | chunk
            for version_id, (tenant, doc_id, chunks) in zip(
                version_ids, self.version_chunks, strict=True
            )
            for chunk in chunks
        ]
        if chunk_rows:
            self.connection.execute(insert(Chunk), chunk_rows)
        now = datetime.now(UTC)
        self.connection.execute(
            insert(IngestionStage),
            [
                {"version_id": version_id, "stage": stage, "status": "done", "finished_at": now}
                for version_id in version_ids
                for stage in ("store", "extract", "chunk")
            ],
        )
        if self.first_versions:
            self.connection.execute(
                update(Document)
                .where(Document.id == bindparam("b_document"))
                .values(current_version_id=bindparam("b_version")),
                [
                    {"b_document": document_id, "b_version": version_ids[row]}
                    for document_id, row in self.first_versions.items()
                ],
            )
        return [None if row is None else version_ids[row] for row in rows]

    def _changes(self) -> list[tuple[tuple[str, ...], list[dict[str, Any]]]]:
        """The document updates, one parameter list per set of changed columns."""
        grouped: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for document_id, values in self.changed_documents.items():
            columns = tuple(sorted(values))
            grouped.setdefault(columns, []).append(
                {"b_document": document_id} | {f"b_{c}": values[c] for c in columns}
            )
        return list(grouped.items())

    def _change(self, document_id: str, values: dict[str, Any]) -> None:
        new = self.new_documents.get(document_id)
        if new is not None:
            new.update(values)
        else:
            self.changed_documents.setdefault(document_id, {}).update(values)

    def _record(self, draft: VersionDraft) -> int | None:
        """Decide what ``draft`` writes; the index of its new version row, or None."""
        document_id = draft.document_id
        described = {"title": draft.title, "media_type": draft.media_type, "tags": draft.tags}
        document = self.documents.get(document_id)
        if document is None:
            self.new_documents[document_id] = {
                "id": document_id,
                "tenant_id": draft.tenant,
                "source": draft.source,
                "sub_id": draft.sub_id,
                "status": "pending",
                **described,
            }
            document = self.documents[document_id] = [None, draft.title, draft.tags]
            number = 1
        else:
            latest = self.latest.get(document_id)
            if latest is not None and latest[1] == draft.doc_id and latest[2] in LIVE:
                if document[1:] != [draft.title, draft.tags]:
                    self._change(document_id, {"title": draft.title, "tags": draft.tags})
                    document[1:] = [draft.title, draft.tags]
                return None
            number = 1 + (latest[0] if latest is not None else 0)
            self._change(document_id, described)
            document[1:] = [draft.title, draft.tags]
        row = len(self.version_rows)
        self.version_rows.append(
            {
                "document_id": document_id,
                "tenant_id": draft.tenant,
                "doc_id": draft.doc_id,
                "version": number,
                "object_key": draft.object_key,
                "size": draft.size,
                "status": "pending",
            }
        )
        self.latest[document_id] = (number, draft.doc_id, "pending")
        fresh = [chunk for chunk in draft.chunks if chunk["id"] not in self.chunk_ids]
        self.chunk_ids.update(chunk["id"] for chunk in fresh)
        self.version_chunks.append((draft.tenant, draft.doc_id, fresh))
        if document[0] is None:
            document[0] = row
            self.first_versions[document_id] = row
        return row
