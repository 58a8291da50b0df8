"""Embedded backend: ``ladybug:///abs/path`` (ladybug, the Kuzu-lineage embedded Cypher engine).

Ladybug needs typed tables with a one-column primary key, so nodes are keyed
``tenant:id`` (tenants never contain ``:``): two tenants may use one id
without sharing a node. The URL names the database file, or a folder that
holds ``graph.lbug``; ``?bulk_threshold=N`` tunes the write path and
``?buffer_pool_mb=N`` the memory it may cache (default 256). One
process may open a database for writing at a time.

Writes follow measurements (2 cores, 5k entities, 15k relations):
``UNWIND ... CREATE`` with list rows is fast for small batches, ``COPY``
from a CSV file wins from about 2,000 rows (15k relations in ~130 ms), and
updating relationships is the slow part (a SET whose ``UNWIND`` row
predicate touches relationships degrades quadratically). So an upsert reads
what its endpoints and sources already hold, skips rows that change
nothing, inserts new rows with CREATE or COPY, and updates changed ones
either by rewriting their sources' relationships (delete + COPY, when that
is not much more work) or by one SET that finds its values by position in
flat list parameters. A write of several statements is one transaction; a
single statement runs alone (an explicit transaction slows a lone COPY).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from janus_stack.slots.graph.ladybug_engine import LadybugEngine, Step
from janus_stack.slots.graph.types import (
    DocumentFootprint,
    Entity,
    GraphCounts,
    Mention,
    Path,
    Relation,
    Subgraph,
    entity_from_row,
    relation_from_row,
)

SEP = "\x1f"  # joins chunk ids into one CSV/param string; IDs never hold control characters
_SPLIT = f"CASE WHEN {{0}} = '' THEN CAST([] AS STRING[]) ELSE string_split({{0}}, '{SEP}') END"
_COPY_RELATED = (
    "COPY RELATED FROM (LOAD WITH HEADERS (src STRING, dst STRING, id STRING, tenant STRING, "
    "type STRING, chunks STRING, props STRING) FROM {file} (HEADER=false, PARALLEL=false) "
    "RETURN src, dst, id, tenant, type, " + _SPLIT.format("coalesce(chunks, '')") + ", props)"
)
_CREATE_RELATED = (
    "UNWIND $rows AS r MATCH (a:Entity {key: r[1]}) MATCH (b:Entity {key: r[2]}) "
    "CREATE (a)-[:RELATED {id: r[3], tenant: r[4], type: r[5], "
    "chunk_ids: " + _SPLIT.format("r[6]") + ", properties: r[7]}]->(b)"
)
# Rows are looked up by position in flat list parameters: a predicate on
# parameters only keeps the planner on the source's adjacency list.
_SOURCES = "UNWIND $keys AS k MATCH (a:Entity {key: k})-[x:RELATED]->(b:Entity) "
_SET_RELATED = (
    _SOURCES + "WITH x, list_position($ids, x.id) AS i WHERE i > 0 "
    "SET x.type = $types[i], x.properties = $props[i], x.chunk_ids = " + _SPLIT.format("$chunks[i]")
)
_ENTITY = "n.id, n.name, n.type, n.properties"
_COLUMNS = {
    "Entity": ("key", "id", "tenant", "name", "type", "properties"),
    "Chunk": ("key", "id", "tenant", "doc_id"),
}
_CREATE_MENTIONS = (
    "UNWIND $rows AS r MATCH (c:Chunk {key: r[1]}) MATCH (e:Entity {key: r[2]}) "
    "CREATE (c)-[:MENTIONS]->(e)"
)
# Entities within {hops} of the seeds, nearest first. One seed is matched
# directly (0.3 ms); for several, OPTIONAL MATCH from bound seeds keeps the
# breadth-first search single-source, where a plain MATCH of the same
# pattern is planned over every node (measured: 1 ms vs 600 ms). Hop counts
# and limits are spliced in as validated integers: as parameters, a LIMIT
# costs ladybug a millisecond per query and a hop bound is not allowed.
_REACH_ONE = (
    "MATCH (s:Entity {{key: $key}})-[p:RELATED* SHORTEST 1..{hops}]-(n:Entity) "
    "RETURN n.key, length(p) AS d ORDER BY d, n.key LIMIT {limit}"
)
_REACH_MANY = (
    "UNWIND $keys AS k MATCH (s:Entity {{key: k}}) "
    "OPTIONAL MATCH (s)-[p:RELATED* SHORTEST 1..{hops}]-(n:Entity) "
    "RETURN n.key, min(length(p)) AS d ORDER BY d, n.key LIMIT {limit}"
)
_UPDATE_CHUNK = 1_000  # positional lookups are linear in the list: keep lists short


def _key(tenant: str, item_id: str) -> str:
    return f"{tenant}:{item_id}"


def _unkey(key: str) -> tuple[str, str]:
    tenant, _, item_id = key.partition(":")
    return tenant, item_id


def _row(r: Relation, chunks: Iterable[str]) -> list[str]:
    """A RELATED row as COPY and CREATE take it."""
    source, target = _key(r.tenant, r.source_id), _key(r.tenant, r.target_id)
    return [source, target, r.id, r.tenant, r.type, SEP.join(chunks), r.properties_json]


class LadybugGraph(LadybugEngine):
    """The graph slot in an embedded ladybug database (the default)."""

    backend: ClassVar[str] = "ladybug"
    embedded: ClassVar[bool] = True
    single_writer: ClassVar[bool] = True
    hint: ClassVar[str] = "check that the path is writable and no other process holds it"

    def _lookup(self, table: str, keys: Iterable[str], *columns: str) -> dict[str, list[Any]]:
        """Stored ``columns`` of the ``table`` rows that exist among ``keys``."""
        wanted = "".join(f", n.{c}" for c in columns)
        query = f"UNWIND $keys AS k MATCH (n:{table} {{key: k}}) RETURN n.key{wanted}"
        return {row[0]: row[1:] for row in self._q(query, {"keys": sorted(set(keys))})}

    def _nodes(self, table: str, rows: dict[str, list[str]], *updatable: str) -> list[Step]:
        """Steps creating the ``rows`` (key → row in ``_COLUMNS`` order) not stored yet and
        updating the ``updatable`` columns of those that changed."""
        picks = [_COLUMNS[table].index(c) for c in updatable]
        stored = self._lookup(table, rows, *updatable)
        changed = [[k, *(row[i] for i in picks)] for k, row in rows.items() if k in stored]
        changed = [row for row in changed if stored[row[0]] != row[1:]]
        sets = ", ".join(f"n.{c} = r[{i}]" for i, c in enumerate(updatable, 2))
        steps = self._each(f"UNWIND $rows AS r MATCH (n:{table} {{key: r[1]}}) SET {sets}", changed)
        return steps + self._insert(table, [row for k, row in rows.items() if k not in stored])

    def _insert(self, table: str, rows: list[list[str]]) -> list[Step]:
        """Create nodes (or MENTIONS when ``table`` is that) from rows in ``_COLUMNS`` order."""
        if len(rows) >= self.bulk_threshold:
            return [self._copy(f"COPY {table} FROM {{file}} (HEADER=false, PARALLEL=false)", rows)]
        if table == "MENTIONS":
            return self._each(_CREATE_MENTIONS, rows)
        fields = ", ".join(f"{c}: r[{i}]" for i, c in enumerate(_COLUMNS[table], 1))
        return self._each(f"UNWIND $rows AS r CREATE (:{table} {{{fields}}})", rows)

    def _missing(self, keys: set[str]) -> set[str]:
        """The entity keys that do not exist; counts first, as returned rows cost ~15 µs each."""
        found = self._q(
            "UNWIND $keys AS k MATCH (n:Entity {key: k}) RETURN count(*)", {"keys": list(keys)}
        )
        if found[0][0] == len(keys):
            return set()
        return keys - self._lookup("Entity", keys).keys()

    # -- writes ---------------------------------------------------------------

    def _upsert_entities(self, entities: list[Entity]) -> None:
        rows = {
            _key(e.tenant, e.id): [_key(e.tenant, e.id), e.id, e.tenant, e.name, e.type,
                                   e.properties_json]
            for e in entities
        }  # fmt: skip
        with self._lock:
            self._apply(self._nodes("Entity", rows, "name", "type", "properties"))

    def _upsert_relations(self, relations: list[Relation]) -> set[tuple[str, str]]:
        rows = [_row(r, r.chunk_ids) for r in relations]
        with self._lock:
            missing = self._missing({row[0] for row in rows} | {row[1] for row in rows})
            if missing:
                pairs = [(r, row) for r, row in zip(relations, rows, strict=True)
                         if row[0] not in missing and row[1] not in missing]  # fmt: skip
            else:
                pairs = list(zip(relations, rows, strict=True))
            stored = self._outgoing({row[0] for _, row in pairs})
            fresh = [row for _, row in pairs if row[2] not in stored]
            changed: list[list[str]] = []
            for r, row in pairs:
                now = stored.get(row[2])
                if now is not None and row != now:
                    support = set(r.chunk_ids).union(now[5].split(SEP) if now[5] else ())
                    if (merged := _row(r, sorted(support))) != now:
                        changed.append(merged)
            self._apply(self._relation_steps(fresh, changed, stored))
        return {_unkey(key) for key in missing}

    def _outgoing(self, sources: set[str]) -> dict[str, list[str]]:
        """Every relation leaving ``sources``, as rows keyed by relation id."""
        rows = self._q(
            _SOURCES + "RETURN a.key, b.key, x.id, x.tenant, x.type, x.chunk_ids, x.properties",
            {"keys": sorted(sources)},
        )
        return {r[2]: [*r[:5], SEP.join(r[5] or ()), r[6]] for r in rows}

    def _relation_steps(
        self, fresh: list[list[str]], changed: list[list[str]], stored: Mapping[str, list[str]]
    ) -> list[Step]:
        """Insert ``fresh`` rows and replace ``changed`` ones, the cheaper way round."""
        steps: list[Step] = []
        sources = {row[0] for row in changed}
        around = [row for row in stored.values() if row[0] in sources]
        if changed and len(changed) >= self.bulk_threshold and len(around) <= 4 * len(changed):
            replaced = {row[2] for row in changed}
            steps.append(self._stmt(_SOURCES + "DELETE x", {"keys": sorted(sources)}))
            fresh = fresh + changed + [row for row in around if row[2] not in replaced]
        else:
            steps += self._set_relations(changed)
        if len(fresh) >= self.bulk_threshold:
            steps.append(self._copy(_COPY_RELATED, fresh))
        elif fresh:
            steps.append(self._stmt(_CREATE_RELATED, {"rows": fresh}))
        return steps

    def _set_relations(self, rows: list[list[str]]) -> list[Step]:
        steps = []
        for start in range(0, len(rows), _UPDATE_CHUNK):
            columns = list(zip(*rows[start : start + _UPDATE_CHUNK], strict=True))
            params = {"keys": sorted(set(columns[0])), "ids": list(columns[2])}
            params |= {"types": list(columns[4]), "chunks": list(columns[5])}
            steps.append(self._stmt(_SET_RELATED, params | {"props": list(columns[6])}))
        return steps

    def _add_mentions(self, mentions: list[Mention]) -> set[tuple[str, str]]:
        with self._lock:
            missing = self._missing({_key(m.tenant, m.entity_id) for m in mentions})
            pairs = {
                (_key(m.tenant, m.chunk_id), _key(m.tenant, m.entity_id)): m
                for m in mentions
                if _key(m.tenant, m.entity_id) not in missing
            }
            chunks = {c: [c, m.chunk_id, m.tenant, m.doc_id] for (c, _), m in pairs.items()}
            linked = self._q(
                "UNWIND $keys AS k MATCH (c:Chunk {key: k})-[:MENTIONS]->(e:Entity) "
                "RETURN c.key, e.key",
                {"keys": sorted(chunks)},
            )
            fresh = [list(pair) for pair in sorted(pairs.keys() - {(c, e) for c, e in linked})]
            steps = self._nodes("Chunk", chunks, "doc_id") + self._insert("MENTIONS", fresh)
            self._apply(steps)
        return {_unkey(key) for key in missing}

    def _remove_chunks(self, tenant: str, chunk_ids: list[str]) -> None:
        keys = [_key(tenant, c) for c in chunk_ids]
        self._q("UNWIND $keys AS k MATCH (c:Chunk {key: k}) DETACH DELETE c", {"keys": keys})

    def _delete_entities(self, tenant: str, ids: list[str]) -> None:
        keys = [_key(tenant, i) for i in ids]
        self._q("UNWIND $keys AS k MATCH (n:Entity {key: k}) DETACH DELETE n", {"keys": keys})

    def _rewrite_support(self, tenant: str, relations: list[Relation]) -> None:
        dropped = [r for r in relations if not r.chunk_ids]
        sources = sorted({_key(tenant, r.source_id) for r in dropped})
        steps = [
            self._stmt(
                _SOURCES + "WHERE list_contains($ids, x.id) DELETE x",
                {"keys": sources, "ids": [r.id for r in dropped]},
            )
        ] if dropped else []  # fmt: skip
        steps += self._set_relations([_row(r, r.chunk_ids) for r in relations if r.chunk_ids])
        with self._lock:
            self._apply(steps)

    # -- reads ----------------------------------------------------------------

    def _footprint(self, tenant: str, doc_id: str) -> DocumentFootprint:
        params = {"tenant": tenant, "doc": doc_id}
        with self._lock:
            rows = self._q(
                "MATCH (c:Chunk) WHERE c.tenant = $tenant AND c.doc_id = $doc "
                "OPTIONAL MATCH (c)-[:MENTIONS]->(e:Entity) RETURN c.id, e.id",
                params,
            )
            chunks = sorted({c for c, _ in rows})
            relations = [
                relation_from_row(tenant, row)
                for row in self._q(
                    "MATCH (a:Entity)-[x:RELATED]->(b:Entity) WHERE x.tenant = $tenant AND "
                    "list_has_any(x.chunk_ids, $chunks) "
                    "RETURN x.id, a.id, b.id, x.type, x.chunk_ids, x.properties",
                    params | {"chunks": chunks},
                )
            ] if chunks else []  # fmt: skip
            touched = {e for _, e in rows if e is not None}
            touched.update(end for r in relations for end in (r.source_id, r.target_id))
            support = self._q(
                "UNWIND $keys AS k MATCH (e:Entity {key: k}) "
                "OPTIONAL MATCH (e)-[x:RELATED]-() RETURN e.id, collect(x.id), "
                "COUNT { MATCH (c:Chunk)-[:MENTIONS]->(e) WHERE c.doc_id <> $doc }",
                params | {"keys": [_key(tenant, e) for e in sorted(touched)]},
            ) if touched else []  # fmt: skip
        return DocumentFootprint(
            chunk_ids=frozenset(chunks),
            mentions=sum(1 for _, e in rows if e is not None),
            relations=relations,
            touched=frozenset(eid for eid, _, _ in support),
            mentioned_elsewhere=frozenset(eid for eid, _, others in support if others),
            edges={eid: frozenset(edges) for eid, edges, _ in support},
        )

    def _get_entities(self, tenant: str, ids: list[str]) -> list[Entity]:
        rows = self._q(
            f"UNWIND $keys AS k MATCH (n:Entity {{key: k}}) RETURN {_ENTITY}",
            {"keys": [_key(tenant, i) for i in ids]},
        )
        return [entity_from_row(tenant, row) for row in rows]

    def _relations_between(self, tenant: str, pairs: list[tuple[str, str]]) -> list[Relation]:
        rows = self._q(
            "UNWIND $pairs AS pair "
            "MATCH (a:Entity {key: pair[1]})-[x:RELATED]->(b:Entity {key: pair[2]}) "
            "RETURN x.id, a.id, b.id, x.type, x.chunk_ids, x.properties",
            {"pairs": [[_key(tenant, a), _key(tenant, b)] for a, b in pairs]},
        )
        return [relation_from_row(tenant, row) for row in rows]

    def _neighbourhood(self, tenant: str, seeds: list[str], hops: int, limit: int) -> Subgraph:
        keys = [_key(tenant, s) for s in seeds]
        with self._lock:
            reach = _REACH_ONE if len(keys) == 1 else _REACH_MANY
            reached = self._q(
                reach.format(hops=int(hops), limit=int(limit) + len(keys)),
                {"key": keys[0]} if len(keys) == 1 else {"keys": keys},
            )
            seeds_set = set(keys)
            keys += [key for key, _ in reached if key is not None and key not in seeds_set]
            rows = self._q(
                "UNWIND $keys AS k MATCH (n:Entity {key: k}) "
                "OPTIONAL MATCH (n)-[x:RELATED]->(m:Entity) WHERE list_contains($keys, m.key) "
                f"RETURN {_ENTITY}, x.id, m.id, x.type, x.chunk_ids, x.properties",
                {"keys": keys},
            )
        # Seeds come first, then the nearest; missing seeds leave room for more.
        rank = {key: i for i, key in enumerate(keys)}
        rows.sort(key=lambda row: rank[_key(tenant, row[0])])
        entities: dict[str, Entity] = {}
        for row in rows:
            if row[0] not in entities and len(entities) < limit:
                entities[row[0]] = entity_from_row(tenant, row[:4])
        relations = [
            relation_from_row(tenant, (r[4], r[0], *r[5:]))
            for r in rows
            if r[4] is not None and r[0] in entities and r[5] in entities
        ]
        return Subgraph(list(entities.values()), relations)

    def _shortest_paths(
        self, tenant: str, source_id: str, target_id: str, max_hops: int, limit: int
    ) -> list[Path]:
        rows = self._q(
            "MATCH p = (a:Entity {key: $source})"
            f"-[:RELATED* ALL SHORTEST 1..{int(max_hops)}]-(b:Entity {{key: $target}}) "
            f"RETURN nodes(p), rels(p) LIMIT {int(limit)}",
            {"source": _key(tenant, source_id), "target": _key(tenant, target_id)},
        )
        return [_path(tenant, nodes, rels) for nodes, rels in rows]

    def _counts(self, tenant: str | None) -> GraphCounts:
        where = "" if tenant is None else "WHERE n.tenant = $tenant "
        params = {} if tenant is None else {"tenant": tenant}

        def count(pattern: str) -> int:
            return int(self._q(f"MATCH {pattern} {where}RETURN count(*)", params)[0][0])

        return GraphCounts(
            entities=count("(n:Entity)"),
            relations=count("(:Entity)-[n:RELATED]->(:Entity)"),
            mentions=count("(n:Chunk)-[:MENTIONS]->(:Entity)"),
            chunks=count("(n:Chunk)"),
        )


def _path(tenant: str, nodes: list[dict[str, Any]], rels: list[dict[str, Any]]) -> Path:
    """A Path from ladybug's path structs, whose relationships name ends by internal id."""
    ids = {(n["_ID"]["table"], n["_ID"]["offset"]): n["id"] for n in nodes}
    ends = [[ids[r[side]["table"], r[side]["offset"]] for side in ("_SRC", "_DST")] for r in rels]
    return Path(
        [
            entity_from_row(tenant, [n[c] for c in ("id", "name", "type", "properties")])
            for n in nodes
        ],
        [
            relation_from_row(tenant, [r["id"], *ab, r["type"], r["chunk_ids"], r["properties"]])
            for r, ab in zip(rels, ends, strict=True)
        ],
    )
