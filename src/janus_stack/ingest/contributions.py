"""The ledger side of what document contents contributed, and of taking it back.

Contributions are keyed by ``doc_id`` (sha256 of tenant and bytes), not by
version: two sources with identical bytes share one set of chunks, and a
``doc_id``'s chunks, mentions and relation supports are removed only when no
live version still carries it.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from janus_stack.ingest.versions import LIVE
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import (
    Chunk,
    DocumentVersion,
    Entity,
    Mention,
    Relation,
    RelationSupport,
)


class ContributionLedger:
    """Reads and removes what each ``doc_id`` contributed; finds what nothing carries."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

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
