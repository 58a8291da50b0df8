"""Graph slot: Janus vs. the raw client for the write path and a 2-hop read.

Write: 5,000 entities then 15,000 relations into an empty graph. The raw
side does the fastest load each engine offers its client: for ladybug,
CSV files and ``COPY`` (not even an upsert: it would fail on a re-run); for
FalkorDB, which has no client-side bulk load, the same ``UNWIND ... MERGE``
statements any upsert needs. Janus pays for what makes its writes safe:
input checks, the lookup of stored rows that turns a load into an
idempotent upsert (with merged chunk support), endpoint checks. A second
ladybug row compares with the raw idempotent upsert, ``UNWIND ... MERGE``.

Read: the 2-hop neighbourhood of 200 random entities (entities, nearest
first, up to 100, plus the relations among them). The raw side runs the
best of two query shapes per engine and keeps the rows as the client
returns them; Janus also builds ``Entity``/``Relation`` values (parsing
their JSON properties).

Both sides run in the same process, alternately, best of five. Run:
``python -m benchmarks.slot_graph``.
"""

from __future__ import annotations

import csv
import importlib.util
import pathlib
import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import ladybug as lb
from falkordb import FalkorDB

from benchmarks._common import BenchRow, ops_per_second
from janus_stack.slots import graph
from janus_stack.slots.graph import Entity, GraphStore, Relation
from janus_stack.urls import SlotURL

