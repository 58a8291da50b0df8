"""The ledger side of projection: which versions need which stage, and marking them done.

Everything here works on a whole batch of versions with a handful of
queries and one transaction per step, never a round trip per version: with
thousands of one-chunk documents the per-version bookkeeping otherwise
costs as much as embedding them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from janus_stack.ingest.versions import LIVE, UNFINISHED, VersionRef, in_batches
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Document, DocumentVersion, IngestionStage, utcnow


class ProgressLedger:
    """Reads and writes the projection progress of document versions."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def version(self, version_id: int) -> VersionRef:
        (ref,) = self.versions([version_id])
        return ref

    def versions(self, version_ids: Sequence[int]) -> list[VersionRef]:
        """The versions ``version_ids`` in the order given (each once), with their done stages."""
        wanted = list(dict.fromkeys(version_ids))
        rows: dict[int, Row[Any]] = {}
        stages: dict[int, set[str]] = defaultdict(set)
        with self.ledger.session() as session:
            for part in in_batches(wanted):
                for row in session.execute(
                    select(
                        DocumentVersion.id,
                        DocumentVersion.document_id,
                        DocumentVersion.tenant_id,
                        DocumentVersion.doc_id,
                        DocumentVersion.object_key,
                        DocumentVersion.status,
                        Document.source,
                        Document.sub_id,
                        Document.title,
                        Document.tags,
                    )
                    .join(Document, Document.id == DocumentVersion.document_id)
                    .where(DocumentVersion.id.in_(part))
                ):
                    rows[row[0]] = row
                for version_id, stage in session.execute(
                    select(IngestionStage.version_id, IngestionStage.stage).where(
                        IngestionStage.version_id.in_(part), IngestionStage.status == "done"
                    )
                ):
                    stages[version_id].add(stage)
        missing = [version_id for version_id in wanted if version_id not in rows]
        assert not missing, f"versions {missing} vanished"
        refs = []
        for version_id in wanted:
            row = rows[version_id]
            refs.append(
                VersionRef(
                    version_id=version_id,
                    document_id=row.document_id,
                    tenant=row.tenant_id,
                    doc_id=row.doc_id,
                    source=row.source,
                    sub_id=row.sub_id,
                    title=row.title,
                    object_key=row.object_key,
                    tags=dict(row.tags),
                    stages=frozenset(stages[version_id]),
                    status=row.status,
                )
            )
        return refs

    def unfinished_versions(self, tenant: str | None = None) -> list[int]:
        """Versions whose stages are not all done: what a killed run left behind."""
        query = select(DocumentVersion.id).where(DocumentVersion.status.in_(UNFINISHED))
        if tenant is not None:
            query = query.where(DocumentVersion.tenant_id == tenant)
        with self.ledger.session() as session:
            return list(session.scalars(query.order_by(DocumentVersion.id)))

    def done_doc_ids(self, tenant: str, doc_ids: Iterable[str]) -> set[str]:
        """Those of ``doc_ids`` whose every contribution another version already produced."""
        found: set[str] = set()
        with self.ledger.session() as session:
            for part in in_batches(sorted(set(doc_ids))):
                found.update(
                    session.scalars(
                        select(DocumentVersion.doc_id)
                        .distinct()
                        .where(
                            DocumentVersion.tenant_id == tenant,
                            DocumentVersion.doc_id.in_(part),
                            DocumentVersion.status == "done",
                        )
                    )
                )
        return found

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        return self.chunks_by_doc_id([doc_id]).get(doc_id, [])

    def chunks_by_doc_id(self, doc_ids: Iterable[str]) -> dict[str, list[Chunk]]:
        """The chunks of each of ``doc_ids`` in ordinal order (an empty list for none)."""
        wanted = sorted(set(doc_ids))
        chunks: dict[str, list[Chunk]] = {doc_id: [] for doc_id in wanted}
        with self.ledger.session() as session:
            for part in in_batches(wanted):
                for row in session.scalars(
                    select(Chunk)
                    .where(Chunk.doc_id.in_(part))
                    .order_by(Chunk.doc_id, Chunk.ordinal)
                ):
                    chunks[row.doc_id].append(row)
        return chunks

    def vectors_by_text(
        self, tenant: str, text_hashes: Sequence[str], model: str
    ) -> dict[str, str]:
        """text sha256 → a chunk id that already has a vector of ``model`` for that text."""
        found: dict[str, str] = {}
        with self.ledger.session() as session:
            for part in in_batches(text_hashes):
                rows = session.execute(
                    select(Chunk.text_sha256, Chunk.id).where(
                        Chunk.tenant_id == tenant,
                        Chunk.text_sha256.in_(part),
                        Chunk.embedding_model == model,
                    )
                )
                found.update((row[0], row[1]) for row in rows)
        return found

    def mark_stages(self, version_ids: Sequence[int], stages: Iterable[str], status: str) -> None:
        """Set ``stages`` of each of ``version_ids`` to ``status`` in one transaction.

        ``done``, or ``pending`` to have a stage run again (``janus repair``).
        """
        with self.ledger.session() as session:
            _mark(session, version_ids, tuple(stages), status)

    def mark_indexed(
        self, version_ids: Sequence[int], chunk_ids: Sequence[str], model: str
    ) -> None:
        """Record the chunks' vectors of ``model`` and the versions' index stages together.

        One transaction: after a crash the two never disagree.
        """
        with self.ledger.session() as session:
            for part in in_batches(chunk_ids):
                session.execute(
                    update(Chunk).where(Chunk.id.in_(part)).values(embedding_model=model)
                )
            _mark(session, version_ids, ("embed", "index"), "done")

    def plan_finish(self, version_ids: Sequence[int]) -> FinishPlan:
        """What finishing ``version_ids`` will do, read before the finish is written.

        The events announcing the versions are drafted from the plan and
        appended in the very transaction that :meth:`finish` writes, which
        checks that nothing the plan read has changed meanwhile.
        """
        with self.ledger.session() as session:
            return _read_plan(session, version_ids)

    def finish(self, connection: Connection, plan: FinishPlan) -> list[tuple[str, str, str]]:
        """Write ``plan``: the versions done and current, oldest first, in ``connection``.

        Every older live version of a document is superseded: the current
        one and any unfinished one a killed run abandoned. A newer one is
        left alone: with queued ingestion a file may change again while this
        version waits for a worker, and the newer version must win.

        Returns (tenant, doc_id, object_key) of each superseded version whose
        bytes differ from its successor's: the caller removes the
        contributions no live version still carries.

        Raises:
            FinishRaced: a version or its document changed since the plan was read.
        """
        if not plan.finishing:
            return []
        now = _read_plan(connection, list(plan.versions))
        if now.versions != plan.versions or now.current != plan.current:
            raise FinishRaced("the versions changed between planning and writing their finish")
        finishing = set(plan.finishing)
        documents = sorted({plan.versions[version_id][0] for version_id in finishing})
        # document id → (version id, tenant, doc_id, object key) of its live versions
        live: dict[str, list[tuple[int, str, str, str]]] = defaultdict(list)
        for some_documents in in_batches(documents):
            for other_id, document_id, tenant, doc_id, object_key in connection.execute(
                select(
                    DocumentVersion.id,
                    DocumentVersion.document_id,
                    DocumentVersion.tenant_id,
                    DocumentVersion.doc_id,
                    DocumentVersion.object_key,
                ).where(
                    DocumentVersion.document_id.in_(some_documents),
                    DocumentVersion.status.in_(LIVE),
                )
            ):
                live[document_id].append((other_id, tenant, doc_id, object_key))
        superseded: set[int] = set()
        replaced: list[tuple[str, str, str]] = []
        current: dict[str, int] = {}
        for version_id in plan.finishing:
            document_id, doc_id, _status = plan.versions[version_id]
            for previous_id, tenant, previous_doc_id, object_key in live[document_id]:
                if previous_id < version_id and previous_id not in superseded:
                    superseded.add(previous_id)
                    if previous_doc_id != doc_id:
                        replaced.append((tenant, previous_doc_id, object_key))
            current[document_id] = version_id
        for part in in_batches(sorted(superseded)):
            connection.execute(
                update(DocumentVersion)
                .where(DocumentVersion.id.in_(part))
                .values(status="superseded")
            )
        for part in in_batches(sorted(finishing - superseded)):
            connection.execute(
                update(DocumentVersion)
                .where(DocumentVersion.id.in_(part))
                .values(status="done", error=None)
            )
        connection.execute(
            update(Document)
            .where(Document.id == bindparam("b_document"))
            .values(current_version_id=bindparam("b_version"), status="done", updated_at=utcnow()),
            [{"b_document": key, "b_version": value} for key, value in sorted(current.items())],
        )
        return replaced


