"""The ledger side of graph search: which chunks mention the query's entities.

The ledger holds every mention (chunk → entity). Chunks are ranked by how
much of the query they name before liveness and filters are checked, so
that an entity mentioned in thousands of chunks costs one indexed scan and
a liveness check of the best few, not a check per chunk.

The ranking runs in the database: one row per chunk with its mentions of
each query entity (``sum(entity_id = e)``, over the covering index of
revision 0007), ordered by the weight of the set of entities it names and
cut at ``limit``. That set's weight is summed here, once per possible set
(a query names at most a handful of entities), in entity ID order as the
per-chunk sums were, and handed to SQL as a rank; so the order is exactly
that of summing per chunk, without reading thousands of rows into Python.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, exists, func, literal, select

from janus_stack.errors import InvalidInputError
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Mention
from janus_stack.retrieve.chunks import live_version_exists
from janus_stack.retrieve.filters import Filters

MAX_ENTITIES = 12  # 4,095 possible sets; the linker hands over 8 at most


def best_mentions(
    ledger: Ledger, tenant: str, filters: Filters, weight: Mapping[str, float], limit: int
) -> list[tuple[str, str, int]]:
    """(chunk, entity, repeats) for the ``limit`` live chunks naming most of ``weight``'s entities.

    Chunks rank by the summed weight of the entities they mention, then by
    mentions, then by ID. Liveness and filters are checked ``limit`` chunks
    at a time, best first, until ``limit`` have passed: usually one check,
    more only under a selective filter or after many replaced versions.
    """
    entities = sorted(weight)
    if not entities:
        return []
    if len(entities) > MAX_ENTITIES:
        raise InvalidInputError(f"graph search: at most {MAX_ENTITIES} entities at a time")
    counts = [func.sum(case((Mention.entity_id == e, 1), else_=0)) for e in entities]
    total = func.count()
    ranked = (
        select(Mention.chunk_id, total, *counts)
        .where(Mention.tenant_id == tenant, Mention.entity_id.in_(entities))
        .group_by(Mention.chunk_id)
        .order_by(_set_rank(entities, weight, counts), total.desc(), Mention.chunk_id)
    )
    live = exists(live_version_exists(tenant, filters))
    kept: list[tuple[str, list[int]]] = []
    with ledger.session() as session:
        offset = 0
        while len(kept) < limit:
            part = [
                (row[0], [int(n) for n in row[2:]])
                for row in session.execute(ranked.limit(limit).offset(offset))
            ]
            if part:
                ids = [chunk_id for chunk_id, _ in part]
                passed = set(session.scalars(select(Chunk.id).where(Chunk.id.in_(ids), live)))
                kept.extend(item for item in part if item[0] in passed)
            if len(part) < limit:
                break
            offset += limit
    return [
        (chunk_id, entity_id, n)
        for chunk_id, named in kept[:limit]
        for entity_id, n in zip(entities, named, strict=True)
        if n
    ]


def _set_rank(
    entities: Sequence[str], weight: Mapping[str, float], counts: Sequence[ColumnElement[Any]]
) -> ColumnElement[Any]:
    """An SQL expression ranking a chunk by the weight of the set of entities it names (0 best).

    Sets of equal weight share a rank, so that mentions and the chunk ID
    decide between them, as they did when the weights were summed per chunk.
    """
    sums = {
        mask: sum(weight[e] for bit, e in enumerate(entities) if mask >> bit & 1)
        for mask in range(1, 1 << len(entities))
    }
    order = {value: rank for rank, value in enumerate(sorted(set(sums.values()), reverse=True))}
    mask: ColumnElement[Any] = literal(0)
    for bit, count in enumerate(counts):
        mask = mask + case((count > 0, 1 << bit), else_=0)
    return case({m: order[value] for m, value in sums.items()}, value=mask, else_=len(order))