ENTITIES = 5_000
RELATIONS = 15_000
READS = 200
REPEAT = 5
TENANT = "bench"
WRITE_OP = f"upsert {ENTITIES // 1000}k entities + {RELATIONS // 1000}k relations"
READ_OP = "2-hop neighbourhood"
SERVER_HELPER = pathlib.Path(__file__).parents[1] / "tests" / "conformance" / "_falkordb_server.py"
LADYBUG_SCHEMA = (
    "CREATE NODE TABLE Entity(key STRING PRIMARY KEY, id STRING, tenant STRING, name STRING, "
    "type STRING, properties STRING)",
    "CREATE NODE TABLE Chunk(key STRING PRIMARY KEY, id STRING, tenant STRING, doc_id STRING)",
    "CREATE REL TABLE MENTIONS(FROM Chunk TO Entity)",
    "CREATE REL TABLE RELATED(FROM Entity TO Entity, id STRING, tenant STRING, type STRING, "
    "chunk_ids STRING[], properties STRING)",
)
# The raw idempotent upsert: what a client must run to get Janus's semantics
# without its lookup-then-COPY path.
LADYBUG_MERGE_ENTITIES = (
    "UNWIND $rows AS r MERGE (n:Entity {key: r[1]}) "
    "SET n.tenant = r[2], n.id = r[3], n.name = r[4], n.type = r[5], n.properties = r[6]"
)
LADYBUG_MERGE_RELATIONS = (
    "UNWIND $rows AS r MATCH (a:Entity {key: r[1]}) MATCH (b:Entity {key: r[2]}) "
    "MERGE (a)-[x:RELATED {id: r[3]}]->(b) "
    "ON CREATE SET x.tenant = r[4], x.type = r[5], x.chunk_ids = string_split(r[6], ','), "
    "x.properties = r[7] "
    "ON MATCH SET x.type = r[5], x.properties = r[7], "
    "x.chunk_ids = list_distinct(list_concat(x.chunk_ids, string_split(r[6], ',')))"
)
LADYBUG_REACH = (
    "MATCH (s:Entity {key: $key})-[p:RELATED* SHORTEST 1..2]-(n:Entity) "
    "RETURN n.key, length(p) AS d ORDER BY d, n.key LIMIT 100",
    "MATCH (s:Entity {key: $key})-[:RELATED*1..2]-(n:Entity) RETURN DISTINCT n.key LIMIT 100",
)
LADYBUG_INDUCED = (
    "UNWIND $keys AS k MATCH (n:Entity {key: k}) "
    "OPTIONAL MATCH (n)-[x:RELATED]->(m:Entity) WHERE list_contains($keys, m.key) "
    "RETURN n.id, n.name, n.type, n.properties, x.id, m.id, x.type, x.chunk_ids, x.properties"
)
FALKOR_INDEXES = (
    "CREATE INDEX FOR (e:Entity) ON (e.id)",
    "CREATE INDEX FOR ()-[r:RELATED]-() ON (r.id)",
)
FALKOR_ENTITIES = (
    "UNWIND $rows AS row MERGE (e:Entity {tenant: row.tenant, id: row.id}) "
    "SET e.name = row.name, e.type = row.type, e.properties = row.properties"
)
FALKOR_RELATIONS = (
    "UNWIND $rows AS row "
    "MATCH (a:Entity {tenant: row.tenant, id: row.source}) "
    "MATCH (b:Entity {tenant: row.tenant, id: row.target}) "
    "MERGE (a)-[r:RELATED {id: row.id}]->(b) "
    "ON CREATE SET r.tenant = row.tenant, r.chunk_ids = row.chunk_ids "
    "ON MATCH SET r.chunk_ids = r.chunk_ids + [c IN row.chunk_ids WHERE NOT c IN r.chunk_ids] "
    "SET r.type = row.type, r.properties = row.properties"
)
FALKOR_READS = (
    # Variable-length expansion, then the relations among the entities found.
    "MATCH (s:Entity {tenant: $tenant, id: $id})-[:RELATED*0..2]-(n:Entity) "
    "WITH DISTINCT n LIMIT 100 WITH collect(n) AS ns UNWIND ns AS n "
    "OPTIONAL MATCH (n)-[r:RELATED]->(m:Entity) WHERE m IN ns "
    "RETURN n.id, n.name, n.type, n.properties, collect([r.id, m.id, r.type, r.chunk_ids, "
    "r.properties])",
    # One hop at a time (Janus's own shape, bounded by the limit).
    "MATCH (s:Entity {tenant: $tenant, id: $id}) WITH [s] AS seen, [s] AS frontier "
    "UNWIND frontier AS x OPTIONAL MATCH (x)-[:RELATED]-(y:Entity) "
    "WITH seen, [y IN collect(DISTINCT y) WHERE NOT y IN seen][..99] AS frontier "
    "WITH seen + frontier AS seen, frontier "
    "UNWIND CASE WHEN size(frontier) = 0 THEN [null] ELSE frontier END AS x "
    "OPTIONAL MATCH (x)-[:RELATED]-(y:Entity) "
    "WITH seen, [y IN collect(DISTINCT y) WHERE NOT y IN seen] AS fresh "
    "WITH seen + fresh[..CASE WHEN 100 > size(seen) THEN 100 - size(seen) ELSE 0 END] AS seen "
    "UNWIND seen AS n OPTIONAL MATCH (n)-[r:RELATED]->(m:Entity) WHERE m IN seen "
    "RETURN n.id, n.name, n.type, n.properties, collect([r.id, m.id, r.type, r.chunk_ids, "
    "r.properties])",
)


class Data:
    """One random graph shared by both sides, built outside the timings."""

    def __init__(self, seed: int = 11) -> None:
        rng = random.Random(seed)
        kinds = ("PERSON", "ORG", "PLACE")
        self.entities = [
            Entity(f"e{i}", TENANT, f"Entity {i}", kinds[i % 3], {"rank": i})
            for i in range(ENTITIES)
        ]
        pairs: set[tuple[int, int]] = set()
        while len(pairs) < RELATIONS:
            a, b = rng.randrange(ENTITIES), rng.randrange(ENTITIES)
            if a != b:
                pairs.add((a, b))
        self.relations = [
            Relation(TENANT, f"e{a}", f"e{b}", "RELATES", (f"chunk{a % 997}",), {"w": k % 7})
            for k, (a, b) in enumerate(sorted(pairs))
        ]
        self.seeds = [f"e{rng.randrange(ENTITIES)}" for _ in range(READS)]

    def entity_rows(self) -> list[dict[str, str]]:
        return [
            {"tenant": e.tenant, "id": e.id, "name": e.name, "type": e.type,
             "properties": e.properties_json}
            for e in self.entities
        ]  # fmt: skip

    def relation_rows(self) -> list[dict[str, Any]]:
        return [
            {"id": r.id, "tenant": r.tenant, "source": r.source_id, "target": r.target_id,
             "type": r.type, "chunk_ids": list(r.chunk_ids), "properties": r.properties_json}
            for r in self.relations
        ]  # fmt: skip


