"""The ingestion pipeline in-process: failures, idempotency, deletes, events, crash windows.

Every test runs the real stack (MiniLM embedder, Qdrant Edge, ladybug, the
SQLite ledger, the directory object store) on a handful of one-chunk
documents and then holds every projection against the ledger with
:func:`check_stores` — the ledger is the source of truth, so the vector
index, the graph and the object store must match it exactly: nothing
missing, nothing doubled, nothing orphaned.

Crash windows are simulated by raising a ``BaseException`` at a stage
boundary (what a ``kill -9`` at that instant leaves behind, minus the
torn writes); ``tests/ingest/test_crash.py`` kills real processes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select

from janus_stack import ids
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.events import EventLog
from janus_stack.events.chain import EventRecord
from janus_stack.ingest import projection
from janus_stack.ingest.documents import DocumentLedger, document_key
from janus_stack.ingest.pipeline import IngestOptions, Ingestor, IngestReport
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.removal import delete_document
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import (
    Chunk,
    Document,
    DocumentVersion,
    Entity,
    IngestionStage,
    Mention,
    Relation,
    RelationSupport,
)
from janus_stack.ops.inventory import list_documents, show_document, stats
from janus_stack.slots.graph import GraphCounts
from janus_stack.slots.vectors import VectorFilter
from janus_stack.urls import SlotURL
from services import (  # noqa: F401 - fixtures
    falkordb_url_fixture,
    moto_client_fixture,
    moto_endpoint_fixture,
    s3_url_fixture,
)

TENANT = "default"
BASE_STAGES = frozenset({"store", "extract", "chunk", "embed", "index", "graph"})

DOC_A = (
    "Alice Johnson joined Acme Corporation in London. "
    "Alice Johnson met Viktor Petrov at Acme Corporation.\n"
)
DOC_B = (
    "Alice Johnson works with Maria Garcia at Globex Industries in Paris. "
    "Alice Johnson met Viktor Petrov in Paris.\n"
)
PEOPLE = ("Alice Johnson", "Robert Smith", "Maria Garcia", "David Chen", "Sarah Miller")
ORGS = ("Acme Corporation", "Globex Industries", "Initech", "Umbrella Group")
CITIES = ("London", "Paris", "Berlin", "Tokyo")


# -- helpers -------------------------------------------------------------------


def paragraph(i: int, variant: str = "") -> str:
    """A short, one-chunk text with people, an organisation and a place in it."""
    rng = random.Random(i)
    person, other = rng.sample(PEOPLE, 2)
    org, city = rng.choice(ORGS), rng.choice(CITIES)
    return (
        f"Report {i}{variant}. {person} joined {org} in {city} as head of research. "
        f"{other} works with {person} at {org}.\n\n"
        f"In a later note, {other} said that {org} would open an office in {city}.\n"
    )


def write_corpus(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = folder / f"doc{i:02d}.txt"
        path.write_text(paragraph(i), encoding="utf-8")
        files.append(path)
    return files


@functools.cache
def shared_extractor() -> SpacyEntityExtractor:
    """One spaCy pipeline for the whole session: loading it is the slow part."""
    return SpacyEntityExtractor()


def make_ingestor(janus: Janus, *, entities: bool = True, **options: Any) -> Ingestor:
    """An ``Ingestor`` on the context's embedder and the shared entity extractor."""
    ingestor = Ingestor(janus, janus.embedder, IngestOptions(entities=entities, **options))
    if entities:
        ingestor.projector.extractor = shared_extractor()
    return ingestor


def ingest(janus: Janus, files: list[Path], **options: Any) -> IngestReport:
    return make_ingestor(janus, **options).ingest(files, tenant=TENANT)


def statuses(report: IngestReport) -> dict[str, str]:
    return {Path(outcome.path).name: outcome.status for outcome in report.files}


def doc_key(path: Path) -> str:
    return document_key(TENANT, str(path.resolve()), "")


def current_version(janus: Janus, path: Path) -> dict[str, Any]:
    data = show_document(janus, TENANT, doc_key(path))
    return next(v for v in data["versions"] if v["id"] == data["current_version_id"])


def points_by_id(janus: Janus, tenant: str = TENANT) -> dict[str, tuple[dict[str, Any], tuple]]:
    """Every point of the tenant: id → (payload, rounded vector)."""
    return {
        hit.id: (hit.payload, tuple(round(x, 6) for x in hit.vector or ()))
        for hit in janus.vectors.iter_points(VectorFilter(tenant=tenant), with_vectors=True)
    }


def ledger_chunks(janus: Janus, doc_id: str) -> set[str]:
    with janus.ledger.session() as session:
        return set(session.scalars(select(Chunk.id).where(Chunk.doc_id == doc_id)))


