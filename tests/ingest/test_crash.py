"""Crash tests: a real `janus ingest` process is killed with SIGKILL, then resumed.

The process is killed at points read from its own ledger (a read-only
SQLite connection polled while it runs): while the reader is still
producing versions, after the first batch was indexed, in the middle of a
run of ``document.ingested`` events. After every kill the test checks
that the ledger claims nothing the stores lost; after the final
``janus ingest --resume`` on the same paths it checks exactly-once
presence in every store (``check_stores`` from ``test_pipeline``), that
each document version was announced exactly once, that the event chain
verifies and that ``janus verify`` agrees.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from test_pipeline import check_events, check_stores

import janus_stack
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ledger.models import Chunk, DocumentVersion, IngestionStage
from janus_stack.slots.vectors import VectorFilter

pytestmark = pytest.mark.slow

JANUS = [sys.executable, "-m", "janus_stack"]
HAS_VERIFY = (Path(janus_stack.__file__).parent / "ops" / "verify.py").exists()
TENANT = "default"
RUN_LIMIT_SECONDS = 240  # a guard against a hung process, not a speed assertion

PEOPLE = ("Alice Johnson", "Robert Smith", "Maria Garcia", "David Chen", "Sarah Miller")
ORGS = ("Acme Corporation", "Globex Industries", "Initech", "Umbrella Group")
CITIES = ("London", "Paris", "Berlin", "Tokyo")


def paragraph(i: int, j: int) -> str:
    rng = random.Random(i * 100 + j)
    person, other = rng.sample(PEOPLE, 2)
    org, city = rng.choice(ORGS), rng.choice(CITIES)
    return (
        f"Entry {i}.{j}. {person} joined {org} in {city} as head of research and met "
        f"{other} there. {other} had worked with {person} at {org} for several years. "
        f"Together they planned a new laboratory in {city} and reported to the board of "
        f"{org} every quarter."
    )


def write_corpus(folder: Path, count: int, *, long_every: int = 0) -> Path:
    """``count`` small documents; every ``long_every``-th one has 3 chunks, the rest 1."""
    folder.mkdir(parents=True)
    for i in range(count):
        paragraphs = 4 if long_every and i % long_every == 0 else 1
        text = "\n\n".join(paragraph(i, j) for j in range(paragraphs)) + "\n"
        (folder / f"doc{i:03d}.txt").write_text(text, encoding="utf-8")
    return folder


# -- watching and killing a run ---------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What the ledger of the running process shows, read without a write lock."""

    versions: int = 0
    indexed: int = 0
    ingested_events: int = 0


def read_progress(database: Path) -> Progress:
    if not database.exists():
        return Progress()
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1)
        try:
            return Progress(
                versions=connection.execute("SELECT count(*) FROM document_versions").fetchone()[0],
                indexed=connection.execute(
                    "SELECT count(*) FROM ingestion_stages WHERE stage = 'index' "
                    "AND status = 'done'"
                ).fetchone()[0],
                ingested_events=connection.execute(
                    "SELECT count(*) FROM events WHERE type = 'document.ingested'"
                ).fetchone()[0],
            )
        finally:
            connection.close()
    except sqlite3.Error:  # not migrated yet, or locked for a moment
        return Progress()


@dataclass
class Run:
    returncode: int
    killed: bool
    at: Progress
    stdout: str
    stderr: str


def run_ingest(
    home: Path, args: list[str], kill_when: Callable[[Progress], bool] | None = None
) -> Run:
    """Start `janus ingest ARGS --json`; SIGKILL it as soon as ``kill_when`` holds."""
    out, err = home / "run.out", home / "run.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*JANUS, "ingest", *args, "--json"], stdout=stdout, stderr=stderr, env=os.environ
        )
        deadline = time.monotonic() + RUN_LIMIT_SECONDS
        seen = Progress()
        killed = False
        try:
            while process.poll() is None:
                if time.monotonic() > deadline:
                    pytest.fail(f"janus ingest {args} still running after {RUN_LIMIT_SECONDS}s")
                seen = read_progress(home / "janus.db")
                if kill_when is not None and kill_when(seen):
                    process.send_signal(signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.02)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    return Run(process.returncode, killed, seen, out.read_text(), err.read_text())


