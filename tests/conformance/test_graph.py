"""Graph slot conformance: one suite, the same assertions on every backend.

Backends: ladybug (embedded, a fresh file per test), FalkorDB (a real
server started for the session, a fresh named graph per test) and Neo4j
when ``JANUS_TEST_NEO4J_URL`` points at a server (fresh tenants per test,
their nodes deleted afterwards). Every test uses tenants unique to it, so
it also holds on a shared server.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _falkordb_server import falkordb_server
from falkordb import FalkorDB

from conftest import free_port, service_missing
from janus_stack.errors import (
    ClosedError,
    InvalidInputError,
    NotFoundError,
    SlotUnavailableError,
    SlotURLError,
)
from janus_stack.slots import graph
from janus_stack.slots.graph import Entity, GraphStore, Mention, Relation, RemovalReport
from janus_stack.urls import SlotURL

NEO4J_ENV = "JANUS_TEST_NEO4J_URL"


@pytest.fixture(scope="session")
def falkordb_port() -> Iterator[int]:
    try:
        with falkordb_server() as port:
            yield port
    except RuntimeError as exc:
        service_missing(str(exc))


@pytest.fixture(params=["ladybug", "ladybug-bulk", "falkordb", "neo4j"])
def graph_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "ladybug":
        yield f"ladybug://{tmp_path}/graph.lbug"
    elif request.param == "ladybug-bulk":  # every write through COPY, however small
        yield f"ladybug://{tmp_path}/graph.lbug?bulk_threshold=1"
    elif request.param == "falkordb":
        port: int = request.getfixturevalue("falkordb_port")
        name = f"janus_test_{uuid.uuid4().hex[:12]}"
        yield f"falkordb://127.0.0.1:{port}?graph={name}"
        client = FalkorDB(host="127.0.0.1", port=port)
        if name in client.list_graphs():
            client.select_graph(name).delete()
        client.close()
    else:
        url = os.environ.get(NEO4J_ENV)
        if not url:
            pytest.skip(f"Neo4j: set {NEO4J_ENV}=neo4j://user:password@host:7687 to test it")
        yield url


@pytest.fixture
def tenants(graph_url: str) -> Iterator[tuple[str, str]]:
    """Two tenants unique to this test; on Neo4j their data is deleted afterwards."""
    run = uuid.uuid4().hex[:8]
    pair = (f"acme-{run}", f"globex-{run}")
    yield pair
    if graph_url.startswith(("neo4j", "bolt")):
        store = graph.open(SlotURL.parse("graph", graph_url)).open()
        for tenant in pair:
            store._run(  # type: ignore[attr-defined]
                "MATCH (n) WHERE n.tenant = $tenant DETACH DELETE n", {"tenant": tenant}
            )
        store.close()


@pytest.fixture
def store(graph_url: str, tenants: tuple[str, str]) -> Iterator[GraphStore]:
    with graph.open(SlotURL.parse("graph", graph_url)) as opened:
        yield opened


@pytest.fixture
def tenant(tenants: tuple[str, str]) -> str:
    return tenants[0]


def ent(tenant: str, eid: str, name: str | None = None, **props: Any) -> Entity:
    return Entity(eid, tenant, name or eid.upper(), "THING", props)


def rel(tenant: str, src: str, dst: str, *chunks: str, kind: str = "KNOWS") -> Relation:
    return Relation(tenant, src, dst, kind, tuple(chunks))


def chain(store: GraphStore, tenant: str, *ids: str) -> None:
    """Entities ``ids`` joined in a line: ids[0]-ids[1]-...; relation directions alternate."""
    store.upsert_entities([ent(tenant, i) for i in ids])
    pairs = list(itertools.pairwise(ids))
    store.upsert_relations(
        [rel(tenant, *(p if k % 2 == 0 else p[::-1]), "c0") for k, p in enumerate(pairs)]
    )


# -- entities -----------------------------------------------------------------


def test_upsert_entities_is_idempotent_and_updates(store: GraphStore, tenant: str) -> None:
    before = store.counts()
    store.upsert_entities([ent(tenant, "a"), ent(tenant, "b")])
    store.upsert_entities([ent(tenant, "a"), ent(tenant, "b")])
    assert store.counts(tenant).entities == 2
    store.upsert_entities([Entity("a", tenant, "Alpha", "PERSON", {"age": 3, "tags": ["x"]})])
    [a] = store.get_entities(tenant, ["a"])
    assert (a.name, a.type, dict(a.properties)) == ("Alpha", "PERSON", {"age": 3, "tags": ["x"]})
    assert store.counts().entities == before.entities + 2


def test_values_read_back_can_be_changed_and_written(store: GraphStore, tenant: str) -> None:
    store.upsert_entities([Entity("a", tenant, "A", "T", {"n": 1, "deep": {"x": [1, 2]}})])
    [a] = store.get_entities(tenant, ["a"])
    store.upsert_entities([dataclasses.replace(a, name="A2")])
    [a2] = store.get_entities(tenant, ["a"])
    assert (a2.name, dict(a2.properties)) == ("A2", {"n": 1, "deep": {"x": [1, 2]}})


def test_get_entities_keeps_order_and_skips_missing(store: GraphStore, tenant: str) -> None:
    store.upsert_entities([ent(tenant, i) for i in "abc"])
    assert [e.id for e in store.get_entities(tenant, ["c", "zz", "a", "c"])] == ["c", "a"]
    assert store.get_entities(tenant, []) == []


def test_awkward_text_round_trips(store: GraphStore, tenant: str) -> None:
    """Quotes, separators, newlines and non-ASCII survive both small and bulk writes."""
    awkward = ['quo"te', "com,ma", "new\nline", "back\\slash", "[brack]", "ünï ✓", "it's"]
    many = [
        Entity(f"e{i}", tenant, awkward[i % len(awkward)] + str(i), "T", {"v": awkward[i % 7]})
        for i in range(300)
    ]
    store.upsert_entities(many[:5])
    store.upsert_entities(many)
    chunk_ids = tuple(f"c,{w}" for w in awkward if "\n" not in w)
    store.upsert_relations(
        [Relation(tenant, f"e{i}", f"e{i + 1}", "R", chunk_ids) for i in range(299)]
    )
    got = {e.id: e for e in store.get_entities(tenant, [e.id for e in many])}
    assert [got[e.id] for e in many] == many
    sub = store.neighbourhood(tenant, ["e10"], hops=1)
    assert {r.chunk_ids for r in sub.relations} == {tuple(sorted(chunk_ids))}


# -- relations ----------------------------------------------------------------


def test_relation_support_is_merged(store: GraphStore, tenant: str) -> None:
    store.upsert_entities([ent(tenant, "a"), ent(tenant, "b")])
    store.upsert_relations([rel(tenant, "a", "b", "c1")])
    store.upsert_relations([rel(tenant, "a", "b", "c2", "c1")])
    store.upsert_relations([rel(tenant, "a", "b", "c4"), rel(tenant, "a", "b", "c3")])
    sub = store.neighbourhood(tenant, ["a"])
    [r] = sub.relations
    assert r.chunk_ids == ("c1", "c2", "c3", "c4")
    assert (r.source_id, r.target_id, r.id) == ("a", "b", rel(tenant, "a", "b").id)
    assert store.counts(tenant).relations == 1
    store.upsert_relations([Relation(tenant, "a", "b", "KNOWS", (), {"since": 1999})])
    [r] = store.neighbourhood(tenant, ["a"]).relations
    assert (r.chunk_ids, dict(r.properties)) == (("c1", "c2", "c3", "c4"), {"since": 1999})


def test_missing_endpoint_is_not_found_and_the_rest_is_written(
    store: GraphStore, tenant: str
) -> None:
    store.upsert_entities([ent(tenant, "a"), ent(tenant, "b")])
    with pytest.raises(NotFoundError, match="ghost"):
        store.upsert_relations([rel(tenant, "a", "b", "c1"), rel(tenant, "a", "ghost", "c1")])
    assert store.counts(tenant).relations == 1
    assert store.neighbourhood(tenant, ["a"]).relations[0].target_id == "b"


def test_a_batch_of_5000_relations(store: GraphStore, tenant: str) -> None:
    store.upsert_entities([ent(tenant, f"n{i}") for i in range(1000)])
    batch = [
        rel(tenant, f"n{i % 1000}", f"n{(i * 7 + 1) % 1000}", f"c{i % 13}", kind=f"K{i // 1000}")
        for i in range(5000)
    ]
    store.upsert_relations(batch)
    assert store.counts(tenant).relations == len({r.id for r in batch})
    store.upsert_relations([rel(tenant, "n0", "n1", "extra", kind="K0"), *batch[:300]])
    [r] = [r for r in store.neighbourhood(tenant, ["n0"]).relations if r.id == batch[0].id]
    assert r.chunk_ids == ("c0", "extra")
    assert store.counts(tenant).relations == len({r.id for r in batch})


def test_bulk_support_updates_keep_every_relation(store: GraphStore, tenant: str) -> None:
    """Updating many relations of one hub, or a few of them, loses and doubles nothing."""
    store.upsert_entities([ent(tenant, f"n{i}") for i in range(601)])
    spokes = [rel(tenant, "n0", f"n{i}", "c1") for i in range(1, 601)]
    store.upsert_relations(spokes)
    store.upsert_relations([rel(tenant, "n0", f"n{i}", "c2") for i in range(1, 301)])
    store.upsert_relations([rel(tenant, "n0", f"n{i}", "c3") for i in range(1, 101)])
    sub = store.neighbourhood(tenant, ["n0"], limit=1000)
    support = {r.target_id: r.chunk_ids for r in sub.relations}
    assert len(sub.relations) == 600 == store.counts(tenant).relations
    assert support["n1"] == ("c1", "c2", "c3")
    assert support["n200"] == ("c1", "c2")
    assert support["n600"] == ("c1",)


# -- mentions and documents -----------------------------------------------------


def test_mentions_are_idempotent_and_removable(store: GraphStore, tenant: str) -> None:
    store.upsert_entities([ent(tenant, "a"), ent(tenant, "b")])
    mentions = [Mention(tenant, "c1", "d1", "a"), Mention(tenant, "c1", "d1", "b")]
    store.add_mentions([*mentions, Mention(tenant, "c2", "d1", "a")])
    store.add_mentions(mentions)
    counts = store.counts(tenant)
    assert (counts.chunks, counts.mentions) == (2, 3)
    with pytest.raises(NotFoundError, match="nobody"):
        store.add_mentions([Mention(tenant, "c3", "d1", "nobody")])
    store.remove_mentions(tenant, ["c1"])
    counts = store.counts(tenant)
    assert (counts.chunks, counts.mentions, counts.entities) == (1, 1, 2)


def test_mentions_in_bulk(store: GraphStore, tenant: str) -> None:
    store.upsert_entities([ent(tenant, f"e{i}") for i in range(50)])
    mentions = [Mention(tenant, f"c{i % 40}", f"d{i % 4}", f"e{i % 50}") for i in range(600)]
    store.add_mentions(mentions)
    store.add_mentions(mentions[::2])
    counts = store.counts(tenant)
    assert (counts.chunks, counts.mentions) == (40, len(set(mentions)))


def test_remove_document_keeps_what_others_support(store: GraphStore, tenant: str) -> None:
    """Doc 1 and doc 2 share entity S and relation S-T; the rest is exclusive to one."""
    store.upsert_entities([ent(tenant, i) for i in ("s", "t", "x1", "x2", "y", "z1")])
    store.add_mentions(
        [
            Mention(tenant, "d1c1", "d1", "s"),
            Mention(tenant, "d1c1", "d1", "x1"),
            Mention(tenant, "d1c2", "d1", "t"),
            Mention(tenant, "d2c1", "d2", "s"),
            Mention(tenant, "d2c1", "d2", "t"),
            Mention(tenant, "d2c1", "d2", "x2"),
        ]
    )
    store.upsert_relations(
        [
            rel(tenant, "s", "t", "d1c1", "d2c1"),  # shared
            rel(tenant, "s", "x1", "d1c1"),  # doc 1 only
            rel(tenant, "x1", "z1", "d1c2"),  # doc 1 only; z1 is never mentioned
            rel(tenant, "t", "x2", "d2c1"),  # doc 2 only
        ]
    )
    report = store.remove_document(tenant, "d1")
    assert report == RemovalReport(
        chunks=2, mentions=3, relations_removed=2, relations_updated=1, entities_removed=2
    )
    left = {e.id for e in store.get_entities(tenant, ["s", "t", "x1", "x2", "y", "z1"])}
    assert left == {"s", "t", "x2", "y"}
    sub = store.neighbourhood(tenant, ["s"], hops=2)
    assert {(r.source_id, r.target_id, r.chunk_ids) for r in sub.relations} == {
        ("s", "t", ("d2c1",)),
        ("t", "x2", ("d2c1",)),
    }
    assert store.remove_document(tenant, "d1") == RemovalReport(0, 0, 0, 0, 0)
    report = store.remove_document(tenant, "d2")
    assert report == RemovalReport(
        chunks=1, mentions=3, relations_removed=2, relations_updated=0, entities_removed=3
    )
    assert [e.id for e in store.get_entities(tenant, ["s", "t", "x2", "y"])] == ["y"]
    counts = store.counts(tenant)
    assert (counts.entities, counts.relations, counts.mentions, counts.chunks) == (1, 0, 0, 0)


# -- reads ----------------------------------------------------------------------


def test_neighbourhood_by_hops(store: GraphStore, tenant: str) -> None:
    chain(store, tenant, "a", "b", "c", "d", "e")
    store.upsert_entities([ent(tenant, "lonely")])
    one = store.neighbourhood(tenant, ["b"], hops=1)
    assert {e.id for e in one.entities} == {"a", "b", "c"}
    assert {frozenset((r.source_id, r.target_id)) for r in one.relations} == {
        frozenset("ab"),
        frozenset("bc"),
    }
    two = store.neighbourhood(tenant, ["b"], hops=2)
    assert {e.id for e in two.entities} == {"a", "b", "c", "d"}
    assert len(two.relations) == 3
    assert {e.id for e in store.neighbourhood(tenant, ["a", "e"], hops=1).entities} == set("abde")
    limited = store.neighbourhood(tenant, ["c"], hops=3, limit=3)
    assert [e.id for e in limited.entities][:1] == ["c"]
    assert {e.id for e in limited.entities} <= {"b", "c", "d"}
    assert len(limited.entities) == 3
    alone = store.neighbourhood(tenant, ["lonely", "ghost"], hops=2)
    assert ([e.id for e in alone.entities], alone.relations) == (["lonely"], [])
    assert store.neighbourhood(tenant, ["ghost"]).entities == []


def test_relations_between_reads_only_the_asked_edges(store: GraphStore, tenant: str) -> None:
    hub = [ent(tenant, "hub"), *(ent(tenant, f"n{i}") for i in range(30))]
    store.upsert_entities(hub)
    store.upsert_relations([rel(tenant, "hub", f"n{i}", f"c{i}") for i in range(30)])
    store.upsert_relations([rel(tenant, "hub", "n1", "c99", kind="WORKS_WITH")])

    found = store.relations_between(tenant, [("hub", "n1"), ("hub", "n2"), ("n3", "hub")])

    assert {(r.source_id, r.target_id, r.type, r.chunk_ids) for r in found} == {
        ("hub", "n1", "KNOWS", ("c1",)),
        ("hub", "n1", "WORKS_WITH", ("c99",)),
        ("hub", "n2", "KNOWS", ("c2",)),
    }
    assert store.relations_between(tenant, [("ghost", "n1")]) == []
    assert store.relations_between("other-tenant", [("hub", "n1")]) == []
    assert store.relations_between(tenant, []) == []
    with pytest.raises(InvalidInputError):
        store.relations_between(tenant, "hub")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        store.relations_between(tenant, [("hub",)])  # type: ignore[list-item]


def test_shortest_paths(store: GraphStore, tenant: str) -> None:
    chain(store, tenant, "a", "b", "d")
    chain(store, tenant, "a", "c", "d")
    chain(store, tenant, "a", "e", "f", "g", "d")
    paths = store.shortest_paths(tenant, "a", "d")
    assert [[e.id for e in p.entities] for p in paths] == [["a", "b", "d"], ["a", "c", "d"]]
    first = paths[0]
    assert first.hops == 2
    steps = zip(first.entities, first.entities[1:], first.relations, strict=False)
    for left, right, relation in steps:
        assert {relation.source_id, relation.target_id} == {left.id, right.id}
    assert [e.name for e in first.entities] == ["A", "B", "D"]
    assert len(store.shortest_paths(tenant, "a", "d", limit=1)) == 1
    assert store.shortest_paths(tenant, "a", "d", max_hops=1) == []
    assert [[e.id for e in p.entities] for p in store.shortest_paths(tenant, "f", "b")] == [
        ["f", "e", "a", "b"],
        ["f", "g", "d", "b"],
    ]
    [same] = store.shortest_paths(tenant, "a", "a")
    assert ([e.id for e in same.entities], same.relations) == (["a"], [])
    assert store.shortest_paths(tenant, "a", "ghost") == []


def test_counts(store: GraphStore, tenants: tuple[str, str]) -> None:
    a, b = tenants
    before = store.counts()
    for tenant in tenants:
        chain(store, tenant, "x", "y", "z")
    store.add_mentions([Mention(a, "c1", "d1", "x"), Mention(a, "c1", "d1", "y")])
    assert store.counts(a) == graph.GraphCounts(entities=3, relations=2, mentions=2, chunks=1)
    assert store.counts(b) == graph.GraphCounts(entities=3, relations=2, mentions=0, chunks=0)
    after = store.counts()
    assert (after.entities - before.entities, after.relations - before.relations) == (6, 4)
    assert (after.mentions - before.mentions, after.chunks - before.chunks) == (2, 1)


def test_tenants_are_isolated(store: GraphStore, tenants: tuple[str, str]) -> None:
    a, b = tenants
    chain(store, a, "p", "q", "r")
    store.add_mentions([Mention(a, "c1", "doc", "p")])
    store.upsert_entities([ent(b, "p", "B's P")])
    assert store.get_entities(b, ["q", "r"]) == []
    assert [e.name for e in store.get_entities(b, ["p"])] == ["B's P"]
    assert [e.name for e in store.get_entities(a, ["p"])] == ["P"]
    with pytest.raises(NotFoundError):
        store.upsert_relations([rel(b, "p", "q")])
    assert store.neighbourhood(b, ["p"], hops=3).relations == []
    assert store.shortest_paths(b, "p", "r") == []
    assert store.remove_document(b, "doc") == RemovalReport(0, 0, 0, 0, 0)
    store.remove_mentions(b, ["c1"])
    store.delete_entities(b, ["p", "q", "r"])
    assert store.counts(a) == graph.GraphCounts(entities=3, relations=2, mentions=1, chunks=1)
    assert store.counts(b).entities == 0


def test_delete_entities_detaches(store: GraphStore, tenant: str) -> None:
    chain(store, tenant, "a", "b", "c")
    store.add_mentions([Mention(tenant, "c1", "d", "b")])
    store.delete_entities(tenant, ["b", "ghost"])
    counts = store.counts(tenant)
    assert (counts.entities, counts.relations, counts.mentions) == (2, 0, 0)


def test_probe_leaves_no_trace(store: GraphStore) -> None:
    before = store.counts()
    store.probe()
    assert store.counts() == before


# -- misuse -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s, t: s.upsert_entities(ent(t, "a")), "must be a list"),
        (lambda s, t: s.upsert_entities([{"id": "a"}]), r"entities\[0\]"),
        (lambda s, t: s.upsert_entities([ent("bad tenant!", "a")]), "invalid tenant"),
        (lambda s, t: s.upsert_relations([ent(t, "a")]), "must be a Relation"),
        (lambda s, t: s.get_entities(t, "abc"), "list of strings"),
        (lambda s, t: s.get_entities(t, ["a", ""]), r"ids\[1\]"),
        (lambda s, t: s.get_entities("", ["a"]), "invalid tenant"),
        (lambda s, t: s.get_entities(None, ["a"]), "invalid tenant"),
        (lambda s, t: s.delete_entities(t, [1]), "non-empty string"),
        (lambda s, t: s.remove_mentions(t, ["a\x00"]), "control character"),
        (lambda s, t: s.remove_document(t, ""), "doc_id"),
        (lambda s, t: s.neighbourhood(t, ["a"], hops=0), "hops"),
        (lambda s, t: s.neighbourhood(t, ["a"], hops=True), "hops"),
        (lambda s, t: s.neighbourhood(t, ["a"], limit=10**6), "limit"),
        (lambda s, t: s.shortest_paths(t, "a", "b", max_hops=99), "max_hops"),
        (lambda s, t: s.shortest_paths(t, "a", ""), "target_id"),
        (lambda s, t: s.counts("no/slash"), "invalid tenant"),
    ],
)
def test_bad_input_is_invalid_input(store: GraphStore, tenant: str, call: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        call(store, tenant)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Entity("", "t", "n", "T"), "entity id"),
        (lambda: Entity("a", "t", "", "T"), "name"),
        (lambda: Entity("a", "t", "n", "T", {"x": object()}), "JSON"),
        (lambda: Entity("a", "t", "n", "T", ["not", "a", "map"]), "mapping"),  # type: ignore[arg-type]
        (lambda: Relation("t", "a", "b", "R", "c1"), "chunk_ids"),  # type: ignore[arg-type]
        (lambda: Relation("t", "a", "b", "R", ("c1", "")), r"chunk_ids\[1\]"),
        (lambda: Relation("bad tenant", "a", "b", "R"), "invalid tenant"),
        (lambda: Relation("t", "a", "b", 7), "type"),  # type: ignore[arg-type]
        (lambda: Mention("t", "c", "", "e"), "doc_id"),
    ],
)
def test_bad_values_fail_when_built(build: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        build()


def test_use_after_close_is_closed_error(graph_url: str, tenants: tuple[str, str]) -> None:
    store = graph.open(SlotURL.parse("graph", graph_url))
    with pytest.raises(ClosedError):
        store.counts()
    store.open()
    store.close()
    with pytest.raises(ClosedError):
        store.upsert_entities([ent(tenants[0], "a")])
    with pytest.raises(ClosedError):
        store.probe()


def test_unknown_scheme_is_a_url_error() -> None:
    with pytest.raises(SlotURLError, match="accepted: bolt://"):
        graph.open(SlotURL.parse("graph", "memgraph://localhost:7687"))
    assert set(graph.ACCEPTED_SCHEMES) >= {"ladybug", "falkordb", "neo4j", "bolt"}


# -- embedded specifics -------------------------------------------------------------


def test_ladybug_persists_and_allows_one_writer_process(tmp_path: Path) -> None:
    url = SlotURL.parse("graph", f"ladybug://{tmp_path}/g")
    (tmp_path / "g").mkdir()
    with graph.open(url) as first:
        first.upsert_entities([ent("acme", "a")])
        script = (
            "from janus_stack.slots import graph\n"
            "from janus_stack.urls import SlotURL\n"
            f"graph.open(SlotURL.parse('graph', {str(url.raw)!r})).open()\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
        )
        assert other.returncode != 0
        assert "SlotUnavailableError" in other.stderr
        assert f"{tmp_path}/g/graph.lbug is in use by another process" in other.stderr
    with graph.open(url) as again:
        assert [e.id for e in again.get_entities("acme", ["a"])] == ["a"]


def test_ladybug_rejects_a_bad_bulk_threshold(tmp_path: Path) -> None:
    with pytest.raises(SlotURLError, match="bulk_threshold"):
        graph.open(SlotURL.parse("graph", f"ladybug://{tmp_path}/g?bulk_threshold=0"))


def test_unreachable_falkordb_is_unavailable() -> None:
    url = SlotURL.parse("graph", f"falkordb://:secret@127.0.0.1:{free_port()}?graph=g")
    with pytest.raises(SlotUnavailableError, match=r"falkordb at falkordb://:\*\*\*@127"):
        graph.open(url).open()


def test_unreachable_neo4j_is_unavailable() -> None:
    url = SlotURL.parse("graph", f"bolt://neo4j:secret@127.0.0.1:{free_port()}?database=x")
    store = graph.open(url)
    assert store.database == "x"  # type: ignore[attr-defined]
    with pytest.raises(SlotUnavailableError, match=r"neo4j at bolt://neo4j:\*\*\*@127"):
        store.open()