def vector_ids(janus: Janus, doc_id: str, tenant: str = TENANT) -> set[str]:
    flt = VectorFilter(tenant=tenant, equals={"doc_id": doc_id})
    return {hit.id for hit in janus.vectors.iter_points(flt)}


def graph_relations(janus: Janus, entity_ids: list[str]) -> dict[str, set[str]]:
    """relation id → supporting chunk ids, for the relations around ``entity_ids``."""
    present = [e.id for e in janus.graph.get_entities(TENANT, entity_ids)]
    if not present:
        return {}
    sub = janus.graph.neighbourhood(TENANT, present, hops=1, limit=1000)
    return {r.id: set(r.chunk_ids) for r in sub.relations}


def document_events(janus: Janus, tenant: str = TENANT) -> list[EventRecord]:
    return janus.events.query(tenant=tenant, type="document.*", limit=10_000)


def check_stores(janus: Janus, tenant: str = TENANT, *, entities: bool = True) -> dict[str, int]:
    """Assert that every projection holds exactly what the ledger says; return the counts.

    * no version is left pending/running; the done versions are exactly the
      current versions of the live documents, with every stage done;
    * the ledger's chunks belong to live doc_ids only, and for each live doc_id
      the chunk ids are exactly the vector point ids (no duplicate, no
      missing, no orphan point), payload ids agreeing;
    * mentions and relation supports point at live doc_ids and existing
      chunks; every entity is still supported;
    * the graph holds the ledger's entities, relations (with the same
      supporting chunks), mentions and chunk nodes;
    * the object store holds exactly the objects the live versions reference.
    """
    with janus.ledger.session() as session:
        versions = session.execute(
            select(
                DocumentVersion.id,
                DocumentVersion.document_id,
                DocumentVersion.doc_id,
                DocumentVersion.object_key,
                DocumentVersion.status,
            ).where(DocumentVersion.tenant_id == tenant)
        ).all()
        documents = session.execute(
            select(Document.id, Document.status, Document.current_version_id).where(
                Document.tenant_id == tenant
            )
        ).all()
        chunk_rows = session.execute(
            select(Chunk.id, Chunk.doc_id).where(Chunk.tenant_id == tenant)
        ).all()
        stage_rows = session.execute(
            select(IngestionStage.version_id, IngestionStage.stage)
            .join(DocumentVersion, DocumentVersion.id == IngestionStage.version_id)
            .where(DocumentVersion.tenant_id == tenant, IngestionStage.status == "done")
        ).all()
        entity_ids = set(session.scalars(select(Entity.id).where(Entity.tenant_id == tenant)))
        relation_rows = session.execute(
            select(Relation.id, Relation.source_entity_id, Relation.target_entity_id).where(
                Relation.tenant_id == tenant
            )
        ).all()
        mention_rows = session.execute(
            select(Mention.chunk_id, Mention.entity_id, Mention.doc_id).where(
                Mention.tenant_id == tenant
            )
        ).all()
        support_rows = session.execute(
            select(RelationSupport.relation_id, RelationSupport.chunk_id, RelationSupport.doc_id)
            .join(Relation, Relation.id == RelationSupport.relation_id)
            .where(Relation.tenant_id == tenant)
        ).all()

    unfinished = sorted(v.id for v in versions if v.status in ("pending", "running"))
    assert not unfinished, f"versions left unfinished: {unfinished}"
    done = {v.id: v for v in versions if v.status == "done"}
    current = {d.current_version_id for d in documents if d.status == "done"}
    assert set(done) == current, "done versions differ from the live documents' current ones"

    stages: dict[int, set[str]] = defaultdict(set)
    for version_id, stage in stage_rows:
        stages[version_id].add(stage)
    wanted = BASE_STAGES | ({"entities"} if entities else set())
    incomplete = {vid: sorted(wanted - stages[vid]) for vid in done if wanted - stages[vid]}
    assert not incomplete, f"done versions with stages not done: {incomplete}"

    live_doc_ids = {v.doc_id for v in done.values()}
    chunks: dict[str, set[str]] = defaultdict(set)
    for chunk_id, doc_id in chunk_rows:
        chunks[doc_id].add(chunk_id)
    assert set(chunks) - live_doc_ids == set(), "ledger chunks of doc_ids no live version holds"
    assert live_doc_ids - set(chunks) == set(), "live doc_ids without chunks"

    points = list(janus.vectors.iter_points(VectorFilter(tenant=tenant)))
    point_ids = [p.id for p in points]
    duplicates = [pid for pid, n in Counter(point_ids).items() if n > 1]
    assert not duplicates, f"duplicate points: {duplicates}"
    by_doc: dict[str, set[str]] = defaultdict(set)
    for point in points:
        assert point.payload["chunk_id"] == point.id
        assert point.payload["tenant"] == tenant
        by_doc[point.payload["doc_id"]].add(point.id)
    assert dict(by_doc) == dict(chunks), "vector points differ from the ledger's chunks"

    all_chunks = {chunk_id for chunk_id, _ in chunk_rows}
    assert {m.doc_id for m in mention_rows} <= live_doc_ids, "mentions of dead doc_ids"
    assert {m.chunk_id for m in mention_rows} <= all_chunks, "mentions of missing chunks"
    assert {s.doc_id for s in support_rows} <= live_doc_ids, "supports of dead doc_ids"
    assert {s.chunk_id for s in support_rows} <= all_chunks, "supports of missing chunks"
    supported = {m.entity_id for m in mention_rows} | {
        end for r in relation_rows for end in (r.source_entity_id, r.target_entity_id)
    }
    assert entity_ids <= supported, f"entities nothing supports: {entity_ids - supported}"
    unsupported = {r.id for r in relation_rows} - {s.relation_id for s in support_rows}
    assert not unsupported, f"relations nothing supports: {unsupported}"

    expected = GraphCounts(
        entities=len(entity_ids),
        relations=len(relation_rows),
        mentions=len({(m.chunk_id, m.entity_id) for m in mention_rows}),
        chunks=len({m.chunk_id for m in mention_rows}),
    )
    assert janus.graph.counts(tenant) == expected, "graph counts differ from the ledger's"
    if entity_ids:
        found = {e.id for e in janus.graph.get_entities(tenant, sorted(entity_ids))}
        assert found == entity_ids, "graph entities differ from the ledger's"
        if len(entity_ids) <= 1000:
            sub = janus.graph.neighbourhood(tenant, sorted(entity_ids), hops=1, limit=1000)
            support: dict[str, set[str]] = defaultdict(set)
            for relation_id, chunk_id, _doc_id in support_rows:
                support[relation_id].add(chunk_id)
            assert {r.id: set(r.chunk_ids) for r in sub.relations} == dict(support)

    live_keys = {v.object_key for v in done.values()}
    stored = {info.key for info in janus.objects.list(tenant=tenant)}
    assert live_keys - stored == set(), f"referenced objects missing: {live_keys - stored}"
    assert stored - live_keys == set(), f"objects no live version references: {stored - live_keys}"

    return {
        "documents": len(current),
        "doc_ids": len(live_doc_ids),
        "chunks": len(chunk_rows),
        "points": len(points),
        "entities": len(entity_ids),
        "relations": len(relation_rows),
        "mentions": len(mention_rows),
        "objects": len(stored),
    }


