"""The ledger side of graph search: which chunks mention the query's entities.

The ledger holds every mention (chunk → entity). Chunks are ranked by how
much of the query they name before liveness and filters are checked, so
that an entity mentioned in thousands of chunks costs one indexed scan and
a liveness check of the best few, not a check per chunk.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import exists, func, select

from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Mention
from janus_stack.retrieve.chunks import live_version_exists
from janus_stack.retrieve.filters import Filters


def best_mentions(
    ledger: Ledger, tenant: str, filters: Filters, weight: Mapping[str, float], limit: int
) -> list[tuple[str, str, int]]:
    """(chunk, entity, repeats) for the ``limit`` live chunks naming most of ``weight``'s entities.

    Chunks rank by the summed weight of the entities they mention, then by
    mentions, then by ID. Liveness and filters are checked ``limit`` chunks
    at a time, best first, until ``limit`` have passed: usually one check,
    more only under a selective filter or after many replaced versions.
    """
    mentioned: dict[str, list[tuple[str, int]]] = {}
    with ledger.session() as session:
        rows = session.execute(
            select(Mention.chunk_id, Mention.entity_id, func.count())
            .where(Mention.tenant_id == tenant, Mention.entity_id.in_(list(weight)))
            .group_by(Mention.chunk_id, Mention.entity_id)
        ).all()
        for chunk_id, entity_id, count in rows:
            mentioned.setdefault(chunk_id, []).append((entity_id, int(count)))
        order = sorted(
            mentioned,
            key=lambda c: (
                -sum(weight[e] for e, _ in mentioned[c]),
                -sum(n for _, n in mentioned[c]),
                c,
            ),
        )
        live = exists(live_version_exists(tenant, filters))
        kept: list[str] = []
        for start in range(0, len(order), limit):
            part = order[start : start + limit]
            passed = set(session.scalars(select(Chunk.id).where(Chunk.id.in_(part), live)))
            kept.extend(c for c in part if c in passed)
            if len(kept) >= limit:
                break
    return [(c, entity_id, n) for c in kept[:limit] for entity_id, n in mentioned[c]]
