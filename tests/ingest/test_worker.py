"""Queued ingestion: `janus ingest` enqueues on RabbitMQ, `janus worker` runs the stages.

Real components only: the machine's RabbitMQ (a queue prefix per test,
deleted afterwards), the SQLite ledger, Qdrant Edge, ladybug, the MiniLM
embedder and spaCy. Workers are real ``janus worker`` processes where the
claim is about processes (sharing JANUS_HOME with ``janus ingest``, SIGKILL
and restart) and Dramatiq workers in this process where the claim is about
concurrency (two queues competing for overlapping tasks). Every test ends
with the stores held against the ledger (``check_stores``), each version
announced exactly once (``check_events``), ``ops.verify`` agreeing, and the
stats equal to an inline ingest of the same files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import func, update
from sqlalchemy import select as sql_select
from test_pipeline import check_events, check_stores, paragraph, shared_extractor, write_corpus

from conftest import RUN_ID
from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ingest.documents import DocumentLedger, FinishPlan
from janus_stack.ingest.enqueue import ProjectionQueue
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.tasks import PROJECT_TASK, project_task, register_ingest_tasks
from janus_stack.ledger.models import DocumentVersion, IngestionStage, Task
from janus_stack.ops.inventory import stats
from janus_stack.ops.verify import verify
from janus_stack.slots import queue as queue_slot
from janus_stack.slots.queue import TaskHandlers
from services import WorkerProcess, own_rabbitmq_queue

JANUS = [sys.executable, "-m", "janus_stack"]
TENANT = "default"
IDLE = 60.0  # a guard against a hung worker, not a speed assertion


# -- fixtures and helpers --------------------------------------------------------------


@pytest.fixture
def queue_url(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A RabbitMQ queue of this test only, set for this process and the CLI it starts.

    A 3 s task lease lets a restarted worker take over a killed one's task quickly.
    """
    with own_rabbitmq_queue(amqp_url, monkeypatch, "&lease=3") as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
def lock_cache(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The cache slot holding the document locks: in-process, or Redis as across machines."""
    if request.param == "memory":
        yield "memory"
        return
    redis_url: str = request.getfixturevalue("redis_url")
    prefix = f"janus_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("JANUS_CACHE_URL", f"{redis_url}?prefix={prefix}")
    yield "redis"
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def slow_announcements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Widen the window between planning a batch's finish (and its events) and writing it.

    Two projections of one document then meet there unless the document
    locks keep them apart: the race made likely.
    """
    plan = DocumentLedger.plan_finish

    def slow(self: DocumentLedger, version_ids: Any) -> FinishPlan:
        planned = plan(self, version_ids)
        time.sleep(0.05)
        return planned

    monkeypatch.setattr(DocumentLedger, "plan_finish", slow)


def janus_cli(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*JANUS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "1000"},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def write_records(path: Path, *texts: str) -> None:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), "utf-8")


def inline_stats(*runs: Callable[[], list[Path]], home: Path, entities: bool) -> dict[str, Any]:
    """The stats after in-process ingests (one per ``runs`` item) into a fresh JANUS_HOME.

    Each run returns the files to ingest, written as it needs them.
    """
    settings = load_settings({"home": home, "queue_url": "inline://"})
    with Janus(settings) as janus:
        for run in runs:
            files = run()
            ingestor = Ingestor(janus, janus.embedder, IngestOptions(entities=entities))
            if entities:
                ingestor.projector.extractor = shared_extractor()
            report = ingestor.ingest(files, tenant=TENANT)
            assert not report.failed, report.files
        return stats(janus)


def check_all(janus: Janus, *, entities: bool) -> dict[str, Any]:
    """Every store agrees with the ledger; returns the stats."""
    check_stores(janus, entities=entities)
    check_events(janus)
    report = verify(janus)
    assert report.ok, report.as_dict()
    return stats(janus)


def ledger_only() -> Janus:
    """A context for this process that uses only the ledger (and the queue): no home lock."""
    return Janus(load_settings())


# -- tests -----------------------------------------------------------------------------


def test_worker_refuses_the_inline_queue_with_a_clear_message() -> None:
    result = janus_cli("--queue-url", "inline://", "worker")
    assert result.returncode == 1
    assert "needs a broker queue" in result.stderr and "inline://" in result.stderr
    assert "amqp://" in result.stderr  # the hint says what to configure