def check_events(janus: Janus, tenant: str = TENANT) -> None:
    """Each live document version was announced exactly once, and the chain is intact."""
    with janus.ledger.session() as session:
        live = dict(
            session.execute(
                select(Document.id, Document.current_version_id).where(
                    Document.tenant_id == tenant, Document.status == "done"
                )
            ).all()
        )
    announced = Counter(
        (event.subject, event.payload["version_id"])
        for event in document_events(janus, tenant)
        if event.type in ("document.ingested", "document.updated")
    )
    doubled = {key: n for key, n in announced.items() if n > 1}
    assert not doubled, f"versions announced more than once: {doubled}"
    silent = {doc: vid for doc, vid in live.items() if announced[(doc, vid)] != 1}
    assert not silent, f"live document versions without an ingested/updated event: {silent}"
    report = janus.events.verify()
    assert report.ok, report


@pytest.fixture(params=["embedded", "server"])
def janus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Janus]:
    """The embedded defaults, or every server backend this machine can run.

    Server: PostgreSQL ledger, S3 objects (moto's server), the Qdrant server
    adapter (qdrant-client, local mode), FalkorDB graph and a Redis cache.
    """
    if request.param == "embedded":
        with Janus(load_settings()) as opened:
            yield opened
        return
    ledger_url: str = request.getfixturevalue("pg_database")
    with Ledger(SlotURL.parse("relational", ledger_url)) as ledger:
        migrations.upgrade(ledger)
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"janus_pipeline_{uuid.uuid4().hex[:8]}"
    graph_url: str = request.getfixturevalue("falkordb_url")
    overrides = {
        "relational_url": ledger_url,
        "objects_url": request.getfixturevalue("s3_url"),
        "vectors_url": f"qdrant+local://{tmp_path}/qdrant?collection={prefix}",
        "graph_url": graph_url.split("?", maxsplit=1)[0] + f"?graph={prefix}",
        "cache_url": f"{redis_url}?prefix={prefix}",
    }
    try:
        with Janus(load_settings(overrides)) as opened:
            yield opened
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