def _interleaved(
    janus: Callable[[], object], raw: Callable[[], object], operations: int
) -> tuple[float, float]:
    """Best of REPEAT single runs, alternating sides so load drifts hit both alike."""
    best_janus = best_raw = 0.0
    for _ in range(REPEAT):
        best_janus = max(best_janus, ops_per_second(janus, operations, repeat=1))
        best_raw = max(best_raw, ops_per_second(raw, operations, repeat=1))
    return best_janus, best_raw


def _janus_side(stores: list[GraphStore], data: Data) -> tuple[Callable[[], None], ...]:
    fresh = iter(stores)

    def write() -> None:
        store = next(fresh)
        store.upsert_entities(data.entities)
        store.upsert_relations(data.relations)

    def read() -> None:
        for seed in data.seeds:
            stores[0].neighbourhood(TENANT, [seed], hops=2)

    return write, read


# -- ladybug --------------------------------------------------------------------


def _ladybug(workdir: pathlib.Path, data: Data) -> list[BenchRow]:
    stores = [
        graph.open(SlotURL.parse("graph", f"ladybug://{workdir}/janus-{i}.lbug")).open()
        for i in range(REPEAT)
    ]
    raws = [lb.Database(str(workdir / f"raw-{i}.lbug")) for i in range(REPEAT)]
    conns = [lb.Connection(db) for db in raws]
    for conn in conns:
        for statement in LADYBUG_SCHEMA:
            conn.execute(statement)
    fresh = iter(conns)
    entity_rows, relation_rows = data.entity_rows(), data.relation_rows()

    def raw_write() -> None:
        conn = next(fresh)
        entities, relations = workdir / "entities.csv", workdir / "relations.csv"
        with entities.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(
                [f"{e['tenant']}:{e['id']}", e["id"], e["tenant"], e["name"], e["type"],
                 e["properties"]] for e in entity_rows
            )  # fmt: skip
        conn.execute(f"COPY Entity FROM '{entities}' (HEADER=false, PARALLEL=false)")
        with relations.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(
                [f"{r['tenant']}:{r['source']}", f"{r['tenant']}:{r['target']}", r["id"],
                 r["tenant"], r["type"], "[" + ",".join(r["chunk_ids"]) + "]", r["properties"]]
                for r in relation_rows
            )  # fmt: skip
        conn.execute(f"COPY RELATED FROM '{relations}' (HEADER=false)")

    def raw_reader(reach: str) -> Callable[[], None]:
        def read() -> None:
            for seed in data.seeds:
                key = f"{TENANT}:{seed}"
                found = _all(conns[0], reach, {"key": key})
                keys = [key] + [row[0] for row in found]
                _all(conns[0], LADYBUG_INDUCED, {"keys": keys})

        return read

    merge_db = lb.Database(str(workdir / "raw-merge.lbug"))
    merge_conn = lb.Connection(merge_db)
    for statement in LADYBUG_SCHEMA:
        merge_conn.execute(statement)
    merge_entities = [[f"{TENANT}:{e['id']}", *e.values()] for e in entity_rows]
    merge_relations = [
        [f"{TENANT}:{r['source']}", f"{TENANT}:{r['target']}", r["id"], r["tenant"], r["type"],
         ",".join(r["chunk_ids"]), r["properties"]]
        for r in relation_rows
    ]  # fmt: skip

    def raw_merge() -> None:
        merge_conn.execute(LADYBUG_MERGE_ENTITIES, {"rows": merge_entities})
        merge_conn.execute(LADYBUG_MERGE_RELATIONS, {"rows": merge_relations})

    janus_write, janus_read = _janus_side(stores, data)
    rows = [_write_row("ladybug", janus_write, raw_write)]
    merge = ops_per_second(raw_merge, ENTITIES + RELATIONS, repeat=1)
    rows.append(
        BenchRow("graph", "ladybug", WRITE_OP + " (raw MERGE)", rows[0].batch,
                 rows[0].janus_ops_s, merge)
    )  # fmt: skip
    rows.append(_read_row("ladybug", janus_read, [raw_reader(q) for q in LADYBUG_REACH]))
    for store in stores:
        store.close()
    for conn, db in zip([*conns, merge_conn], [*raws, merge_db], strict=True):
        conn.close()
        db.close()
    return rows


