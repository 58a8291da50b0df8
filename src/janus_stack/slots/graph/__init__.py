"""The graph slot: entities, the relations between them and the chunks that mention them.

Model, the same in every backend::

    (:Chunk {id, tenant, doc_id})-[:MENTIONS]->(:Entity {id, tenant, name, type, properties})
    (:Entity)-[:RELATED {id, tenant, type, chunk_ids, properties}]->(:Entity)

The relation type is a property, not a label, so the schema is fixed (the
embedded engine needs typed tables) and path queries need no label unions.
``properties`` are stored as JSON text for the same reason.

``GraphStore`` validates every call once and then calls a narrow abstract
core (the ``_methods``) that backends implement. Contribution-aware
removal and the doctor probe are built here on that core, so their rules
are written once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import ClassVar, TypeVar

from janus_stack.errors import InvalidInputError, JanusError, NotFoundError
from janus_stack.ids import check_tenant
from janus_stack.slots.base import Slot, load_backend
from janus_stack.slots.graph.types import (
    DocumentFootprint,
    Entity,
    GraphCounts,
    Mention,
    Path,
    Relation,
    RemovalReport,
    Subgraph,
    check_id,
    check_ids,
    with_chunk_ids,
)
from janus_stack.urls import SlotURL

__all__ = [
    "ACCEPTED_SCHEMES",
    "BACKENDS",
    "Entity",
    "GraphCounts",
    "GraphStore",
    "Mention",
    "Path",
    "Relation",
    "RemovalReport",
    "Subgraph",
    "open",
]

BACKENDS: Mapping[str, str] = {
    "ladybug": "graph.ladybug:LadybugGraph",
    "neo4j": "graph.neo4j:Neo4jGraph",
    "neo4j+s": "graph.neo4j:Neo4jGraph",
    "bolt": "graph.neo4j:Neo4jGraph",
    "bolt+s": "graph.neo4j:Neo4jGraph",
    "falkordb": "graph.falkordb:FalkorDBGraph",
}
ACCEPTED_SCHEMES: tuple[str, ...] = tuple(sorted(BACKENDS))

MAX_HOPS = 3
MAX_PATH_HOPS = 6
MAX_NEIGHBOURHOOD = 1_000
MAX_PATHS = 100
# Tenants starting with "_" are reserved for Janus itself (ids.check_tenant).
PROBE_TENANT = "_doctor"

_T = TypeVar("_T", Entity, Relation, Mention)


class GraphStore(Slot):
    """Contract of the graph slot. Every read and write is scoped to one tenant."""

    slot: ClassVar[str] = "graph"

    # -- writes ---------------------------------------------------------------

    def upsert_entities(self, entities: Sequence[Entity]) -> None:
        """Create or update entities by (tenant, id); name, type and properties are replaced."""
        batch = list({(e.tenant, e.id): e for e in _batch(entities, Entity, "entities")}.values())
        self._require_open()
        if batch:
            self._upsert_entities(batch)

    def upsert_relations(self, relations: Sequence[Relation]) -> None:
        """Create or update relations; ``chunk_ids`` are added to what is stored, never dropped.

        Both endpoints must already exist. Relations whose endpoints exist are
        written even when others in the batch are not (a bad row never stops
        the rest); a ``NotFoundError`` then names the missing entities.
        """
        batch = _merge_relations(_batch(relations, Relation, "relations"))
        self._require_open()
        if batch:
            missing = self._upsert_relations(batch)
            if missing:
                skipped = sum(
                    1
                    for r in batch
                    if (r.tenant, r.source_id) in missing or (r.tenant, r.target_id) in missing
                )
                raise NotFoundError(
                    f"graph: {skipped} of {len(batch)} relations were not written because "
                    f"their endpoint entities do not exist: {_sample(missing)}",
                    hint="upsert the entities before the relations that join them",
                )

    def add_mentions(self, mentions: Sequence[Mention]) -> None:
        """Record that chunks mention entities, creating the chunk nodes as needed.

        As with relations, mentions of entities that exist are written and a
        ``NotFoundError`` names the entities that do not.
        """
        batch = list(dict.fromkeys(_batch(mentions, Mention, "mentions")))
        self._require_open()
        if batch:
            missing = self._add_mentions(batch)
            if missing:
                raise NotFoundError(
                    f"graph: mentions of entities that do not exist were not written: "
                    f"{_sample(missing)}",
                    hint="upsert the entities before their mentions",
                )

    def remove_mentions(self, tenant: str, chunk_ids: Sequence[str]) -> None:
        """Delete chunks and their mentions; entities and relations are left alone."""
        tenant, ids = check_tenant(tenant), check_ids(chunk_ids, "chunk_ids")
        self._require_open()
        if ids:
            self._remove_chunks(tenant, ids)

    def remove_document(self, tenant: str, doc_id: str) -> RemovalReport:
        """Remove what one document contributed, keeping what other documents support.

        The document's chunks and mentions go; its chunk ids leave every
        relation, and a relation left with no supporting chunk goes. An entity
        the document touched goes only when nothing supports it any more (no
        mention, no relation); entities it never touched are not considered.

        Steps run in an order that makes a re-run after a crash finish the job:
        entities first, then relations, and the chunks (which identify the
        document) last.
        """
        tenant, doc_id = check_tenant(tenant), check_id(doc_id, "doc_id")
        self._require_open()
        footprint = self._footprint(tenant, doc_id)
        doc_chunks = footprint.chunk_ids
        rewritten = [
            with_chunk_ids(r, (c for c in r.chunk_ids if c not in doc_chunks))
            for r in footprint.relations
        ]
        dropped = {r.id for r in rewritten if not r.chunk_ids}
        orphans = sorted(
            eid
            for eid in footprint.touched
            if eid not in footprint.mentioned_elsewhere
            and footprint.edges.get(eid, frozenset()) <= dropped
        )
        if orphans:
            self._delete_entities(tenant, orphans)
        if rewritten:
            self._rewrite_support(tenant, rewritten)
        if doc_chunks:
            self._remove_chunks(tenant, sorted(doc_chunks))
        return RemovalReport(
            chunks=len(doc_chunks),
            mentions=footprint.mentions,
            relations_removed=len(dropped),
            relations_updated=len(rewritten) - len(dropped),
            entities_removed=len(orphans),
        )

    def delete_entities(self, tenant: str, ids: Sequence[str]) -> None:
        """Delete entities with all their relations and mentions."""
        tenant, keys = check_tenant(tenant), check_ids(ids, "ids")
        self._require_open()
        if keys:
            self._delete_entities(tenant, keys)

    # -- reads ----------------------------------------------------------------

    def get_entities(self, tenant: str, ids: Sequence[str]) -> list[Entity]:
        """The entities that exist among ``ids``, in the order asked; missing ones are skipped."""
        tenant, keys = check_tenant(tenant), check_ids(ids, "ids")
        self._require_open()
        if not keys:
            return []
        found = {entity.id: entity for entity in self._get_entities(tenant, keys)}
        return [found[key] for key in keys if key in found]

    def relations_between(self, tenant: str, pairs: Sequence[tuple[str, str]]) -> list[Relation]:
        """The stored relations from ``source`` to ``target`` of each ``(source, target)`` pair.

        What ``janus verify`` reads to compare relations with the ledger:
        unlike ``neighbourhood`` it never expands a hub's other edges.
        """
        tenant = check_tenant(tenant)
        if isinstance(pairs, str | bytes) or not isinstance(pairs, Sequence):
            raise InvalidInputError("graph: pairs must be a list of (source_id, target_id)")
        checked = list(
            dict.fromkeys(
                (check_id(pair[0], f"pairs[{i}][0]"), check_id(pair[1], f"pairs[{i}][1]"))
                for i, pair in enumerate(pairs)
                if _is_pair(pair, i)
            )
        )
        self._require_open()
        return self._relations_between(tenant, checked) if checked else []

    def neighbourhood(
        self, tenant: str, entity_ids: Sequence[str], hops: int = 1, limit: int = 100
    ) -> Subgraph:
        """The entities within ``hops`` of the seeds and the relations among them.

        Direction is ignored. At most ``limit`` entities are returned, the
        seeds first and then the nearest; traversal stops growing once the
        limit is reached, so a hub cannot make the query explode.
        """
        tenant, seeds = check_tenant(tenant), check_ids(entity_ids, "entity_ids")
        hops = _bounded(hops, "hops", 1, MAX_HOPS)
        limit = _bounded(limit, "limit", 1, MAX_NEIGHBOURHOOD)
        self._require_open()
        if not seeds:
            return Subgraph([], [])
        return self._neighbourhood(tenant, seeds, hops, limit)

    def shortest_paths(
        self, tenant: str, source_id: str, target_id: str, max_hops: int = 4, limit: int = 5
    ) -> list[Path]:
        """All shortest paths (up to ``limit``) between two entities, ignoring direction.

        Returns an empty list when either entity is missing or no path of at
        most ``max_hops`` relations exists.
        """
        tenant = check_tenant(tenant)
        source_id, target_id = check_id(source_id, "source_id"), check_id(target_id, "target_id")
        max_hops = _bounded(max_hops, "max_hops", 1, MAX_PATH_HOPS)
        limit = _bounded(limit, "limit", 1, MAX_PATHS)
        self._require_open()
        if source_id == target_id:
            return [Path([found], []) for found in self._get_entities(tenant, [source_id])]
        paths = self._shortest_paths(tenant, source_id, target_id, max_hops, limit)
        return sorted(paths, key=lambda p: [e.id for e in p.entities] + [r.id for r in p.relations])

    def counts(self, tenant: str | None = None) -> GraphCounts:
        """How many entities, relations, mentions and chunks one tenant (or all) holds."""
        if tenant is not None:
            tenant = check_tenant(tenant)
        self._require_open()
        return self._counts(tenant)

    def probe(self) -> None:
        """Write, read, traverse and delete a tiny graph; raise ``JanusError`` on any mismatch.

        Goes through the public methods, so validation is exercised too, under
        the reserved tenant ``_doctor`` with IDs unique to this run: a probe
        never touches a real tenant's data and leaves nothing behind.
        """
        self._require_open()
        run = uuid.uuid4().hex
        a, b = (
            Entity(f"probe-{run}-{side}", PROBE_TENANT, f"probe {side}", "PROBE", {"run": run})
            for side in ("a", "b")
        )
        edge = Relation(PROBE_TENANT, a.id, b.id, "PROBES", (f"probe-{run}",))
        where = f"graph probe ({self.backend} at {self.url.redacted})"
        try:
            self.upsert_entities([a, b])
            self.upsert_relations([edge])
            back = self.get_entities(PROBE_TENANT, [a.id, b.id])
            if back != [a, b]:
                raise JanusError(f"{where}: wrote {[a, b]!r} but read back {back!r}")
            paths = self.shortest_paths(PROBE_TENANT, b.id, a.id, max_hops=2, limit=1)
            if [[r.id for r in p.relations] for p in paths] != [[edge.id]]:
                raise JanusError(f"{where}: no path along the probe relation {edge.id}")
        finally:
            self.delete_entities(PROBE_TENANT, [a.id, b.id])
        if self.get_entities(PROBE_TENANT, [a.id, b.id]):
            raise JanusError(f"{where}: the probe entities survived their deletion")

    # -- the core each backend implements ---------------------------------------

    def _upsert_entities(self, entities: list[Entity]) -> None:
        raise NotImplementedError

    def _upsert_relations(self, relations: list[Relation]) -> set[tuple[str, str]]:
        """Write the relations whose endpoints exist; return the missing (tenant, entity id)s."""
        raise NotImplementedError

    def _add_mentions(self, mentions: list[Mention]) -> set[tuple[str, str]]:
        """Write the mentions whose entities exist; return the missing (tenant, entity id)s."""
        raise NotImplementedError

    def _remove_chunks(self, tenant: str, chunk_ids: list[str]) -> None:
        raise NotImplementedError

    def _delete_entities(self, tenant: str, ids: list[str]) -> None:
        raise NotImplementedError

    def _footprint(self, tenant: str, doc_id: str) -> DocumentFootprint:
        raise NotImplementedError

    def _rewrite_support(self, tenant: str, relations: list[Relation]) -> None:
        """Store each relation's chunk_ids as given; delete those left with none."""
        raise NotImplementedError

    def _get_entities(self, tenant: str, ids: list[str]) -> list[Entity]:
        raise NotImplementedError

    def _neighbourhood(self, tenant: str, seeds: list[str], hops: int, limit: int) -> Subgraph:
        raise NotImplementedError

    def _relations_between(self, tenant: str, pairs: list[tuple[str, str]]) -> list[Relation]:
        raise NotImplementedError

    def _shortest_paths(
        self, tenant: str, source_id: str, target_id: str, max_hops: int, limit: int
    ) -> list[Path]:
        raise NotImplementedError

    def _counts(self, tenant: str | None) -> GraphCounts:
        raise NotImplementedError


