"""The enqueuing side of ingestion: what ``janus ingest`` hands to workers.

With a broker queue configured (any queue backend but the in-process
``inline://``) the ingesting process keeps the producer stages — read,
store, extract, chunk, ``start_version`` — and enqueues the projection of
each batch as an ``ingest.project`` task instead of running it. It then needs
only the ledger, the object store and the embedder's tokenizer, never the
single-writer vector or graph engines, so it can run beside a ``janus
worker`` that holds JANUS_HOME.

Resume works the same way: unfinished versions that no pending task covers
are re-queued, dead tasks get a fresh set of attempts, and half-done removals
become ``ingest.cleanup`` tasks. A killed worker's tasks need nothing from
here: their leases run out and the next worker takes them over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.ingest.removal import release_object
from janus_stack.ingest.tasks import (
    CLEANUP_TASK,
    PROJECT_TASK,
    UNFINISHED,
    cleanup_task,
    project_task,
    register_ingest_tasks,
)
from janus_stack.ledger.models import DocumentVersion
from janus_stack.slots.queue import TaskRecord
from janus_stack.slots.queue.tasks import DEAD, DONE, PENDING

__all__ = ["ProjectionQueue", "QueuedWork", "ensure_ingest_tasks", "queued_mode"]

RESUME_BATCH = 64
CLEANUP_BATCH = 500
_LIST_LIMIT = 10_000
_ID_BATCH = 500

WaitProgress = Callable[[int, int], None]


def queued_mode(janus: Janus) -> bool:
    """Whether ingestion hands its projection stages to workers (a non-inline queue)."""
    return janus.settings.slot_url("queue").scheme != "inline"


def ensure_ingest_tasks(janus: Janus) -> None:
    """Register the ingest tasks on ``janus.handlers`` unless something already did."""
    if PROJECT_TASK not in janus.handlers:
        register_ingest_tasks(janus.handlers, janus)


@dataclass
class QueuedWork:
    """What one ingest run handed to the queue.

    Attributes:
        tasks: the task records (as first seen), one per task id.
        versions: the document versions those tasks project.
        cleanups: how many cleanup tasks were enqueued.
        resumed: versions re-queued from the ledger by a resume.
    """

    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    versions: set[int] = field(default_factory=set)
    cleanups: int = 0
    resumed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tasks": sorted(self.tasks),
            "versions": len(self.versions),
            "cleanups": self.cleanups,
            "resumed_versions": self.resumed,
        }


@dataclass
class WaitOutcome:
    """How the enqueued tasks ended: finished versions and the ids of dead tasks."""

    done: int = 0
    dead: list[str] = field(default_factory=list)
    versions_finished: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "dead": sorted(self.dead),
            "versions_finished": self.versions_finished,
        }


class ProjectionQueue:
    """Enqueues projection and cleanup work for ``janus`` and waits for it.

    Args:
        janus: the open context; its queue must not be ``inline://``.
        entities: whether the workers extract entities for these versions.
    """

    def __init__(self, janus: Janus, *, entities: bool) -> None:
        ensure_ingest_tasks(janus)
        self.janus = janus
        self.entities = entities
        self.documents = DocumentLedger(janus.ledger)
        self.work = QueuedWork()

    @property
    def backend(self) -> str:
        return self.janus.queue.backend

    def submit(self, tenant: str, version_ids: Sequence[int]) -> TaskRecord | None:
        """Enqueue the projection of ``version_ids`` (one tenant) as one task."""
        if not version_ids:
            return None
        payload, key = project_task(tenant, version_ids, entities=self.entities)
        ids = sorted(set(version_ids))
        record = self._enqueue(PROJECT_TASK, payload, key, lambda: self._finished(ids) < len(ids))
        self.work.tasks.setdefault(record.id, record)
        self.work.versions.update(version_ids)
        return record

    def requeue_unfinished(self, tenant: str | None = None) -> int:
        """Re-queue what a killed run left; returns how many versions were re-queued.

        Versions covered by a queued, running or retrying task are left to
        it (a task whose worker died is recovered by the next worker); a dead
        task with unfinished versions gets a fresh set of attempts; a version
        whose document has a newer live version waits for that one to
        supersede it; the others go out in batches of :data:`RESUME_BATCH`.
        """
        revived = self._revive_dead(tenant)
        covered = self._covered_versions(tenant) | revived
        query = select(
            DocumentVersion.id, DocumentVersion.tenant_id, DocumentVersion.document_id
        ).where(DocumentVersion.status.in_(UNFINISHED))
        if tenant is not None:
            query = query.where(DocumentVersion.tenant_id == tenant)
        with self.janus.ledger.session() as session:
            rows = session.execute(query.order_by(DocumentVersion.id)).all()
        newest: dict[str, int] = {}
        for version_id, _owner, document_id in rows:
            newest[document_id] = max(newest.get(document_id, 0), version_id)
        by_tenant: dict[str, list[int]] = {}
        for version_id, owner, document_id in rows:
            if version_id not in covered and newest[document_id] == version_id:
                by_tenant.setdefault(owner, []).append(version_id)
        for owner, ids in by_tenant.items():
            for start in range(0, len(ids), RESUME_BATCH):
                self.submit(owner, ids[start : start + RESUME_BATCH])
        leftovers: dict[str, list[str]] = {}
        for owner, doc_id, _object_keys in self.documents.leftovers(tenant):
            leftovers.setdefault(owner, []).append(doc_id)
        for owner, doc_ids in leftovers.items():
            for start in range(0, len(doc_ids), CLEANUP_BATCH):
                self.cleanup(owner, doc_ids[start : start + CLEANUP_BATCH])
        unfinished = {row[0] for row in rows}
        resumed = len(revived & unfinished) + sum(len(ids) for ids in by_tenant.values())
        self.work.resumed += resumed
        return resumed

    def cleanup(self, tenant: str, doc_ids: Sequence[str]) -> TaskRecord | None:
        """Enqueue settling ``doc_ids`` (remove or re-point what no live version carries)."""
        if not doc_ids:
            return None
        payload, key = cleanup_task(tenant, doc_ids)
        record = self._enqueue(CLEANUP_TASK, payload, key, lambda: True)
        self.work.tasks.setdefault(record.id, record)
        self.work.cleanups += 1
        return record

    def defer_removal(self, tenant: str, document_id: str) -> None:
        """Delete a document in the ledger now and leave its projections to a worker.

        What ``delete_document`` does, with the vector and graph writes moved
        into an ``ingest.cleanup`` task. The ledger goes first, as there: a
        crash in between leaves leftovers that the next resume re-queues.
        """
        versions = self.documents.mark_deleted(tenant, document_id)
        if not versions:
            return
        removed: list[str] = []
        kept: list[str] = []
        objects: list[str] = []
        for _tenant, doc_id, object_key in versions:
            if doc_id:
                live = self.documents.live_doc_id_count(tenant, doc_id)
                (kept if live else removed).append(doc_id)
            if release_object(self.janus, self.documents, object_key):
                objects.append(object_key)
        self.janus.events.append(
            tenant=tenant,
            actor="ingest",
            type="document.deleted",
            subject=document_id,
            payload={
                "doc_ids_removed": removed,
                "doc_ids_kept": kept,
                "objects_removed": objects,
                "queued": True,
            },
        )
        self.cleanup(tenant, removed + kept)

    def wait(
        self,
        *,
        progress: WaitProgress | None = None,
        timeout: float | None = None,
        poll: float = 0.2,
    ) -> WaitOutcome:
        """Wait until every enqueued task is done or dead, reporting progress.

        ``progress(tasks_ended, versions_finished)`` is called after every
        poll. Returns early (with what ended so far) after ``timeout`` seconds.
        """
        queue = self.janus.queue
        outcome = WaitOutcome()
        open_ids = set(self.work.tasks)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for task_id in sorted(open_ids):
                status = queue.get(task_id).status
                if status == DONE:
                    outcome.done += 1
                elif status == DEAD:
                    outcome.dead.append(task_id)
                else:
                    continue
                open_ids.discard(task_id)
            outcome.versions_finished = self._finished(sorted(self.work.versions))
            if progress is not None:
                progress(outcome.done + len(outcome.dead), outcome.versions_finished)
            if not open_ids or (deadline is not None and time.monotonic() >= deadline):
                return outcome
            time.sleep(poll)

    # -- helpers -----------------------------------------------------------------------

    def _enqueue(
        self, name: str, payload: dict[str, Any], key: str, needed: Callable[[], bool]
    ) -> TaskRecord:
        """Enqueue once per key; revive a dead task, follow up on a stale finished one."""
        queue = self.janus.queue
        tenant = payload["tenant"]
        base = key
        record = queue.enqueue(name, payload, idempotency_key=key, tenant=tenant)
        for _ in range(100):
            if record.status == DEAD:
                try:
                    return queue.retry(record.id)
                except InvalidInputError:  # another process revived it first
                    return queue.get(record.id)
            if record.status != DONE or not needed():
                return record
            # The same unit of work finished before and is needed again
            # (e.g. a doc_id left over a second time): chain a follow-up.
            key = f"{base}:after:{record.id}"
            record = queue.enqueue(name, payload, idempotency_key=key, tenant=tenant)
        return record

    def _covered_versions(self, tenant: str | None) -> set[int]:
        queue = self.janus.queue
        covered: set[int] = set()
        for status in PENDING:
            for record in queue.list(
                status=status, name=PROJECT_TASK, limit=_LIST_LIMIT, tenant=tenant
            ):
                covered.update(_versions(record))
        return covered

    def _revive_dead(self, tenant: str | None) -> set[int]:
        """Retry dead projection tasks whose versions are still unfinished; return those."""
        queue = self.janus.queue
        revived: set[int] = set()
        for record in queue.list(status=DEAD, name=PROJECT_TASK, limit=_LIST_LIMIT, tenant=tenant):
            ids = sorted(_versions(record))
            if not ids or self._finished(ids) == len(ids):
                continue
            try:
                retried = queue.retry(record.id)
            except InvalidInputError:  # another process revived it first
                retried = queue.get(record.id)
            self.work.tasks.setdefault(retried.id, retried)
            self.work.versions.update(ids)
            revived.update(ids)
        return revived

    def _finished(self, version_ids: list[int]) -> int:
        finished = 0
        with self.janus.ledger.session() as session:
            for start in range(0, len(version_ids), _ID_BATCH):
                part = version_ids[start : start + _ID_BATCH]
                finished += int(
                    session.scalar(
                        select(func.count())
                        .select_from(DocumentVersion)
                        .where(
                            DocumentVersion.id.in_(part), DocumentVersion.status.not_in(UNFINISHED)
                        )
                    )
                    or 0
                )
        return finished


def _versions(record: TaskRecord) -> list[int]:
    return [int(v) for v in record.payload.get("versions", [])]
