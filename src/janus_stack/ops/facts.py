"""A few readable facts from the graph: the quickstart's proof that memory formed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from janus_stack.context import Janus
from janus_stack.ledger.models import Entity, Mention


def top_entities(janus: Janus, tenant: str, limit: int = 8) -> list[dict[str, Any]]:
    """The most mentioned entities with the number of chunks mentioning them."""
    with janus.ledger.session() as session:
        rows = session.execute(
            select(Entity.id, Entity.name, Entity.type, func.count(Mention.id).label("mentions"))
            .join(Mention, Mention.entity_id == Entity.id)
            .where(Entity.tenant_id == tenant)
            .group_by(Entity.id, Entity.name, Entity.type)
            .order_by(func.count(Mention.id).desc(), Entity.name)
            .limit(limit)
        ).all()
    return [{"id": r[0], "name": r[1], "type": r[2], "mentions": r[3]} for r in rows]


def neighbours(janus: Janus, tenant: str, entity_id: str, limit: int = 6) -> list[dict[str, Any]]:
    """Relations of one entity, read from the graph slot, strongest support first."""
    subgraph = janus.graph.neighbourhood(tenant, [entity_id], hops=1, limit=200)
    names = {entity.id: entity.name for entity in subgraph.entities}
    relations = sorted(subgraph.relations, key=lambda r: (-len(r.chunk_ids), r.type))
    return [
        {
            "source": names.get(r.source_id, r.source_id),
            "type": r.type,
            "target": names.get(r.target_id, r.target_id),
            "support": len(r.chunk_ids),
        }
        for r in relations
        if entity_id in (r.source_id, r.target_id)
    ][:limit]


def path_between(janus: Janus, tenant: str, source_id: str, target_id: str) -> list[str]:
    """One shortest path between two entities, as alternating names and relation types."""
    paths = janus.graph.shortest_paths(tenant, source_id, target_id, max_hops=4, limit=1)
    if not paths:
        return []
    path = paths[0]
    steps: list[str] = [path.entities[0].name]
    for relation, entity in zip(path.relations, path.entities[1:], strict=True):
        steps.extend((relation.type, entity.name))
    return steps