class FinishRaced(Exception):  # noqa: N818 - a retry signal, not an error to report
    """What a finish plan read changed before the finish was written; plan again."""


@dataclass(frozen=True)
class FinishPlan:
    """The versions of a batch as read before finishing them.

    Attributes:
        versions: version id → (document id, doc_id, status).
        current: document id → its current version id and that version's doc_id.
    """

    versions: dict[int, tuple[str, str, str]]
    current: dict[str, tuple[int | None, str | None]]

    @property
    def finishing(self) -> list[int]:
        """The versions still unfinished, oldest first: those the finish writes."""
        return sorted(v for v, (_d, _doc, status) in self.versions.items() if status in UNFINISHED)

    @property
    def abandoned(self) -> list[int]:
        """The versions deleted or superseded while they were projected: never revived."""
        return sorted(
            v for v, (_d, _doc, status) in self.versions.items() if status not in UNFINISHED
        )

    def replacing(self) -> dict[int, str | None]:
        """For each finishing version, the doc_id its finish replaces (the current one's).

        Versions of one document finish oldest first, each replacing the one
        before it; a document's first version, or one with the same bytes,
        replaces nothing.
        """
        current = {document: doc_id for document, (_v, doc_id) in self.current.items()}
        replaced: dict[int, str | None] = {}
        for version_id in self.finishing:
            document_id, doc_id, _status = self.versions[version_id]
            previous = current.get(document_id)
            replaced[version_id] = previous if previous not in (None, doc_id) else None
            current[document_id] = doc_id
        return replaced