def check_after_kill(entities: bool) -> int:
    """What a killed run leaves must be resumable and never claim what the stores lost.

    Returns how many versions it left unfinished.
    """
    with Janus(load_settings()) as janus, janus.ledger.session() as session:
        versions = session.execute(
            select(
                DocumentVersion.id,
                DocumentVersion.doc_id,
                DocumentVersion.object_key,
                DocumentVersion.status,
            )
        ).all()
        indexed = set(
            session.scalars(
                select(IngestionStage.version_id).where(
                    IngestionStage.stage == "index", IngestionStage.status == "done"
                )
            )
        )
        chunk_rows = session.execute(select(Chunk.id, Chunk.doc_id)).all()
        assert {v.status for v in versions} <= {"pending", "done"}
        for version in versions:
            assert janus.objects.exists(version.object_key), f"object of {version} lost"
        points = [p.id for p in janus.vectors.iter_points(VectorFilter(tenant=TENANT))]
        assert len(points) == len(set(points)), "duplicate vector points"
        claimed = {v.doc_id for v in versions if v.id in indexed or v.status == "done"}
        wanted = {chunk_id for chunk_id, doc_id in chunk_rows if doc_id in claimed}
        assert wanted <= set(points), "the ledger says indexed, the vector index lost points"
        assert set(points) <= {chunk_id for chunk_id, _ in chunk_rows}, "points of no chunk"
        if entities:
            janus.graph.counts(TENANT)  # the graph opens after a kill
        return sum(1 for v in versions if v.status == "pending")


def check_final(corpus: Path, files: int, final: Run, *, entities: bool) -> None:
    assert final.returncode == 0, final.stdout + final.stderr
    report = json.loads(final.stdout)
    assert report["summary"]["files"] == files
    assert report["summary"].get("failed", 0) == 0 and report["missing"] == []
    with Janus(load_settings()) as janus:
        counts = check_stores(janus, entities=entities)
        assert counts["documents"] == counts["doc_ids"] == files
        assert counts["objects"] == files
        if entities:
            assert counts["entities"] > 0 and counts["relations"] > 0
        check_events(janus)
    # A further run finds nothing to do.
    again = run_ingest(
        Path(os.environ["JANUS_HOME"]),
        [str(corpus), "--resume", *([] if entities else ["--no-entities"])],
    )
    data = json.loads(again.stdout)
    assert again.returncode == 0 and data["resumed_versions"] == 0
    assert data["summary"] == {"files": files, "documents": 0, "chunks": 0, "unchanged": files}
    audit = subprocess.run(
        [*JANUS, "audit", "verify"], capture_output=True, text=True, check=False, timeout=120
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
    if HAS_VERIFY:
        verify = subprocess.run(
            [*JANUS, "verify", "--json"], capture_output=True, text=True, check=False, timeout=120
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr


# -- the tests -------------------------------------------------------------------------


def test_sigkill_at_several_points_then_resume_is_exactly_once(
    _isolated_home: Path, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus", 200, long_every=5)  # 280 chunks: two batches
    args = [str(corpus), "--no-entities"]
    home = _isolated_home
    kills: list[tuple[str, Callable[[Progress], bool]]] = [
        ("while reading files", lambda p: p.versions >= 40),
        ("after the first batch was indexed", lambda p: p.indexed >= 1),
        ("among the ingested events", lambda p: p.ingested_events >= 150),
    ]
    runs: list[Run] = []
    unfinished: list[int] = []
    for n, (_name, condition) in enumerate(kills):
        run = run_ingest(home, [*args, *(["--resume"] if n else [])], condition)
        runs.append(run)
        if run.killed:
            assert run.returncode == -signal.SIGKILL
            unfinished.append(check_after_kill(entities=False))
        else:
            assert run.returncode == 0, run.stdout + run.stderr
    assert any(run.killed for run in runs), [run.at for run in runs]
    assert any(unfinished), "no kill left work for --resume"

    final = run_ingest(home, [*args, "--resume"])

    check_final(corpus, 200, final, entities=False)


def test_sigkill_during_entity_extraction_and_graph_writes_then_resume(
    _isolated_home: Path, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus", 40)
    home = _isolated_home
    first = run_ingest(home, [str(corpus)], lambda p: p.indexed >= 1)
    if first.killed:
        check_after_kill(entities=True)
    second = run_ingest(home, [str(corpus), "--resume"], lambda p: p.ingested_events >= 10)
    if second.killed:
        check_after_kill(entities=True)
    assert first.killed or second.killed, (first.at, second.at)

    final = run_ingest(home, [str(corpus), "--resume"])

    check_final(corpus, 40, final, entities=True)
