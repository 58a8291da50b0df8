"""The ledger side of entities, mentions and relations, and their graph projection.

The ledger keeps who supports what (mention rows, relation supports per
chunk); the graph is rebuilt from these rows, never the other way round.
All writes are insert-if-absent, so a stage re-run after a crash adds
nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, tuple_

from janus_stack.ids import normalise_name
from janus_stack.ingest.entities import Extraction
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Entity, Mention, Relation, RelationSupport
from janus_stack.slots import graph

_BATCH = 500


def _batches(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[start : start + _BATCH] for start in range(0, len(items), _BATCH)]


class KnowledgeLedger:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def save(self, extraction: Extraction) -> None:
        """Insert what an extraction found that the ledger does not hold yet."""
        with self.ledger.session() as session:
            entity_ids = [entity.id for entity in extraction.entities]
            known: set[str] = set()
            for part in _batches(entity_ids):
                known.update(session.scalars(select(Entity.id).where(Entity.id.in_(part))))
            for entity in extraction.entities:
                if entity.id not in known:
                    known.add(entity.id)
                    session.add(
                        Entity(
                            id=entity.id,
                            tenant_id=entity.tenant,
                            name=entity.name,
                            normalised_name=normalise_name(entity.name),
                            type=entity.type,
                            properties={"aliases": list(entity.aliases)},
                        )
                    )
            session.flush()
            chunk_ids = sorted({m.chunk_id for m in extraction.mentions})
            seen_mentions: set[tuple[str, str, int]] = set()
            for part in _batches(chunk_ids):
                seen_mentions.update(
                    (row[0], row[1], row[2])
                    for row in session.execute(
                        select(Mention.chunk_id, Mention.entity_id, Mention.char_start).where(
                            Mention.chunk_id.in_(part)
                        )
                    )
                )
            tenants = {e.id: e.tenant for e in extraction.entities}
            for mention in extraction.mentions:
                key = (mention.chunk_id, mention.entity_id, mention.char_start)
                if key not in seen_mentions:
                    seen_mentions.add(key)
                    session.add(
                        Mention(
                            tenant_id=tenants[mention.entity_id],
                            chunk_id=mention.chunk_id,
                            entity_id=mention.entity_id,
                            doc_id=mention.doc_id,
                            char_start=mention.char_start,
                            char_end=mention.char_end,
                        )
                    )
            relation_ids = [relation.id for relation in extraction.relations]
            known_relations: set[str] = set()
            for part in _batches(relation_ids):
                known_relations.update(
                    session.scalars(select(Relation.id).where(Relation.id.in_(part)))
                )
            support_chunks = sorted({c for r in extraction.relations for c in r.chunk_ids})
            chunk_docs: dict[str, str] = {}
            for part in _batches(support_chunks):
                chunk_docs.update(
                    (row[0], row[1])
                    for row in session.execute(
                        select(Chunk.id, Chunk.doc_id).where(Chunk.id.in_(part))
                    )
                )
            for relation in extraction.relations:
                if relation.id not in known_relations:
                    known_relations.add(relation.id)
                    session.add(
                        Relation(
                            id=relation.id,
                            tenant_id=relation.tenant,
                            source_entity_id=relation.source_id,
                            target_entity_id=relation.target_id,
                            type=relation.type,
                            properties={},
                        )
                    )
            session.flush()
            pairs = [
                (r.id, c) for r in extraction.relations for c in r.chunk_ids if c in chunk_docs
            ]
            existing: set[tuple[str, str]] = set()
            for start in range(0, len(pairs), _BATCH):
                pair_batch = pairs[start : start + _BATCH]
                existing.update(
                    (row[0], row[1])
                    for row in session.execute(
                        select(RelationSupport.relation_id, RelationSupport.chunk_id).where(
                            tuple_(RelationSupport.relation_id, RelationSupport.chunk_id).in_(
                                pair_batch
                            )
                        )
                    )
                )
            for relation_id, chunk_id in dict.fromkeys(pairs):
                if (relation_id, chunk_id) not in existing:
                    session.add(
                        RelationSupport(
                            relation_id=relation_id, chunk_id=chunk_id, doc_id=chunk_docs[chunk_id]
                        )
                    )

    def graph_items(
        self, tenant: str, doc_ids: Sequence[str]
    ) -> tuple[list[graph.Entity], list[graph.Relation], list[graph.Mention]]:
        """What ``doc_ids`` contribute to the graph, read back from the ledger."""
        with self.ledger.session() as session:
            mentions = list(
                session.execute(
                    select(Mention.chunk_id, Mention.doc_id, Mention.entity_id)
                    .where(Mention.doc_id.in_(doc_ids))
                    .distinct()
                )
            )
            supports = list(
                session.execute(
                    select(RelationSupport.relation_id, RelationSupport.chunk_id).where(
                        RelationSupport.doc_id.in_(doc_ids)
                    )
                )
            )
            relation_ids = sorted({row[0] for row in supports})
            relations: dict[str, Relation] = {}
            for part in _batches(relation_ids):
                relations.update(
                    (r.id, r)
                    for r in session.scalars(select(Relation).where(Relation.id.in_(part)))
                )
            entity_ids = sorted(
                {row[2] for row in mentions}
                | {r.source_entity_id for r in relations.values()}
                | {r.target_entity_id for r in relations.values()}
            )
            entities: list[Entity] = []
            for part in _batches(entity_ids):
                entities.extend(session.scalars(select(Entity).where(Entity.id.in_(part))))
        chunks_of: dict[str, list[str]] = {}
        for relation_id, chunk_id in supports:
            chunks_of.setdefault(relation_id, []).append(chunk_id)
        return (
            [
                graph.Entity(
                    id=e.id, tenant=tenant, name=e.name, type=e.type, properties=e.properties
                )
                for e in entities
            ],
            [
                graph.Relation(
                    tenant=tenant,
                    source_id=r.source_entity_id,
                    target_id=r.target_entity_id,
                    type=r.type,
                    chunk_ids=tuple(sorted(chunks_of[r.id])),
                )
                for r in relations.values()
            ],
            [
                graph.Mention(tenant=tenant, chunk_id=row[0], doc_id=row[1], entity_id=row[2])
                for row in mentions
            ],
        )