def _all(conn: lb.Connection, query: str, params: dict[str, Any]) -> list[Any]:
    result = conn.execute(query, params)
    assert not isinstance(result, list)  # one statement, one result
    return result.get_all()


# -- FalkorDB -------------------------------------------------------------------


def _falkordb(port: int, data: Data) -> list[BenchRow]:
    url = f"falkordb://127.0.0.1:{port}?graph=janus_bench_{{}}"
    stores = [graph.open(SlotURL.parse("graph", url.format(i))).open() for i in range(REPEAT)]
    client = FalkorDB(host="127.0.0.1", port=port)
    raws = [client.select_graph(f"raw_bench_{i}") for i in range(REPEAT)]
    for raw in raws:
        for statement in FALKOR_INDEXES:
            raw.query(statement)
    fresh = iter(raws)
    entity_rows, relation_rows = data.entity_rows(), data.relation_rows()

    def raw_write() -> None:
        raw = next(fresh)
        raw.query(FALKOR_ENTITIES, {"rows": entity_rows})
        raw.query(FALKOR_RELATIONS, {"rows": relation_rows})

    def raw_reader(query: str) -> Callable[[], None]:
        def read() -> None:
            for seed in data.seeds:
                raws[0].query(query, {"tenant": TENANT, "id": seed}).result_set  # noqa: B018

        return read

    janus_write, janus_read = _janus_side(stores, data)
    rows = [_write_row("falkordb", janus_write, raw_write)]
    rows.append(_read_row("falkordb", janus_read, [raw_reader(q) for q in FALKOR_READS]))
    for store in stores:
        store.close()
    for name in client.list_graphs():
        if name.startswith(("janus_bench_", "raw_bench_")):
            client.select_graph(name).delete()
    client.close()
    return rows


def _write_row(backend: str, janus: Callable[[], None], raw: Callable[[], None]) -> BenchRow:
    janus_ops, raw_ops = _interleaved(janus, raw, ENTITIES + RELATIONS)
    return BenchRow("graph", backend, WRITE_OP, ENTITIES + RELATIONS, janus_ops, raw_ops)


def _read_row(backend: str, janus: Callable[[], None], raws: list[Callable[[], None]]) -> BenchRow:
    best_janus = best_raw = 0.0
    for work in (janus, *raws):  # warm caches and prepared statements on both sides
        work()
    for raw in raws:
        janus_ops, raw_ops = _interleaved(janus, raw, READS)
        best_janus, best_raw = max(best_janus, janus_ops), max(best_raw, raw_ops)
    return BenchRow("graph", backend, READ_OP, 1, best_janus, best_raw)


def _falkordb_server() -> AbstractContextManager[int]:
    spec = importlib.util.spec_from_file_location("_falkordb_server", SERVER_HELPER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server: Callable[[], AbstractContextManager[int]] = module.falkordb_server
    return server()


def run(workdir: pathlib.Path) -> list[BenchRow]:
    data = Data()
    rows = _ladybug(workdir, data)
    with _falkordb_server() as port:
        rows += _falkordb(port, data)
    return rows


def _print(rows: Iterator[BenchRow] | list[BenchRow]) -> None:
    for row in rows:
        print(
            f"{row.backend:9} {row.operation:38} batch={row.batch:<6} "
            f"janus={row.janus_ops_s:>10,.0f}/s raw={row.raw_ops_s:>10,.0f}/s "
            f"ratio={row.ratio:.2f}"
        )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="janus-bench-graph-") as tmp:
        _print(run(pathlib.Path(tmp)))