# -- idempotency -------------------------------------------------------------------


def test_ingest_twice_gives_identical_stats_points_and_events(janus: Janus, tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "docs", 5)
    first = ingest(janus, files)
    assert set(statuses(first).values()) == {"ingested"}
    assert first.as_dict()["summary"]["documents"] == 5
    counts = check_stores(janus)
    assert counts["documents"] == 5 and counts["entities"] > 0 and counts["relations"] > 0
    before_stats, before_points = stats(janus), points_by_id(janus)
    before_events = [e.seq for e in document_events(janus)]
    assert len(before_events) == 5

    second = ingest(janus, files)

    assert set(statuses(second).values()) == {"unchanged"}
    assert second.as_dict()["summary"] == {
        "files": 5,
        "documents": 0,
        "chunks": 0,
        "unchanged": 5,
    }
    assert stats(janus) == before_stats
    assert points_by_id(janus) == before_points
    assert [e.seq for e in document_events(janus)] == before_events
    assert make_ingestor(janus).resume() == 0
    assert check_stores(janus) == counts
    check_events(janus)


def test_changed_file_replaces_only_its_own_chunks_and_points(janus: Janus, tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "docs", 4)
    ingest(janus, files)
    changed = files[1]
    old = current_version(janus, changed)
    old_chunks = ledger_chunks(janus, old["doc_id"])
    assert old_chunks and vector_ids(janus, old["doc_id"]) == old_chunks
    before = points_by_id(janus)
    others = {pid: point for pid, point in before.items() if pid not in old_chunks}

    changed.write_text(paragraph(1, variant=" (revised)"), encoding="utf-8")
    report = ingest(janus, files)

    assert statuses(report) == {
        "doc00.txt": "unchanged",
        "doc01.txt": "ingested",
        "doc02.txt": "unchanged",
        "doc03.txt": "unchanged",
    }
    new = current_version(janus, changed)
    assert new["version"] == 2 and new["doc_id"] != old["doc_id"]
    history = show_document(janus, TENANT, doc_key(changed))["versions"]
    assert [(v["version"], v["status"]) for v in history] == [(1, "superseded"), (2, "done")]
    after = points_by_id(janus)
    # The other documents' points are untouched: same ids, payloads and vectors.
    assert {pid: after[pid] for pid in others} == others
    new_chunks = ledger_chunks(janus, new["doc_id"])
    assert set(after) == set(others) | new_chunks
    assert not old_chunks & set(after)
    assert not ledger_chunks(janus, old["doc_id"])
    assert vector_ids(janus, old["doc_id"]) == set()
    assert not janus.objects.exists(old["object_key"])
    assert janus.objects.exists(new["object_key"])
    updated = [e for e in document_events(janus) if e.type == "document.updated"]
    assert len(updated) == 1
    assert updated[0].subject == doc_key(changed)
    assert updated[0].payload["replaced_doc_id"] == old["doc_id"]
    assert updated[0].payload["doc_id"] == new["doc_id"]
    assert check_stores(janus)["documents"] == 4
    check_events(janus)


# -- contribution-aware deletes ----------------------------------------------------