def _mark(
    session: Session | Connection, version_ids: Sequence[int], stages: tuple[str, ...], status: str
) -> None:
    """Upsert the stage rows (version, stage) with ``status`` in ``session``."""
    finished = datetime.now(UTC) if status == "done" else None
    values = {"status": status, "error": None, "finished_at": finished}
    for part in in_batches(sorted(set(version_ids))):
        existing = {
            (version_id, stage)
            for version_id, stage in session.execute(
                select(IngestionStage.version_id, IngestionStage.stage).where(
                    IngestionStage.version_id.in_(part), IngestionStage.stage.in_(stages)
                )
            )
        }
        if existing:
            session.execute(
                update(IngestionStage)
                .where(
                    tuple_(IngestionStage.version_id, IngestionStage.stage).in_(sorted(existing))
                )
                .values(**values)
            )
        missing = [
            {
                "version_id": version_id,
                "stage": stage,
                "attempts": 0,
                **values,
            }
            for version_id in part
            for stage in stages
            if (version_id, stage) not in existing
        ]
        if missing:
            session.execute(insert(IngestionStage), missing)


def _read_plan(executor: Session | Connection, version_ids: Sequence[int]) -> FinishPlan:
    versions: dict[int, tuple[str, str, str]] = {}
    current: dict[str, tuple[int | None, str | None]] = {}
    current_version = DocumentVersion.__table__.alias("current_version")
    for part in in_batches(sorted(set(version_ids))):
        for version_id, document_id, doc_id, status in executor.execute(
            select(
                DocumentVersion.id,
                DocumentVersion.document_id,
                DocumentVersion.doc_id,
                DocumentVersion.status,
            ).where(DocumentVersion.id.in_(part))
        ):
            versions[version_id] = (document_id, doc_id, status)
        documents = select(DocumentVersion.document_id).where(DocumentVersion.id.in_(part))
        for document_id, current_id, current_doc_id in executor.execute(
            select(Document.id, Document.current_version_id, current_version.c.doc_id)
            .outerjoin(current_version, current_version.c.id == Document.current_version_id)
            .where(Document.id.in_(documents))
        ):
            current[document_id] = (current_id, current_doc_id)
    return FinishPlan(versions=versions, current=current)