def open(url: SlotURL) -> GraphStore:
    """Construct (not yet open) the graph backend for ``url``'s scheme."""
    return load_backend(url, BACKENDS, GraphStore)


def _batch(items: Sequence[_T], kind: type[_T], what: str) -> list[_T]:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidInputError(
            f"graph: {what} must be a list of {kind.__name__}, got {type(items).__name__}"
        )
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise InvalidInputError(
                f"graph: {what}[{i}] must be a {kind.__name__}, got {type(item).__name__}"
            )
    for tenant in {item.tenant for item in items}:
        check_tenant(tenant)
    return list(items)


def _merge_relations(relations: list[Relation]) -> list[Relation]:
    """Fold repeats of one relation in a batch into one row: chunks unite, the last wins."""
    merged: dict[str, Relation] = {}
    for relation in relations:
        seen = merged.get(relation.id)
        if seen is None or set(seen.chunk_ids) <= set(relation.chunk_ids):
            merged[relation.id] = relation
        else:
            merged[relation.id] = with_chunk_ids(relation, seen.chunk_ids + relation.chunk_ids)
    return list(merged.values())


def _is_pair(pair: object, index: int) -> bool:
    if isinstance(pair, tuple | list) and len(pair) == 2:
        return True
    raise InvalidInputError(f"graph: pairs[{index}] must be a (source_id, target_id) pair")


def _bounded(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInputError(
            f"graph: {what} must be an integer from {low} to {high}, got {value!r}"
        )
    return value


def _sample(missing: set[tuple[str, str]], shown: int = 10) -> str:
    names = [f"{tenant}/{eid}" for tenant, eid in sorted(missing)]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
