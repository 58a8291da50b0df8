"""The graph core in openCypher, shared by the server backends (Neo4j, FalkorDB).

A backend supplies one method, ``_run(query, params) -> list[dict]``, plus
its connection and schema set-up; dialect differences are class attributes
a backend overrides, not copies of the logic. Every value reaches the
server as a parameter. The only text spliced into a query is a hop count,
an integer the slot has already bounded, because Cypher cannot take a
variable-length bound as a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from janus_stack.slots.graph import GraphStore
from janus_stack.slots.graph.types import (
    DocumentFootprint,
    Entity,
    GraphCounts,
    Mention,
    Path,
    Relation,
    Subgraph,
    restore_entity,
    restore_relation,
)

_ENTITY = "{id: n.id, name: n.name, type: n.type, properties: n.properties}"
_RELATION = (
    "{id: r.id, source: startNode(r).id, target: endNode(r).id, type: r.type, "
    "chunk_ids: r.chunk_ids, properties: r.properties}"
)

# One breadth-first layer: expand the last frontier, keep only unseen
# entities, and cut the frontier to the room left under $limit so a hub can
# never blow the result (or the work) past the limit.
_HOP = """
WITH seen, frontier
UNWIND CASE WHEN size(frontier) = 0 THEN [null] ELSE frontier END AS x
OPTIONAL MATCH (x)-[:RELATED]-(y:Entity)
WITH seen, collect(DISTINCT y) AS found
WITH seen, [y IN found WHERE NOT y IN seen] AS fresh
WITH seen, fresh[..CASE WHEN $limit > size(seen) THEN $limit - size(seen) ELSE 0 END] AS frontier
WITH seen + frontier AS seen, frontier
"""


class CypherGraph(GraphStore):
    """``GraphStore`` core for servers that speak openCypher."""

    upsert_entities_query: ClassVar[str] = """
        UNWIND $rows AS row
        MERGE (e:Entity {tenant: row.tenant, id: row.id})
        SET e.name = row.name, e.type = row.type, e.properties = row.properties
    """
    upsert_relations_query: ClassVar[str] = """
        UNWIND $rows AS row
        MATCH (a:Entity {tenant: row.tenant, id: row.source})
        MATCH (b:Entity {tenant: row.tenant, id: row.target})
        MERGE (a)-[r:RELATED {id: row.id}]->(b)
        ON CREATE SET r.tenant = row.tenant, r.chunk_ids = row.chunk_ids
        ON MATCH SET r.chunk_ids = r.chunk_ids + [c IN row.chunk_ids WHERE NOT c IN r.chunk_ids]
        SET r.type = row.type, r.properties = row.properties
        RETURN count(r) AS written
    """
    add_mentions_query: ClassVar[str] = """
        UNWIND $rows AS row
        MATCH (e:Entity {tenant: row.tenant, id: row.entity_id})
        MERGE (c:Chunk {tenant: row.tenant, id: row.chunk_id})
        SET c.doc_id = row.doc_id
        MERGE (c)-[:MENTIONS]->(e)
        RETURN count(*) AS written
    """
    missing_entities_query: ClassVar[str] = """
        UNWIND $keys AS k
        OPTIONAL MATCH (e:Entity {tenant: k.tenant, id: k.id})
        WITH k, e WHERE e IS NULL
        RETURN k.tenant AS tenant, k.id AS id
    """
    remove_chunks_query: ClassVar[str] = """
        UNWIND $ids AS cid
        MATCH (c:Chunk {tenant: $tenant, id: cid})
        DETACH DELETE c
    """
    delete_entities_query: ClassVar[str] = """
        UNWIND $ids AS eid
        MATCH (e:Entity {tenant: $tenant, id: eid})
        DETACH DELETE e
    """
    get_entities_query: ClassVar[str] = """
        UNWIND $ids AS eid
        MATCH (n:Entity {tenant: $tenant, id: eid})
        RETURN n.id AS id, n.name AS name, n.type AS type, n.properties AS properties
    """
    document_mentions_query: ClassVar[str] = """
        MATCH (c:Chunk {tenant: $tenant, doc_id: $doc_id})
        OPTIONAL MATCH (c)-[:MENTIONS]->(e:Entity)
        RETURN c.id AS chunk, e.id AS entity
    """
    supported_relations_query: ClassVar[str] = f"""
        MATCH ()-[r:RELATED]->()
        WHERE r.tenant = $tenant AND any(c IN r.chunk_ids WHERE c IN $chunks)
        RETURN {_RELATION} AS relation
    """
    entity_support_query: ClassVar[str] = """
        UNWIND $ids AS eid
        MATCH (e:Entity {tenant: $tenant, id: eid})
        OPTIONAL MATCH (e)-[r:RELATED]-()
        WITH e, collect(r.id) AS edges
        OPTIONAL MATCH (c:Chunk)-[:MENTIONS]->(e) WHERE c.doc_id <> $doc_id
        RETURN e.id AS id, edges, count(c) AS elsewhere
    """
    delete_relations_query: ClassVar[str] = """
        UNWIND $ids AS rid
        MATCH ()-[r:RELATED {id: rid}]->()
        WHERE r.tenant = $tenant
        DELETE r
    """
    set_support_query: ClassVar[str] = """
        UNWIND $rows AS row
        MATCH ()-[r:RELATED {id: row.id}]->()
        WHERE r.tenant = $tenant
        SET r.chunk_ids = row.chunk_ids
    """
    relations_between_query: ClassVar[str] = f"""
        UNWIND $pairs AS pair
        MATCH (a:Entity {{tenant: $tenant, id: pair[0]}})
              -[r:RELATED]->(b:Entity {{tenant: $tenant, id: pair[1]}})
        RETURN {_RELATION} AS relation
    """
    neighbourhood_seeds: ClassVar[str] = """
        UNWIND $ids AS sid
        MATCH (s:Entity {tenant: $tenant, id: sid})
        WITH collect(s)[..$limit] AS seen
        WITH seen, seen AS frontier
    """
    # Lists, not maps: every map key is one more value for the client to parse.
    neighbourhood_result: ClassVar[str] = """
        UNWIND range(0, size(seen) - 1) AS rank
        WITH seen, rank, seen[rank] AS n
        OPTIONAL MATCH (n)-[r:RELATED]->(m:Entity) WHERE m IN seen
        RETURN rank, n.id AS id, n.name AS name, n.type AS type, n.properties AS properties,
               collect(CASE WHEN r IS NULL THEN null
                       ELSE [r.id, m.id, r.type, r.chunk_ids, r.properties] END) AS relations
    """
    shortest_paths_query: ClassVar[str] = f"""
        MATCH (a:Entity {{tenant: $tenant, id: $source}})
        MATCH (b:Entity {{tenant: $tenant, id: $target}})
        WITH a, b
        MATCH p = allShortestPaths((a)-[:RELATED*1..{{hops}}]-(b))
        RETURN [n IN nodes(p) | {_ENTITY}] AS entities,
               [r IN relationships(p) | {_RELATION}] AS relations
        LIMIT $limit
    """
    count_queries: ClassVar[Mapping[str, str]] = {
        "entities": "MATCH (n:Entity) WHERE $tenant IS NULL OR n.tenant = $tenant "
        "RETURN count(n) AS n",
        "relations": "MATCH ()-[r:RELATED]->() WHERE $tenant IS NULL OR r.tenant = $tenant "
        "RETURN count(r) AS n",
        "mentions": "MATCH (c:Chunk)-[m:MENTIONS]->() WHERE $tenant IS NULL OR c.tenant = $tenant "
        "RETURN count(m) AS n",
        "chunks": "MATCH (c:Chunk) WHERE $tenant IS NULL OR c.tenant = $tenant "
        "RETURN count(c) AS n",
    }

    def _run(self, query: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Run one parameterised query (one transaction) and return its rows as dicts."""
        raise NotImplementedError

    # -- writes ---------------------------------------------------------------

    def _upsert_entities(self, entities: list[Entity]) -> None:
        rows = [
            {
                "tenant": e.tenant,
                "id": e.id,
                "name": e.name,
                "type": e.type,
                "properties": e.properties_json,
            }
            for e in entities
        ]
        self._run(self.upsert_entities_query, {"rows": rows})

    def _upsert_relations(self, relations: list[Relation]) -> set[tuple[str, str]]:
        rows = [
            {
                "id": r.id,
                "tenant": r.tenant,
                "source": r.source_id,
                "target": r.target_id,
                "type": r.type,
                "chunk_ids": list(r.chunk_ids),
                "properties": r.properties_json,
            }
            for r in relations
        ]
        written = self._run(self.upsert_relations_query, {"rows": rows})
        if written and written[0]["written"] == len(rows):
            return set()
        ends = {(r.tenant, end) for r in relations for end in (r.source_id, r.target_id)}
        return self._missing(ends)

    def _add_mentions(self, mentions: list[Mention]) -> set[tuple[str, str]]:
        rows = [
            {
                "tenant": m.tenant,
                "chunk_id": m.chunk_id,
                "doc_id": m.doc_id,
                "entity_id": m.entity_id,
            }
            for m in mentions
        ]
        written = self._run(self.add_mentions_query, {"rows": rows})
        if written and written[0]["written"] == len(rows):
            return set()
        return self._missing({(m.tenant, m.entity_id) for m in mentions})

    def _missing(self, keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
        params = {"keys": [{"tenant": tenant, "id": eid} for tenant, eid in sorted(keys)]}
        rows = self._run(self.missing_entities_query, params)
        return {(row["tenant"], row["id"]) for row in rows}

    def _remove_chunks(self, tenant: str, chunk_ids: list[str]) -> None:
        self._run(self.remove_chunks_query, {"tenant": tenant, "ids": chunk_ids})

    def _delete_entities(self, tenant: str, ids: list[str]) -> None:
        self._run(self.delete_entities_query, {"tenant": tenant, "ids": ids})

    def _rewrite_support(self, tenant: str, relations: list[Relation]) -> None:
        dropped = [r.id for r in relations if not r.chunk_ids]
        kept = [{"id": r.id, "chunk_ids": list(r.chunk_ids)} for r in relations if r.chunk_ids]
        if dropped:
            self._run(self.delete_relations_query, {"tenant": tenant, "ids": dropped})
        if kept:
            self._run(self.set_support_query, {"tenant": tenant, "rows": kept})

    # -- reads ----------------------------------------------------------------

    def _footprint(self, tenant: str, doc_id: str) -> DocumentFootprint:
        base = {"tenant": tenant, "doc_id": doc_id}
        chunks: set[str] = set()
        touched: set[str] = set()
        mentions = 0
        for row in self._run(self.document_mentions_query, base):
            chunks.add(row["chunk"])
            if row["entity"] is not None:
                touched.add(row["entity"])
                mentions += 1
        relations: list[Relation] = []
        if chunks:
            params = {**base, "chunks": sorted(chunks)}
            for row in self._run(self.supported_relations_query, params):
                relations.append(_relation(tenant, row["relation"]))
                touched.update((relations[-1].source_id, relations[-1].target_id))
        elsewhere: set[str] = set()
        edges: dict[str, frozenset[str]] = {}
        if touched:
            params = {**base, "ids": sorted(touched)}
            for row in self._run(self.entity_support_query, params):
                edges[row["id"]] = frozenset(row["edges"])
                if row["elsewhere"]:
                    elsewhere.add(row["id"])
        return DocumentFootprint(
            chunk_ids=frozenset(chunks),
            mentions=mentions,
            relations=relations,
            touched=frozenset(edges),
            mentioned_elsewhere=frozenset(elsewhere),
            edges=edges,
        )

    def _get_entities(self, tenant: str, ids: list[str]) -> list[Entity]:
        rows = self._run(self.get_entities_query, {"tenant": tenant, "ids": ids})
        return [_entity(tenant, row) for row in rows]

    def _relations_between(self, tenant: str, pairs: list[tuple[str, str]]) -> list[Relation]:
        rows = self._run(
            self.relations_between_query, {"tenant": tenant, "pairs": [list(p) for p in pairs]}
        )
        return [_relation(tenant, row["relation"]) for row in rows]

    def _neighbourhood(self, tenant: str, seeds: list[str], hops: int, limit: int) -> Subgraph:
        query = self.neighbourhood_seeds + _HOP * hops + self.neighbourhood_result
        rows = self._run(query, {"tenant": tenant, "ids": seeds, "limit": limit})
        rows.sort(key=lambda row: int(row["rank"]))
        entities = [_entity(tenant, row) for row in rows]
        relations = [
            restore_relation(
                id=rid,
                tenant=tenant,
                source_id=row["id"],
                target_id=target,
                type=kind,
                chunk_ids=chunks,
                properties=props,
            )
            for row in rows
            for rid, target, kind, chunks, props in filter(None, row["relations"])
        ]
        return Subgraph(entities, relations)

    def _shortest_paths(
        self, tenant: str, source_id: str, target_id: str, max_hops: int, limit: int
    ) -> list[Path]:
        query = self.shortest_paths_query.replace("{hops}", str(int(max_hops)))
        params = {"tenant": tenant, "source": source_id, "target": target_id, "limit": limit}
        return [
            Path(
                [_entity(tenant, node) for node in row["entities"]],
                [_relation(tenant, rel) for rel in row["relations"]],
            )
            for row in self._run(query, params)
        ]

    def _counts(self, tenant: str | None) -> GraphCounts:
        found = {
            name: int(self._run(query, {"tenant": tenant})[0]["n"])
            for name, query in self.count_queries.items()
        }
        return GraphCounts(**found)


def _entity(tenant: str, row: Mapping[str, Any]) -> Entity:
    return restore_entity(row["id"], tenant, row["name"], row["type"], row["properties"])


def _relation(tenant: str, row: Mapping[str, Any]) -> Relation:
    return restore_relation(
        id=row["id"],
        tenant=tenant,
        source_id=row["source"],
        target_id=row["target"],
        type=row["type"],
        chunk_ids=row["chunk_ids"],
        properties=row["properties"],
    )
