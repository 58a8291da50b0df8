"""``janus memory TOPIC``: everything the memory holds about one topic, in one view.

The topic is linked to the entities of the memory the way a query is; the
best match becomes *the* entity, whose relations and neighbours come from
the graph with the chunks supporting each relation. Beside that, a hybrid
search for the topic gives the most relevant chunks, and the documents are
those that either mention the entity or hold one of those chunks. This is
the view the API serves at ``/v1/memory?topic=...``.

A topic that links to no entity but is the name of an agent that took part
in runs shows that agent's node of the collaboration graph instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from janus_stack.context import Janus
from janus_stack.ids import entity_id
from janus_stack.ledger.models import Document, DocumentVersion, Mention
from janus_stack.retrieve.chunks import check_known_tenant
from janus_stack.retrieve.search import Retriever
from janus_stack.retrieve.types import Hit, check_query

MAX_NEIGHBOURS = 25
AGENT = "AGENT"  # the entity type of agents in the collaboration graph (workflows.collaboration)
MAX_DOCUMENTS = 20


@dataclass(frozen=True)
class Neighbour:
    """An entity one relation away, with the relation's type, direction and support."""

    id: str
    name: str
    type: str
    relation: str
    direction: str  # "out": topic → neighbour; "in": neighbour → topic
    chunk_ids: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "relation": self.relation,
            "direction": self.direction,
            "chunk_ids": list(self.chunk_ids),
        }


@dataclass
class TopicMemory:
    topic: str
    tenant: str
    entity: dict[str, Any] | None = None
    aliases: list[dict[str, Any]] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    chunks: list[Hit] = field(default_factory=list)
    documents: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "tenant": self.tenant,
            "entity": self.entity,
            "other_matches": self.aliases,
            "neighbours": [n.as_dict() for n in self.neighbours],
            "chunks": [hit.as_dict() for hit in self.chunks],
            "documents": self.documents,
        }


def recall(
    janus: Janus,
    topic: str,
    *,
    tenant: str | None = None,
    k: int = 8,
    retriever: Retriever | None = None,
    filters: Mapping[str, object] | None = None,
) -> TopicMemory:
    """The entity, neighbours, chunks and documents the memory holds about ``topic``."""
    text = check_query(topic)
    name = check_known_tenant(janus.ledger, janus.settings.tenant if tenant is None else tenant)
    retriever = retriever or Retriever(janus)
    view = TopicMemory(topic=text, tenant=name)
    linked = retriever.linker.link(janus.ledger, name, text)
    if linked:
        best, others = linked[0], linked[1:]
        view.entity = {
            "id": best.id,
            "name": best.name,
            "type": best.type,
            "mentions": best.mentions,
            "match_score": round(best.score, 4),
        }
        view.aliases = [
            {"id": e.id, "name": e.name, "type": e.type, "match_score": round(e.score, 4)}
            for e in others
        ]
        view.neighbours = _neighbours(janus, name, best.id)
    else:
        _agent_view(janus, name, view)
    view.chunks = retriever.search(text, mode="hybrid", k=k, tenant=name, filters=filters)
    view.documents = _documents(janus, name, view)
    return view


def _agent_view(janus: Janus, tenant: str, view: TopicMemory) -> None:
    """A topic naming an agent shows its node of the collaboration graph: runs, partners."""
    agent_id = entity_id(tenant, view.topic, AGENT)
    for agent in janus.graph.get_entities(tenant, [agent_id]):
        view.entity = {
            "id": agent.id,
            "name": agent.name,
            "type": agent.type,
            "mentions": 0,
            "match_score": 1.0,
        }
        view.neighbours = _neighbours(janus, tenant, agent.id)


def _neighbours(janus: Janus, tenant: str, entity_id: str) -> list[Neighbour]:
    subgraph = janus.graph.neighbourhood(tenant, [entity_id], hops=1, limit=MAX_NEIGHBOURS + 1)
    by_id = {entity.id: entity for entity in subgraph.entities}
    found: list[Neighbour] = []
    for relation in subgraph.relations:
        if entity_id not in (relation.source_id, relation.target_id):
            continue
        outgoing = relation.source_id == entity_id
        other = by_id.get(relation.target_id if outgoing else relation.source_id)
        if other is None or other.id == entity_id:
            continue
        found.append(
            Neighbour(
                id=other.id,
                name=other.name,
                type=other.type,
                relation=relation.type,
                direction="out" if outgoing else "in",
                chunk_ids=tuple(relation.chunk_ids),
            )
        )
    found.sort(key=lambda n: (-len(n.chunk_ids), n.name.casefold(), n.relation))
    return found[:MAX_NEIGHBOURS]


def _documents(janus: Janus, tenant: str, view: TopicMemory) -> list[dict[str, Any]]:
    """Documents mentioning the entity (most mentions first), then those of the chunks."""
    counts: dict[str, int] = {}
    if view.entity is not None:
        with janus.ledger.session() as session:
            counted = session.execute(
                select(Mention.doc_id, func.count(Mention.id))
                .where(Mention.tenant_id == tenant, Mention.entity_id == view.entity["id"])
                .group_by(Mention.doc_id)
            ).all()
        counts = {doc_id: int(n) for doc_id, n in counted}
    wanted = list(dict.fromkeys([*sorted(counts, key=lambda d: -counts[d]), *_doc_ids(view)]))
    if not wanted:
        return []
    with janus.ledger.session() as session:
        rows = session.execute(
            select(Document.id, Document.title, Document.source, DocumentVersion.doc_id)
            .join(DocumentVersion, DocumentVersion.id == Document.current_version_id)
            .where(
                Document.tenant_id == tenant,
                Document.status != "deleted",
                DocumentVersion.doc_id.in_(wanted),
            )
        ).all()
    by_doc_id: dict[str, list[tuple[str, str, str]]] = {}
    for document_id, title, source, doc_id in rows:
        by_doc_id.setdefault(doc_id, []).append((document_id, title, source))
    listed: list[dict[str, Any]] = []
    for doc_id in wanted:
        for document_id, title, source in by_doc_id.get(doc_id, []):
            listed.append(
                {
                    "id": document_id,
                    "title": title,
                    "source": source,
                    "mentions": counts.get(doc_id, 0),
                }
            )
    return listed[:MAX_DOCUMENTS]


def _doc_ids(view: TopicMemory) -> list[str]:
    return [hit.doc_id for hit in view.chunks]