def test_delete_keeps_shared_entities_with_updated_support_and_drops_exclusive_ones(
    janus: Janus, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(DOC_A, encoding="utf-8")
    b.write_text(DOC_B, encoding="utf-8")
    ingest(janus, [a, b])
    check_stores(janus)
    alice = ids.entity_id(TENANT, "Alice Johnson", "PERSON")
    viktor = ids.entity_id(TENANT, "Viktor Petrov", "PERSON")
    acme = ids.entity_id(TENANT, "Acme Corporation", "ORG")
    london = ids.entity_id(TENANT, "London", "GPE")
    met = ids.relation_id(TENANT, alice, "MET", viktor)
    joined = ids.relation_id(TENANT, alice, "JOINED", acme)
    va, vb = current_version(janus, a), current_version(janus, b)
    (chunk_a,) = ledger_chunks(janus, va["doc_id"])
    (chunk_b,) = ledger_chunks(janus, vb["doc_id"])
    everyone = [alice, viktor, acme, london]
    assert [e.id for e in janus.graph.get_entities(TENANT, everyone)] == everyone
    relations = graph_relations(janus, everyone)
    assert relations[met] == {chunk_a, chunk_b}
    assert relations[joined] == {chunk_a}

    report = delete_document(janus, TENANT, doc_key(a))

    assert report.doc_ids_removed == [va["doc_id"]]
    assert report.doc_ids_kept == []
    assert report.objects_removed == [va["object_key"]]
    assert [e.id for e in janus.graph.get_entities(TENANT, everyone)] == [alice, viktor]
    relations = graph_relations(janus, everyone)
    assert relations[met] == {chunk_b}, "the shared relation keeps only b's support"
    assert joined not in relations
    with janus.ledger.session() as session:
        assert set(session.scalars(select(Entity.id).where(Entity.id.in_(everyone)))) == {
            alice,
            viktor,
        }
        alice_docs = set(session.scalars(select(Mention.doc_id).where(Mention.entity_id == alice)))
        assert alice_docs == {vb["doc_id"]}
        met_chunks = set(
            session.scalars(
                select(RelationSupport.chunk_id).where(RelationSupport.relation_id == met)
            )
        )
        assert met_chunks == {chunk_b}
        assert session.get(Relation, joined) is None
    assert vector_ids(janus, va["doc_id"]) == set()
    assert vector_ids(janus, vb["doc_id"]) == {chunk_b}
    assert not janus.objects.exists(va["object_key"])
    assert janus.objects.exists(vb["object_key"])
    assert [d["source"] for d in list_documents(janus, TENANT)] == [str(b.resolve())]
    deleted = [e for e in document_events(janus) if e.type == "document.deleted"]
    assert [(e.subject, e.payload["doc_ids_removed"]) for e in deleted] == [
        (doc_key(a), [va["doc_id"]])
    ]
    check_stores(janus)
    check_events(janus)

    # Ingesting the deleted file again brings back exactly what it contributed.
    assert statuses(ingest(janus, [a, b])) == {"a.txt": "ingested", "b.txt": "unchanged"}
    assert [e.id for e in janus.graph.get_entities(TENANT, everyone)] == everyone
    assert graph_relations(janus, everyone)[met] == {chunk_a, chunk_b}
    assert check_stores(janus)["documents"] == 2
    check_events(janus)


@pytest.mark.parametrize("together", [True, False], ids=["one-batch", "two-runs"])
def test_identical_bytes_under_two_paths_are_stored_once(
    janus: Janus, tmp_path: Path, together: bool
) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "copy" / "b.txt"
    b.parent.mkdir()
    a.write_text(DOC_A, encoding="utf-8")
    b.write_bytes(a.read_bytes())
    if together:
        ingest(janus, [a, b])
    else:
        ingest(janus, [a])
        single = check_stores(janus)
        ingest(janus, [b])
    va, vb = current_version(janus, a), current_version(janus, b)
    assert doc_key(a) != doc_key(b)
    assert va["doc_id"] == vb["doc_id"] and va["object_key"] == vb["object_key"]
    shared = va["doc_id"]
    counts = check_stores(janus)
    assert counts["documents"] == 2
    assert counts["doc_ids"] == 1 and counts["objects"] == 1
    assert counts["points"] == counts["chunks"] == len(ledger_chunks(janus, shared))
    if not together:
        assert {k: v for k, v in counts.items() if k != "documents"} == {
            k: v for k, v in single.items() if k != "documents"
        }
    check_events(janus)
    entities_before = janus.graph.counts(TENANT)

    report = delete_document(janus, TENANT, doc_key(a))

    assert report.doc_ids_removed == [] and report.doc_ids_kept == [shared]
    assert report.objects_removed == []
    assert vector_ids(janus, shared) == ledger_chunks(janus, shared) != set()
    assert janus.objects.exists(vb["object_key"])
    assert janus.graph.counts(TENANT) == entities_before
    assert check_stores(janus)["documents"] == 1

    report = delete_document(janus, TENANT, doc_key(b))

    assert report.doc_ids_removed == [shared] and report.objects_removed == [vb["object_key"]]
    assert check_stores(janus) == dict.fromkeys(counts, 0)
    assert janus.graph.counts(TENANT) == GraphCounts(0, 0, 0, 0)


def test_points_shared_by_two_paths_name_a_live_document_once_one_is_deleted(
    janus: Janus, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(DOC_A, encoding="utf-8")
    b.write_text(DOC_A, encoding="utf-8")
    ingest(janus, [a], entities=False)
    ingest(janus, [b], entities=False)

    delete_document(janus, TENANT, doc_key(a))

    live = {d["id"] for d in list_documents(janus, TENANT)}
    assert live == {doc_key(b)}
    cited = {payload["document_id"] for payload, _ in points_by_id(janus).values()}
    assert cited <= live, "search hits would cite the deleted a.txt"


def test_changing_one_of_two_identical_files_keeps_the_others_contributions(
    janus: Janus, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(DOC_B, encoding="utf-8")
    b.write_text(DOC_B, encoding="utf-8")
    ingest(janus, [a, b], entities=False)
    shared = current_version(janus, b)
    shared_points = {
        pid: point
        for pid, point in points_by_id(janus).items()
        if point[0]["doc_id"] == shared["doc_id"]
    }

    a.write_text(DOC_A, encoding="utf-8")
    ingest(janus, [a, b], entities=False)

    assert current_version(janus, b) == shared
    assert current_version(janus, a)["doc_id"] != shared["doc_id"]
    after = points_by_id(janus)
    assert {pid: after[pid] for pid in shared_points} == shared_points
    assert janus.objects.exists(shared["object_key"])
    assert check_stores(janus, entities=False)["doc_ids"] == 2
    check_events(janus)


def test_changed_multi_document_file_updates_changed_records_and_drops_vanished_ones(
    janus: Janus, tmp_path: Path
) -> None:
    records = tmp_path / "records.jsonl"

    def write(*texts: str) -> None:
        records.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")

    write(paragraph(0), paragraph(1), paragraph(2))
    ingest(janus, [records], entities=False)
    listed = {d["sub_id"]: d for d in list_documents(janus, TENANT)}
    assert sorted(listed) == ["1", "2", "3"]
    before = points_by_id(janus)
    kept = {
        pid: point for pid, point in before.items() if point[0]["doc_id"] == listed["1"]["doc_id"]
    }

    write(paragraph(0), paragraph(1, variant="b"))
    report = ingest(janus, [records], entities=False)

    assert report.files[0].status == "ingested"
    now = {d["sub_id"]: d for d in list_documents(janus, TENANT)}
    assert sorted(now) == ["1", "2"]
    assert now["1"]["doc_id"] == listed["1"]["doc_id"] and now["1"]["version"] == 1
    assert now["2"]["doc_id"] != listed["2"]["doc_id"] and now["2"]["version"] == 2
    after = points_by_id(janus)
    assert {pid: after[pid] for pid in kept} == kept
    assert {p[0]["doc_id"] for p in after.values()} == {now["1"]["doc_id"], now["2"]["doc_id"]}
    types = Counter((e.type, e.subject) for e in document_events(janus))
    assert types[("document.updated", listed["2"]["id"])] == 1
    assert types[("document.deleted", listed["3"]["id"])] == 1
    check_stores(janus, entities=False)
    check_events(janus)

    before_stats = stats(janus)
    again = ingest(janus, [records], entities=False)

    assert not again.failed, again.files
    assert again.as_dict()["summary"]["chunks"] == 0
    assert stats(janus) == before_stats
    assert list_documents(janus, TENANT, status="failed") == []
    check_stores(janus, entities=False)
    check_events(janus)


def test_a_multi_document_file_changed_once_is_unchanged_afterwards(
    janus: Janus, tmp_path: Path
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"text": paragraph(0)}) + "\n", "utf-8")
    ingest(janus, [records], entities=False)
    with records.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": paragraph(1)}) + "\n")
    ingest(janus, [records], entities=False)

    again = ingest(janus, [records], entities=False)

    assert again.files[0].status == "unchanged"
    assert check_stores(janus, entities=False)["objects"] == 1


# -- bad input ---------------------------------------------------------------------


def write_bad_inputs(folder: Path) -> dict[str, Path]:
    """Good and bad files; ``gone.txt`` is named but never created."""
    folder.mkdir()
    rng = random.Random(3)
    files = {
        "good0.txt": paragraph(0).encode(),
        "empty.txt": b"",
        "image.txt": b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(600)),
        "garbled.txt": b"Header line\n" + bytes(rng.randrange(0x80, 0x100) for _ in range(3000)),
        "big.txt": ("A long line about Alice Johnson in London. " * 120).encode(),
        "good1.md": b"# Notes\n\n" + paragraph(1).encode(),
    }
    paths = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    paths["gone.txt"] = folder / "gone.txt"
    return paths