def test_ingest_enqueues_beside_a_running_worker_and_matches_an_inline_ingest(
    queue_url: str, tmp_path: Path
) -> None:
    files = write_corpus(tmp_path / "docs", 4)
    worker = WorkerProcess("--workers", "2")
    try:
        announced = worker.started()
        assert announced["home_lock"] is True and announced["locks_shared"] is True
        # The worker owns JANUS_HOME; `janus ingest` with a broker queue does not need it.
        result = janus_cli("ingest", str(tmp_path / "docs"), "--no-entities", "--wait", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["summary"] == {"files": 4, "documents": 4, "chunks": 4, "ingested": 4}
        queued = data["queue"]
        assert queued["backend"] == "dramatiq" and queued["versions"] == 4
        assert queued["wait"] == {
            "done": len(queued["tasks"]),
            "dead": [],
            "versions_finished": 4,
        }
        # A command that needs the embedded stores names the owner instead.
        locked = janus_cli("verify")
        assert locked.returncode == 1
        assert f"in use by process {announced['pid']}" in locked.stderr
    finally:
        code, out, err = worker.terminate()
    assert code == 0, err
    assert json.loads(out.splitlines()[-1]) == {"status": "stopped", "pid": announced["pid"]}

    with ledger_only() as janus:
        counts = check_all(janus, entities=False)
        tasks = janus.queue.list(name=PROJECT_TASK)
        assert [task.status for task in tasks] == ["done"] * len(tasks)
    assert counts == inline_stats(lambda: files, home=tmp_path / "inline", entities=False)


@pytest.mark.usefixtures("slow_announcements")
def test_two_workers_on_overlapping_tasks_double_nothing(queue_url: str, tmp_path: Path) -> None:
    files = write_corpus(tmp_path / "docs", 8)
    handlers = TaskHandlers()
    with Janus(load_settings(), handlers) as janus:
        tasks = register_ingest_tasks(handlers, janus, extractor=shared_extractor())
        tasks.warm_up()
        batches = ProjectionQueue(janus, entities=True)
        # Batches of two versions, then every version again in two other groupings:
        # whichever worker takes a task, most of its versions are wanted elsewhere too.
        ingestor = Ingestor(
            janus, janus.embedder, IngestOptions(batch_chunks=2), projection_queue=batches
        )
        assert not ingestor.ingest(files, tenant=TENANT).failed
        versions = sorted(batches.work.versions)
        assert len(versions) == 8 and len(batches.work.tasks) == 4
        batches.submit(TENANT, versions)
        batches.submit(TENANT, versions[::2])
        batches.submit(TENANT, versions[1::2])

        second = queue_slot.open(
            janus.settings.slot_url("queue"), ledger=janus.ledger, handlers=handlers
        )
        try:
            janus.queue.start(3)
            second.start(3)
            outcome = batches.wait(timeout=IDLE)
        finally:
            second.close()
            janus.queue.stop()
        assert outcome.dead == [] and outcome.done == len(batches.work.tasks) == 7
        counts = check_all(janus, entities=True)
    assert counts == inline_stats(lambda: files, home=tmp_path / "inline", entities=True)


@pytest.mark.usefixtures("slow_announcements")
def test_the_same_task_run_twice_at_once_announces_every_version_once(
    tmp_path: Path, lock_cache: str
) -> None:
    """What a lease taken over from a worker that still runs looks like (no broker needed)."""
    files = write_corpus(tmp_path / "docs", 6)
    handlers = TaskHandlers()
    with Janus(load_settings(), handlers) as janus:
        tasks = register_ingest_tasks(handlers, janus)
        tasks.warm_up()
        batch = ProjectionQueue(janus, entities=False)
        Ingestor(
            janus, janus.embedder, IngestOptions(entities=False), projection_queue=batch
        ).ingest(files, tenant=TENANT)
        payload, _key = project_task(TENANT, sorted(batch.work.versions), entities=False)
        together = threading.Barrier(2)
        results: list[dict[str, Any]] = []

        def run() -> None:
            together.wait()
            results.append(tasks.project(dict(payload)))

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(IDLE)
        assert len(results) == 2
        assert janus.cache.backend == lock_cache
        counts = check_all(janus, entities=False)
    assert counts == inline_stats(lambda: files, home=tmp_path / "inline", entities=False)


@pytest.mark.usefixtures("slow_announcements")
@pytest.mark.parametrize("order", ["queued", "at-once"])
def test_a_file_changed_while_its_version_waits_ends_on_the_newer(
    tmp_path: Path, order: str
) -> None:
    """Two tasks for two versions of one document, run in queue order or side by side.

    In order, the older version's finish must not supersede the newer one;
    side by side, each finish would supersede the other and remove its
    chunks unless the document lock keeps them apart.
    """
    path = tmp_path / "memo.txt"
    handlers = TaskHandlers()
    with Janus(load_settings(), handlers) as janus:
        tasks = register_ingest_tasks(handlers, janus)
        tasks.warm_up()
        payloads = []
        for variant in ("", "b"):
            path.write_text(paragraph(7, variant), encoding="utf-8")
            batch = ProjectionQueue(janus, entities=False)
            Ingestor(
                janus, janus.embedder, IngestOptions(entities=False), projection_queue=batch
            ).ingest([path], tenant=TENANT)
            payloads.append(project_task(TENANT, sorted(batch.work.versions), entities=False)[0])
        assert payloads[0]["versions"] != payloads[1]["versions"]
        together = threading.Barrier(2 if order == "at-once" else 1)

        def run(payload: dict[str, Any]) -> None:
            together.wait()
            tasks.project(dict(payload))

        threads = [threading.Thread(target=run, args=(payload,)) for payload in payloads]
        for thread in threads:
            thread.start()
            if order == "queued":
                thread.join(IDLE)
        for thread in threads:
            thread.join(IDLE)
        counts = check_all(janus, entities=False)
        with janus.ledger.session() as session:
            current = session.scalars(
                sql_select(DocumentVersion.id).where(DocumentVersion.status == "done")
            ).all()
        assert current == payloads[1]["versions"]

    def before() -> list[Path]:
        path.write_text(paragraph(7), encoding="utf-8")
        return [path]

    def after() -> list[Path]:
        path.write_text(paragraph(7, "b"), encoding="utf-8")
        return [path]

    assert counts == inline_stats(before, after, home=tmp_path / "inline", entities=False)


def test_a_file_changed_while_a_worker_projects_it_ends_on_the_newer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`janus ingest` starts version 2 while a worker is still projecting version 1."""
    path = tmp_path / "memo.txt"
    path.write_text(paragraph(8), encoding="utf-8")
    handlers = TaskHandlers()
    with Janus(load_settings(), handlers) as janus:
        tasks = register_ingest_tasks(handlers, janus)
        tasks.warm_up()
        options = IngestOptions(entities=False)

        def produce() -> dict[str, Any]:
            batch = ProjectionQueue(janus, entities=False)
            Ingestor(janus, janus.embedder, options, projection_queue=batch).ingest(
                [path], tenant=TENANT
            )
            return project_task(TENANT, sorted(batch.work.versions), entities=False)[0]

        first = produce()
        later: list[dict[str, Any]] = []
        graph = Projector._graph

        def change_meanwhile(self: Projector, tenant: str, refs: Any) -> None:
            if not later:
                path.write_text(paragraph(8, "b"), encoding="utf-8")
                later.append(produce())
            graph(self, tenant, refs)

        monkeypatch.setattr(Projector, "_graph", change_meanwhile)
        tasks.project(dict(first))
        tasks.project(dict(later[0]))
        counts = check_all(janus, entities=False)
        with janus.ledger.session() as session:
            current = session.scalars(
                sql_select(DocumentVersion.id).where(DocumentVersion.status == "done")
            ).all()
        assert current == later[0]["versions"] != first["versions"]

    def before() -> list[Path]:
        path.write_text(paragraph(8), encoding="utf-8")
        return [path]

    def after() -> list[Path]:
        path.write_text(paragraph(8, "b"), encoding="utf-8")
        return [path]

    assert counts == inline_stats(before, after, home=tmp_path / "inline", entities=False)


def test_a_worker_killed_mid_task_is_finished_by_the_next_one(
    queue_url: str, tmp_path: Path
) -> None:
    files = write_corpus(tmp_path / "docs", 6)
    first = WorkerProcess("--workers", "1")
    try:
        result = janus_cli("ingest", str(tmp_path / "docs"), "--json")
        assert result.returncode == 0, result.stderr
        (task_id,) = json.loads(result.stdout)["queue"]["tasks"]
        first.started()
        # Killed between its index and entities stages (the spaCy model loads there):
        # points are written, no version is finished.
        with ledger_only() as janus:
            deadline = time.monotonic() + IDLE
            while not _count(janus, IngestionStage, stage="index"):
                assert time.monotonic() < deadline, "the worker never indexed anything"
                time.sleep(0.01)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
            assert _count(janus, DocumentVersion, status="done") < len(files)
            assert janus.queue.get(task_id).status == "running"
    finally:
        first.kill()

    second = WorkerProcess("--workers", "1")
    try:
        second.started()
        with ledger_only() as janus:
            assert janus.queue.wait_idle(IDLE)
    finally:
        code, _out, err = second.terminate()
    assert code == 0, err

    with ledger_only() as janus:
        task = janus.queue.get(task_id)
        assert task.status == "done" and task.attempts >= 2  # killed once, then run again
        counts = check_all(janus, entities=True)
    assert counts == inline_stats(lambda: files, home=tmp_path / "inline", entities=True)


def test_resume_requeues_unenqueued_versions_dead_tasks_and_vanished_records(
    queue_url: str, tmp_path: Path
) -> None:
    records = tmp_path / "records.jsonl"
    first = (paragraph(10), paragraph(11), paragraph(12))
    second = (paragraph(10), paragraph(11, "b"))
    files = write_corpus(tmp_path / "docs", 4)
    write_records(records, *first)
    options = IngestOptions(entities=False, batch_chunks=2)
    handlers = TaskHandlers()
    with Janus(load_settings(), handlers) as janus:
        tasks = register_ingest_tasks(handlers, janus)

        class Killed(BaseException):
            pass

        class KilledAfterOneBatch(ProjectionQueue):
            """A `janus ingest` killed after enqueuing its first batch."""

            def submit(self, tenant: str, version_ids: Any) -> Any:
                if self.work.tasks:
                    raise Killed
                return super().submit(tenant, version_ids)

        crashed = KilledAfterOneBatch(janus, entities=False)
        with pytest.raises(Killed):
            Ingestor(janus, janus.embedder, options, projection_queue=crashed).ingest(
                [*files, records], tenant=TENANT
            )
        for thread in threading.enumerate():  # the reader thread outlives its consumer
            if thread.name == "janus-ingest-reader":
                thread.join(IDLE)
        (enqueued,) = crashed.work.tasks
        # Its one task then failed for good (as after a dead store).
        with janus.ledger.session() as session:
            session.execute(update(Task).where(Task.id == enqueued).values(status="dead"))

        resumed = ProjectionQueue(janus, entities=False)
        Ingestor(janus, janus.embedder, options, projection_queue=resumed).resume()
        assert resumed.work.resumed == _count(janus, DocumentVersion, status="pending")
        assert enqueued in resumed.work.tasks  # revived, not duplicated
        tasks.warm_up()
        janus.queue.start(2)
        assert not resumed.wait(timeout=IDLE).dead
        check_all(janus, entities=False)

        # A record vanished from the file: the ledger drops it now, a worker its points.
        write_records(records, *second)
        changed = ProjectionQueue(janus, entities=False)
        Ingestor(janus, janus.embedder, options, projection_queue=changed).ingest(
            [records], tenant=TENANT
        )
        assert changed.work.cleanups == 1
        assert not changed.wait(timeout=IDLE).dead
        janus.queue.stop()
        counts = check_all(janus, entities=False)
    same = tmp_path / "inline-records.jsonl"

    def before() -> list[Path]:
        write_records(same, *first)
        return [*files, same]

    def after() -> list[Path]:
        write_records(same, *second)
        return [same]

    assert counts == inline_stats(before, after, home=tmp_path / "inline", entities=False)


def _count(janus: Janus, model: Any, **equals: Any) -> int:
    query = sql_select(func.count()).select_from(model)
    for column, value in equals.items():
        query = query.where(getattr(model, column) == value)
    with janus.ledger.session() as session:
        return int(session.scalar(query) or 0)


def test_a_worker_runs_queued_ingestion_and_workflow_runs(queue_url: str) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    agents = ["--agents-dir", str(examples / "agents")]
    worker = WorkerProcess(*agents)
    try:
        assert "workflow.run" in worker.started()["tasks"]
        docs = sorted(str(p) for p in (examples / "docs").glob("*.md"))
        ingested = janus_cli("ingest", "--no-entities", "--wait", *docs, "--json")
        assert ingested.returncode == 0, ingested.stderr
        run = janus_cli(
            "run",
            str(examples / "workflows" / "research.yaml"),
            *agents,
            "--input",
            "question=Who commanded Apollo 8?",
            "--json",
        )
        result = json.loads(run.stdout)
        assert (run.returncode, result["status"]) == (0, "done"), run.stdout
        assert "Borman" in result["output"]["summary"]
    finally:
        code, _out, err = worker.terminate()
    assert code == 0, err
