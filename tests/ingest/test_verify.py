"""``janus verify`` and ``janus repair`` on a real memory, damaged behind Janus's back.

Each test ingests three small documents on the embedded defaults (MiniLM,
Qdrant Edge, ladybug, SQLite, the directory object store), breaks one store
through its slot API the way a crash or an operator could, and checks that
verify names the damage and repair undoes it. One test runs on server
backends (PostgreSQL ledger, FalkorDB graph, Redis cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, update

from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ingest.documents import DocumentLedger, document_key
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import DocumentVersion, Mention, Relation, RelationSupport
from janus_stack.ops.repair import repair
from janus_stack.ops.verify import verify
from janus_stack.slots.graph import Relation as GraphRelation
from janus_stack.slots.vectors import VectorFilter, VectorPoint
from janus_stack.urls import SlotURL
from services import falkordb_url_fixture  # noqa: F401 - fixture

TENANT = "acme"
DOCS = {
    "alpha.md": "# Alpha\n\nAlice Johnson joined Acme Corporation in London. "
    "Alice Johnson met Viktor Petrov at Acme Corporation.\n",
    "beta.txt": "Alice Johnson works with Maria Garcia at Globex Industries in Paris. "
    "Alice Johnson met Viktor Petrov in Paris.\n",
    "gamma.txt": "David Chen leads Initech in Berlin. Sarah Miller joined Initech in Tokyo.\n",
}
JANUS = [sys.executable, "-m", "janus_stack"]


@pytest.fixture(scope="module")
def extractor() -> SpacyEntityExtractor:
    """The spaCy model, loaded once for the module."""
    return SpacyEntityExtractor()


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "docs"
    folder.mkdir()
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return {name: folder / name for name in DOCS}


def ingest(janus: Janus, files: list[Path], extractor: SpacyEntityExtractor) -> None:
    ingestor = Ingestor(janus, janus.embedder, IngestOptions())
    ingestor.projector.extractor = extractor
    report = ingestor.ingest(files, tenant=TENANT)
    assert not report.failed, report.as_dict()


@pytest.fixture
def memory(corpus: dict[str, Path], extractor: SpacyEntityExtractor) -> Iterator[Janus]:
    with Janus(load_settings()) as janus:
        ingest(janus, list(corpus.values()), extractor)
        yield janus


def checked(janus: Janus) -> dict[str, Any]:
    report = verify(janus, TENANT).as_dict()
    assert list(report["tenants"]) == [TENANT]
    tenant: dict[str, Any] = report["tenants"][TENANT]
    assert tenant["ok"] is report["ok"]
    return tenant


def version_of(janus: Janus, path: Path) -> tuple[int, str, str]:
    """(version id, doc_id, object key) of the current version ingested from ``path``."""
    with janus.ledger.session() as session:
        row = session.execute(
            select(DocumentVersion.id, DocumentVersion.doc_id, DocumentVersion.object_key).where(
                DocumentVersion.document_id == document_key(TENANT, str(path.resolve()), ""),
                DocumentVersion.status == "done",
            )
        ).one()
    return row[0], row[1], row[2]


def points(janus: Janus, **equals: str) -> list[Any]:
    flt = VectorFilter(tenant=TENANT, equals=dict(equals))
    return list(janus.vectors.iter_points(flt, with_vectors=True))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JANUS, *args],
        check=False,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def assert_repaired(janus: Janus, **grace: timedelta) -> dict[str, Any]:
    result = repair(janus, TENANT, **grace)
    data = result.as_dict()
    assert result.ok, json.dumps(data["after"], indent=1, default=str)
    assert checked(janus)["ok"]
    actions: dict[str, Any] = data["actions"][TENANT]
    return actions


# -- a healthy memory ------------------------------------------------------------------


def test_a_fresh_memory_agrees_with_its_ledger(memory: Janus) -> None:
    report = checked(memory)
    assert report["ok"] is True
    assert set(report) == {
        "ok",
        "objects",
        "vectors",
        "keyword",
        "graph",
        "leftovers",
        "unfinished",
        "failed",
    }
    keyword = report["keyword"]
    assert keyword["expected"] == keyword["found"] == report["vectors"]["expected"] >= 3
    assert keyword["ok"] and keyword["engine"] == "sqlite-fts5-bm25"
    assert report["objects"]["expected"] == report["objects"]["found"] == 3
    vectors = report["vectors"]
    assert vectors["expected"] == vectors["found"] == len(points(memory)) >= 3
    assert vectors["model"] == memory.embedder.model
    counts = report["graph"]["counts"]
    assert set(counts) == {"entities", "relations", "mentions", "chunks"}
    assert all(c["ok"] and c["ledger"] == c["store"] > 0 for c in counts.values())
    assert report["unfinished"] == report["failed"] == {"count": 0, "sample": []}
    # Nothing to do: repair verifies, changes nothing and records no event.
    result = repair(memory, TENANT)
    assert result.ok and result.actions == {} and result.passes == 0
    assert memory.events.query(type="ops.repair") == []


# -- vectors ---------------------------------------------------------------------------


def test_a_missing_point_fails_the_cli_and_repair_restores_it(
    corpus: dict[str, Path], extractor: SpacyEntityExtractor
) -> None:
    with Janus(load_settings()) as janus:
        ingest(janus, list(corpus.values()), extractor)
        _, doc_id, _ = version_of(janus, corpus["beta.txt"])
        lost = points(janus, doc_id=doc_id)[0]
        janus.vectors.delete_ids(TENANT, [lost.id])

    found = run_cli("verify", "--json")
    assert found.returncode == 1, found.stderr
    vectors = json.loads(found.stdout)["tenants"][TENANT]["vectors"]
    assert vectors["missing"] == {"count": 1, "sample": [lost.id]}
    assert vectors["found"] == vectors["expected"] - 1

    fixed = run_cli("repair", "--tenant", TENANT)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repaired tenant acme" in fixed.stdout and "consistent" in fixed.stdout

    again = run_cli("verify", "--json")
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["ok"] is True
    with Janus(load_settings()) as janus:
        back = janus.vectors.retrieve(TENANT, [lost.id], with_vectors=True)
        assert [hit.payload for hit in back] == [lost.payload]
        events = janus.events.query(type="ops.repair")
        assert [e.payload["versions_reindexed"] for e in events] == [1]
        assert events[0].payload["ok"] is True


def test_extra_and_stale_points_are_found_then_removed_and_reembedded(memory: Janus) -> None:
    stray = str(uuid.uuid4())
    template = points(memory)[0]
    # A point no chunk of the ledger owns, though its payload names a live document:
    memory.vectors.upsert([VectorPoint(stray, template.vector or [], dict(template.payload))])
    _, doc_id, _ = version_of(memory, Path(template.payload["source"]))
    victim = next(p for p in points(memory, doc_id=doc_id) if p.id != stray)
    memory.vectors.upsert(
        [VectorPoint(victim.id, victim.vector or [], {**victim.payload, "model": "old-model/1"})]
    )

    vectors = checked(memory)["vectors"]
    assert vectors["extra"] == {"count": 1, "sample": [stray]}
    assert vectors["stale"] == {"count": 1, "sample": [victim.id]}
    assert vectors["missing"]["count"] == 0

    actions = assert_repaired(memory)
    assert actions["points_deleted"] == 1 and actions["stale_points_deleted"] == 1
    assert actions["versions_reindexed"] == 1 and actions["graph_documents_removed"] == 0
    assert memory.vectors.retrieve(TENANT, [stray]) == []
    (fresh,) = memory.vectors.retrieve(TENANT, [victim.id])
    assert fresh.payload["model"] == memory.embedder.model


# -- graph -----------------------------------------------------------------------------


def test_a_deleted_entity_and_a_forged_support_are_found_and_rebuilt(memory: Janus) -> None:
    with memory.ledger.session() as session:
        shared = session.scalars(  # mentioned by more than one document
            select(Mention.entity_id)
            .group_by(Mention.entity_id)
            .having(func.count(Mention.doc_id.distinct()) > 1)
            .limit(1)
        ).one()
        relation = (
            session.execute(
                select(Relation).where(
                    Relation.source_entity_id != shared, Relation.target_entity_id != shared
                )
            )
            .scalars()
            .first()
        )
        assert relation is not None
        supports = set(
            session.scalars(
                select(RelationSupport.chunk_id).where(RelationSupport.relation_id == relation.id)
            )
        )
    memory.graph.delete_entities(TENANT, [shared])
    forged = GraphRelation(
        TENANT,
        relation.source_entity_id,
        relation.target_entity_id,
        relation.type,
        ("forged-chunk",),
    )
    assert forged.id == relation.id
    memory.graph.upsert_relations([forged])
    # And the mentions of a chunk of a document that does not mention it: only counts show that.
    with memory.ledger.session() as session:
        near = select(Mention.doc_id).where(Mention.entity_id == shared)
        quiet = session.scalars(
            select(Mention.chunk_id).where(Mention.doc_id.not_in(near)).limit(1)
        ).one()
    memory.graph.remove_mentions(TENANT, [quiet])

    graph = checked(memory)["graph"]
    assert graph["ok"] is False
    assert graph["missing_entities"] == {"count": 1, "sample": [shared]}
    assert graph["counts"]["entities"]["store"] == graph["counts"]["entities"]["ledger"] - 1
    assert not graph["counts"]["mentions"]["ok"]
    (mismatch,) = graph["support_mismatch"]["sample"]
    assert mismatch == {"relation_id": relation.id, "missing": [], "extra": ["forged-chunk"]}

    result = repair(memory, TENANT)
    assert result.ok, result.after.as_dict()
    assert result.passes == 2  # the targeted pass, then the whole graph for the lost mentions
    assert result.actions[TENANT].entities_rebuilt == 2
    assert result.actions[TENANT].versions_regraphed == 2 + 3
    assert [e.id for e in memory.graph.get_entities(TENANT, [shared])] == [shared]
    seeds = [relation.source_entity_id, relation.target_entity_id]
    sub = memory.graph.neighbourhood(TENANT, seeds, hops=1, limit=2)
    assert {r.id: set(r.chunk_ids) for r in sub.relations}[relation.id] == supports


# -- objects ---------------------------------------------------------------------------


def test_lost_objects_come_back_from_their_source_and_orphans_go(
    memory: Janus, corpus: dict[str, Path]
) -> None:
    _, _, alpha_key = version_of(memory, corpus["alpha.md"])
    _, _, beta_key = version_of(memory, corpus["beta.txt"])
    memory.objects.delete(alpha_key)
    memory.objects.delete(beta_key)
    corpus["beta.txt"].write_text("changed since it was ingested\n", encoding="utf-8")
    orphan = memory.objects.put(b"nobody references me", tenant=TENANT).key

    objects = checked(memory)["objects"]
    assert objects["missing"] == {"count": 2, "sample": sorted([alpha_key, beta_key])}
    assert objects["orphans"] == {"count": 1, "sample": [orphan]}

    # A fresh orphan may be an ingest in flight: it is kept until the grace period passes.
    first = repair(memory, TENANT)
    assert not first.ok
    assert first.actions[TENANT].orphans_kept_recent == 1 and memory.objects.exists(orphan)
    assert first.actions[TENANT].objects_restored == 1
    assert first.actions[TENANT].objects_lost == [beta_key]
    assert memory.objects.exists(alpha_key)

    second = repair(memory, TENANT, orphan_grace=timedelta(0))
    assert second.actions[TENANT].orphans_deleted == 1 and not memory.objects.exists(orphan)
    after = second.after.as_dict()["tenants"][TENANT]
    assert after["objects"]["missing"] == {"count": 1, "sample": [beta_key]}
    assert after["objects"]["orphans"]["count"] == 0 and after["vectors"]["ok"]


# -- the ledger's own unfinished business -------------------------------------------


def test_unfinished_versions_are_reported_not_blamed_and_resumed(
    memory: Janus, corpus: dict[str, Path]
) -> None:
    version_id, doc_id, _ = version_of(memory, corpus["gamma.txt"])
    DocumentLedger(memory.ledger).mark_stages([version_id], ("embed", "index", "graph"), "pending")
    with memory.ledger.session() as session:
        session.execute(
            update(DocumentVersion).where(DocumentVersion.id == version_id).values(status="pending")
        )
    memory.vectors.delete(VectorFilter(tenant=TENANT, equals={"doc_id": doc_id}))
    memory.graph.remove_document(TENANT, doc_id)  # a crash right after chunking

    report = checked(memory)
    assert report["ok"] is False
    assert report["unfinished"]["count"] == 1
    (item,) = report["unfinished"]["sample"]
    assert item["version_id"] == version_id and item["source"] == str(corpus["gamma.txt"])
    # What the unfinished version has not written yet is not blamed on the stores.
    assert report["vectors"]["ok"] and report["graph"]["ok"] and report["objects"]["ok"]

    actions = assert_repaired(memory)
    assert actions["resumed_versions"] == 1
    assert len(points(memory, doc_id=doc_id)) >= 1


def test_an_interrupted_delete_is_finished_by_repair(
    memory: Janus, corpus: dict[str, Path]
) -> None:
    _, doc_id, key = version_of(memory, corpus["gamma.txt"])
    gamma_points = {p.id for p in points(memory, doc_id=doc_id)}
    # delete_document marks the ledger first; a crash before the projections follow:
    DocumentLedger(memory.ledger).mark_deleted(
        TENANT, document_key(TENANT, str(corpus["gamma.txt"].resolve()), "")
    )

    report = checked(memory)
    assert report["leftovers"] == {"count": 1, "sample": [doc_id]}
    assert report["vectors"]["extra"]["count"] == len(gamma_points)
    assert set(report["vectors"]["extra"]["sample"]) <= gamma_points
    assert report["objects"]["orphans"] == {"count": 1, "sample": [key]}
    assert not report["graph"]["counts"]["entities"]["ok"]

    actions = assert_repaired(memory, orphan_grace=timedelta(0))
    assert actions["leftovers_removed"] == 1 and actions["orphans_deleted"] == 1
    assert points(memory, doc_id=doc_id) == []


# -- what the pipeline must not leave behind -------------------------------------------


def test_a_failed_file_is_listed_but_is_no_inconsistency(
    memory: Janus, corpus: dict[str, Path], extractor: SpacyEntityExtractor
) -> None:
    empty = corpus["alpha.md"].with_name("empty.txt")
    empty.write_bytes(b"")
    Ingestor(memory, memory.embedder, IngestOptions(entities=False)).ingest([empty], tenant=TENANT)
    report = checked(memory)
    assert report["failed"]["count"] == 1
    assert report["failed"]["sample"][0]["source"] == str(empty)
    assert report["ok"] is True, report["objects"]


def test_a_version_abandoned_mid_ingest_leaves_nothing_once_replaced(
    memory: Janus, corpus: dict[str, Path], extractor: SpacyEntityExtractor, monkeypatch: Any
) -> None:
    alpha = corpus["alpha.md"]
    alpha.write_text(DOCS["alpha.md"] + "Second draft.\n", encoding="utf-8")
    with monkeypatch.context() as patch:
        patch.setattr(Projector, "run", lambda self, version_ids: None)  # killed after chunking
        ingest(memory, [alpha], extractor)
    alpha.write_text(DOCS["alpha.md"] + "Third draft.\n", encoding="utf-8")
    ingest(memory, [alpha], extractor)
    # Finishing the third draft supersedes the abandoned second one and removes its
    # chunks and raw object, so nothing is left for verify to report.
    report = checked(memory)
    assert report["ok"] is True, (report["leftovers"], report["objects"]["orphans"])


# -- server backends ------------------------------------------------------------------


def test_verify_and_repair_on_postgresql_falkordb_and_redis(
    pg_database: str,
    falkordb_url: str,
    redis_url: str,
    corpus: dict[str, Path],
    extractor: SpacyEntityExtractor,
) -> None:
    with Ledger(SlotURL.parse("relational", pg_database)) as ledger:
        migrations.upgrade(ledger)
    prefix = f"janus_verify_{uuid.uuid4().hex[:8]}"
    overrides = {
        "relational_url": pg_database,
        "graph_url": falkordb_url,
        "cache_url": f"{redis_url}?prefix={prefix}",
    }
    try:
        with Janus(load_settings(overrides)) as janus:
            ingest(janus, list(corpus.values()), extractor)
            assert checked(janus)["ok"] is True
            _, doc_id, _ = version_of(janus, corpus["alpha.md"])
            with janus.ledger.session() as session:
                entity = session.scalars(
                    select(Mention.entity_id).where(Mention.doc_id == doc_id).limit(1)
                ).one()
            janus.graph.delete_entities(TENANT, [entity])
            janus.vectors.delete_ids(TENANT, [points(janus, doc_id=doc_id)[0].id])

            report = checked(janus)
            assert report["graph"]["missing_entities"]["sample"] == [entity]
            assert report["vectors"]["missing"]["count"] == 1

            actions = assert_repaired(janus)
            assert actions["versions_reindexed"] == 1 and actions["versions_regraphed"] >= 1
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()