def test_per_file_failures_are_reported_recorded_and_the_batch_goes_on(
    janus: Janus, tmp_path: Path
) -> None:
    paths = write_bad_inputs(tmp_path / "in")
    order = ["good0.txt", "empty.txt", "image.txt", "gone.txt", "garbled.txt", "big.txt"]
    report = ingest(janus, [paths[n] for n in [*order, "good1.md"]], max_bytes=4096, entities=False)

    outcomes = {Path(o.path).name: o for o in report.files}
    assert {n: o.status for n, o in outcomes.items()} == {
        "good0.txt": "ingested",
        "empty.txt": "failed",
        "image.txt": "failed",
        "gone.txt": "failed",
        "garbled.txt": "failed",
        "big.txt": "failed",
        "good1.md": "ingested",
    }
    reasons = {
        "empty.txt": "empty",
        "image.txt": "unsupported",
        "gone.txt": "No such file",
        "garbled.txt": "UTF-8",
        "big.txt": "over the limit of 4,096",
    }
    for name, reason in reasons.items():
        error = outcomes[name].error or ""
        assert name in error and reason in error, (name, error)
    summary = report.as_dict()["summary"]
    assert summary["failed"] == 5 and summary["ingested"] == 2 and summary["documents"] == 2

    failed = list_documents(janus, TENANT, status="failed")
    assert sorted(Path(d["source"]).name for d in failed) == sorted(reasons)
    for row in failed:
        versions = show_document(janus, TENANT, row["id"])["versions"]
        assert [v["status"] for v in versions] == ["failed"]
        assert Path(row["source"]).name in versions[0]["error"]
    events = {
        Path(e.subject).name: e for e in document_events(janus) if e.type == "document.failed"
    }
    assert set(events) == set(reasons)
    assert {n: events[n].payload.get("reason") for n in reasons if n != "gone.txt"} == {
        "empty.txt": "empty",
        "image.txt": "unsupported",
        "garbled.txt": "undecodable",
        "big.txt": "too_large",
    }
    assert [d["status"] for d in list_documents(janus, TENANT, status="done")] == ["done"] * 2
    # The failed files left nothing behind in the stores (no orphan raw objects either).
    assert check_stores(janus, entities=False)["documents"] == 2
    check_events(janus)


def test_failed_files_do_not_change_stats_on_rerun_and_succeed_once_fixed(
    janus: Janus, tmp_path: Path
) -> None:
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text(paragraph(0), encoding="utf-8")
    bad.write_bytes(b"")
    first = ingest(janus, [good, bad], entities=False)
    assert statuses(first) == {"good.txt": "ingested", "bad.txt": "failed"}
    before = stats(janus)
    assert before[TENANT]["failed_documents"] == 1

    again = ingest(janus, [good, bad], entities=False)

    assert statuses(again) == {"good.txt": "unchanged", "bad.txt": "failed"}
    assert stats(janus) == before, "re-running the same batch changed the stats"

    bad.write_text(paragraph(1), encoding="utf-8")
    fixed = ingest(janus, [good, bad], entities=False)

    assert statuses(fixed) == {"good.txt": "unchanged", "bad.txt": "ingested"}
    assert list_documents(janus, TENANT, status="failed") == []
    assert stats(janus)[TENANT]["documents"] == 2
    check_stores(janus, entities=False)
    check_events(janus)


def test_a_document_deleted_while_it_is_projected_stays_deleted(
    janus: Janus, tmp_path: Path
) -> None:
    """A delete landing between the projection's last stage and its finish wins."""
    files = write_corpus(tmp_path / "docs", 3)
    victim = doc_key(files[0])
    graph = Projector._graph

    def delete_meanwhile(self: Projector, tenant: str, refs: Any) -> None:
        graph(self, tenant, refs)
        delete_document(janus, TENANT, victim)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Projector, "_graph", delete_meanwhile)
        ingest(janus, files)
    with janus.ledger.session() as session:
        document = session.get(Document, victim)
        assert document is not None and document.status == "deleted"
    assert check_stores(janus)["documents"] == 2
    check_events(janus)


def test_a_file_that_turns_bad_keeps_its_last_good_version(janus: Janus, tmp_path: Path) -> None:
    doc, other = tmp_path / "doc.txt", tmp_path / "other.txt"
    doc.write_text(paragraph(0), encoding="utf-8")
    other.write_text(paragraph(1), encoding="utf-8")
    ingest(janus, [doc, other], entities=False)
    good = current_version(janus, doc)
    counts = check_stores(janus, entities=False)

    doc.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3)
    report = ingest(janus, [doc, other], entities=False)

    assert statuses(report) == {"doc.txt": "failed", "other.txt": "unchanged"}
    assert "unsupported" in (report.files[0].error or "")
    assert current_version(janus, doc) == good, "the last good version stays live"
    versions = show_document(janus, TENANT, doc_key(doc))["versions"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "done"), (2, "failed")]
    assert check_stores(janus, entities=False) == counts
    check_events(janus)


# -- the event log -------------------------------------------------------------------


def test_every_ingest_update_delete_and_failure_is_an_event_and_the_chain_verifies(
    janus: Janus, tmp_path: Path
) -> None:
    keep, change, bad = tmp_path / "keep.txt", tmp_path / "change.txt", tmp_path / "bad.txt"
    keep.write_text(paragraph(0), encoding="utf-8")
    change.write_text(paragraph(1), encoding="utf-8")
    bad.write_bytes(b"\x00\x01\x02\x03" * 64)
    ingest(janus, [keep, change, bad], entities=False)
    change.write_text(paragraph(1, variant="b"), encoding="utf-8")
    ingest(janus, [keep, change, bad], entities=False)
    delete_document(janus, TENANT, doc_key(keep))

    events = [(e.type, e.subject) for e in document_events(janus)]
    assert Counter(events) == Counter(
        {
            ("document.ingested", doc_key(keep)): 1,
            ("document.ingested", doc_key(change)): 1,
            ("document.failed", str(bad.resolve())): 2,
            ("document.updated", doc_key(change)): 1,
            ("document.deleted", doc_key(keep)): 1,
        }
    )
    assert events[-1] == ("document.deleted", doc_key(keep))
    assert all(e.actor == "ingest" and e.tenant == TENANT for e in document_events(janus))
    check_events(janus)
    check_stores(janus, entities=False)


# -- crash windows -------------------------------------------------------------------


class Crash(BaseException):
    """What a kill -9 at this instant would do: nothing after it runs."""


def crash_after(target: Any, name: str, *, on_call: int = 1) -> Callable[..., Any]:
    """A replacement for ``target.name`` that runs it, then raises on the ``on_call``-th call."""
    original = getattr(target, name)
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = original(*args, **kwargs)
        calls += 1
        if calls == on_call:
            raise Crash(f"after {name} #{calls}")
        return result

    return wrapper


def crash_before(target: Any, name: str) -> Callable[..., Any]:
    def wrapper(*_args: Any, **_kwargs: Any) -> Any:
        raise Crash(f"before {name}")

    return wrapper


CRASH_POINTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "before-projection": lambda mp: mp.setattr(Projector, "run", crash_before(Projector, "run")),
    "after-index": lambda mp: mp.setattr(Projector, "_index", crash_after(Projector, "_index")),
    "after-entities": lambda mp: mp.setattr(
        Projector, "_entities", crash_after(Projector, "_entities")
    ),
    "after-graph": lambda mp: mp.setattr(Projector, "_graph", crash_after(Projector, "_graph")),
    # Inside the transaction that marks the second batch done and announces it.
    "inside-finish": lambda mp: mp.setattr(
        DocumentLedger, "finish", crash_after(DocumentLedger, "finish", on_call=2)
    ),
    # Right after that transaction committed, before anything else ran.
    "after-finish": lambda mp: mp.setattr(
        EventLog, "append_with", crash_after(EventLog, "append_with", on_call=2)
    ),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_a_run_stopped_at_a_stage_boundary_resumes_exactly_once(tmp_path: Path, point: str) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(DOC_A, encoding="utf-8")
    b.write_text(DOC_B, encoding="utf-8")
    files = [a, b, *write_corpus(tmp_path / "more", 2)]
    with Janus(load_settings()) as janus, pytest.MonkeyPatch.context() as mp:
        # One document per projection batch: the crash lands between finished batches.
        ingestor = make_ingestor(janus, batch_chunks=1)
        CRASH_POINTS[point](mp)
        with pytest.raises(Crash):
            ingestor.ingest(files, tenant=TENANT)

    with Janus(load_settings()) as janus:
        ingestor = make_ingestor(janus)
        ingestor.resume()
        report = ingestor.ingest(files, tenant=TENANT)
        assert not report.failed
        counts = check_stores(janus)
        assert counts["documents"] == 4 and counts["entities"] > 0
        check_events(janus)
        # The result is the same as an uninterrupted run's.
        assert ingest(janus, files) and check_stores(janus) == counts


def test_a_crash_while_removing_a_replaced_version_leaves_no_orphans(tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "docs", 3)
    with Janus(load_settings()) as janus:
        ingest(janus, files)
    files[0].write_text(paragraph(0, variant="b"), encoding="utf-8")
    with Janus(load_settings()) as janus, pytest.MonkeyPatch.context() as mp:
        mp.setattr(projection, "settle_doc_id", crash_before(projection, "settle_doc_id"))
        with contextlib.suppress(Crash):
            ingest(janus, files)

    with Janus(load_settings()) as janus:
        make_ingestor(janus).resume()
        ingest(janus, files)
        assert check_stores(janus)["documents"] == 3
        check_events(janus)
        with janus.ledger.session() as session:
            versions = session.scalar(select(func.count()).select_from(DocumentVersion))
        assert versions == 4
