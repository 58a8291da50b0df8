"""Ingestion as queue tasks: the stages after chunking, run by ``janus worker``.

With a broker queue (``amqp://``) ``janus ingest`` reads, stores, extracts
and chunks in its own process and hands the rest to workers as tasks:

    ingest.project  {"tenant", "versions": [ids], "entities": bool}
        embed → index → entities → graph → done for those versions
        (``Projector.run``: idempotent, every stage marked in the ledger)
    ingest.cleanup  {"tenant", "doc_ids": [...]}
        settle contributions a version no longer carries (a vanished
        sub-document, a half-done removal found by resume)

**Why a lock, and on what.** The queue runs each *task* once at a time (its
row is claimed atomically), not each *version*: a resume may re-queue a
version in another batch than the task already queued for it, and a worker
whose task lease lapsed may still be running when another takes the task
over. Two projections of one version would announce it twice
(``document.ingested``); two versions of one document projected side by
side can finish in the wrong order, the older superseding the newer and
leaving orphaned points. So a task first takes, in one global order (no
deadlock), a leased semaphore of limit 1 per *document* and per *doc_id*
(content shared by identical files) of its unfinished versions, and only
then reads their state: whatever another worker finished meanwhile is a
no-op. A lock per version alone would not order two versions of one
document. Order matters even one at a time: a file changed while its first
version waits in the queue has two pending versions, and the first task
taken is usually the older one's. So a version whose document has a newer
live version is skipped (the newer one's finish supersedes it), and a
finish supersedes only older versions, never one started meanwhile.

**Why the cache slot's semaphore rather than a ledger-side claim.** Its
leases lapse on their own, so a killed worker frees its documents within one
lease with no recovery sweep; they are renewed by a heartbeat while a batch
runs; on Redis they are atomic across machines; and they need no new ledger
schema (a claim column would, and every worker would then poll the ledger
for lapsed claims). The price: the in-process ``memory://`` cache binds the
threads of one process only. That suffices whenever the vector index or the
graph is embedded (JANUS_HOME then admits one worker process); several
worker processes with server stores need a shared cache (``redis://``), and
``janus worker`` warns when it starts without one (:func:`locks_are_shared`).

Entity extraction is serialised inside a process (a CPU-bound, GIL-bound
step whose spaCy pipeline is not documented as thread-safe), and a unique
violation from two batches inserting the same new entity at once is
answered by running the (idempotent) projection again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from janus_stack.context import Janus
from janus_stack.errors import InvalidInputError
from janus_stack.ids import check_tenant
from janus_stack.ingest.documents import LIVE, DocumentLedger, VersionRef
from janus_stack.ingest.entities import ChunkFindings, ChunkText, EntityExtractor
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.removal import release_object, settle_doc_id
from janus_stack.ingest.spacy_extractor import SpacyEntityExtractor
from janus_stack.ledger.models import DocumentVersion
from janus_stack.slots.cache import Lease
from janus_stack.slots.queue import TaskHandlers

__all__ = [
    "CLEANUP_TASK",
    "PROJECT_TASK",
    "IngestTasks",
    "cleanup_task",
    "locks_are_shared",
    "project_task",
    "register_ingest_tasks",
]

PROJECT_TASK = "ingest.project"
CLEANUP_TASK = "ingest.cleanup"
UNFINISHED = ("pending", "running")
LOCK_LEASE_SECONDS = 60.0
LOCK_WAIT_SECONDS = 1800.0
CONFLICT_RUNS = 3
MAX_ITEMS = 5000

log = logging.getLogger(__name__)


def _digest(items: Iterable[object]) -> str:
    return hashlib.sha256(",".join(str(item) for item in items).encode()).hexdigest()[:40]


def project_task(
    tenant: str, version_ids: Sequence[int], *, entities: bool
) -> tuple[dict[str, Any], str]:
    """The payload of an ``ingest.project`` task and its idempotency key.

    The key is derived from the sorted version ids (unique in a ledger) and
    the entities flag, so enqueuing the same batch twice schedules it once.
    """
    versions = sorted(set(version_ids))
    payload = {"tenant": tenant, "versions": versions, "entities": entities}
    flag = "e" if entities else "n"
    return payload, f"{PROJECT_TASK}:{tenant}:{flag}:{_digest(versions)}"


def cleanup_task(tenant: str, doc_ids: Sequence[str]) -> tuple[dict[str, Any], str]:
    """The payload of an ``ingest.cleanup`` task and its idempotency key."""
    wanted = sorted(set(doc_ids))
    return {"tenant": tenant, "doc_ids": wanted}, f"{CLEANUP_TASK}:{tenant}:{_digest(wanted)}"


def locks_are_shared(janus: Janus) -> bool:
    """Whether the per-document locks reach every process that could run ingest tasks.

    True with a shared cache, or when an embedded vector index or graph
    confines the workers of this JANUS_HOME to one process.
    """
    if janus.settings.slot_url("cache").scheme != "memory":
        return True
    return janus.vectors.single_writer or janus.graph.single_writer


def register_ingest_tasks(
    handlers: TaskHandlers, janus: Janus, *, extractor: EntityExtractor | None = None
) -> IngestTasks:
    """Add the ingest tasks to ``handlers``, run against ``janus``; returns their runner.

    The enqueuing process registers them too (the queue checks the name and
    takes the retry options from here) but never runs them unless it starts
    workers. ``extractor`` replaces the default spaCy entity extractor.
    """
    tasks = IngestTasks(janus, extractor=extractor)
    handlers.register(PROJECT_TASK, tasks.project, max_attempts=5, backoff_max=60.0)
    handlers.register(CLEANUP_TASK, tasks.cleanup, max_attempts=5, backoff_max=60.0)
    return tasks


class _Serialised(EntityExtractor):
    """One extraction at a time through a shared extractor."""

    def __init__(self, inner: EntityExtractor) -> None:
        super().__init__(exclude_types=inner.exclude_types)
        self._inner = inner
        self._lock = threading.Lock()

    def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
        with self._lock:
            return self._inner.find_candidates(chunks)


class IngestTasks:
    """The handlers of the ingest tasks; one per ``Janus`` context, shared by its workers.

    Constructing it does no I/O; the entity model loads on the first task
    that needs it, and :meth:`warm_up` opens every store up front.

    Args:
        janus: the context whose stores the tasks write.
        lock_lease: seconds a document lock lives without a heartbeat.
        lock_wait: seconds a task waits for documents another task holds
            before failing (and being retried by the queue).
        extractor: the entity extractor (default: spaCy, loaded on first use).
    """

    def __init__(
        self,
        janus: Janus,
        *,
        lock_lease: float = LOCK_LEASE_SECONDS,
        lock_wait: float = LOCK_WAIT_SECONDS,
        extractor: EntityExtractor | None = None,
    ) -> None:
        self.janus = janus
        self.extractor = _Serialised(extractor or SpacyEntityExtractor())
        self.lock_lease = lock_lease
        self.lock_wait = lock_wait
        self._setup = threading.Lock()
        self._projectors: dict[bool, Projector] = {}

    def warm_up(self) -> None:
        """Open the ledger and every store the tasks use (JANUS_HOME lock included).

        Call it before starting workers: the context opens slots lazily, and
        that is not safe from several worker threads at once.
        """
        with self._setup:
            for name in ("cache", "embeddings", "objects", "vectors", "graph"):
                self.janus.open_slot(name)

    def _projector(self, entities: bool) -> Projector:
        with self._setup:
            projector = self._projectors.get(entities)
            if projector is None:
                for name in ("cache", "embeddings", "objects", "vectors", "graph"):
                    self.janus.open_slot(name)
                projector = Projector(
                    self.janus,
                    self.janus.embedder,
                    DocumentLedger(self.janus.ledger),
                    extractor=self.extractor if entities else None,
                )
                self._projectors[entities] = projector
            return projector

    # -- handlers ----------------------------------------------------------------------

    def project(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``ingest.project``: run the projection stages for the payload's versions."""
        tenant = check_tenant(payload.get("tenant", ""))
        versions = _int_list(payload.get("versions"), "versions")
        entities = payload.get("entities", True)
        if not isinstance(entities, bool):
            raise InvalidInputError(f"{PROJECT_TASK}: entities must be true or false")
        projector = self._projector(entities)
        documents = projector.documents
        refs = [documents.version(version_id) for version_id in versions]
        foreign = [ref.version_id for ref in refs if ref.tenant != tenant]
        if foreign:
            raise InvalidInputError(f"{PROJECT_TASK}: versions {foreign} are not tenant {tenant}")
        todo = [ref for ref in refs if ref.status in UNFINISHED]
        if not todo:
            return {"versions": len(versions), "projected": 0}
        keys = {f"ingest:doc:{ref.doc_id}" for ref in todo}
        keys |= {f"ingest:document:{ref.document_id}" for ref in todo}
        with self._locked(keys):
            # A version whose document changed again since is left to the newer
            # version, whose finish supersedes it: projecting it would be wasted.
            obsolete = newer_versions_exist(self.janus, todo)
            todo = [ref for ref in todo if ref.version_id not in obsolete]
            for run in range(1, CONFLICT_RUNS + 1):
                try:
                    if todo:
                        projector.run([ref.version_id for ref in todo])
                    break
                except SAIntegrityError:
                    # Another batch inserted the same new entity or relation first;
                    # the stages are idempotent, so running again completes ours.
                    if run == CONFLICT_RUNS:
                        raise
                    log.info("ingest.project: write conflict, running the batch again")
        return {"versions": len(versions), "projected": len(todo)}

    def cleanup(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``ingest.cleanup``: remove (or re-point) what no live version of a doc_id carries."""
        tenant = check_tenant(payload.get("tenant", ""))
        doc_ids = _str_list(payload.get("doc_ids"), "doc_ids")
        documents = self._projector(False).documents
        removed: list[str] = []
        with self._locked({f"ingest:doc:{doc_id}" for doc_id in doc_ids}):
            for doc_id in doc_ids:
                if settle_doc_id(self.janus, documents, tenant, doc_id):
                    removed.append(doc_id)
                for object_key in _object_keys(self.janus, tenant, doc_id):
                    release_object(self.janus, documents, object_key)
        return {"doc_ids": len(doc_ids), "removed": len(removed)}

    # -- locks -------------------------------------------------------------------------

    @contextmanager
    def _locked(self, keys: set[str]) -> Iterator[None]:
        """Hold every key (sorted: no two tasks wait on each other) with renewed leases."""
        holder = uuid.uuid4().hex
        leases: list[Lease] = []
        stop = threading.Event()
        with ExitStack() as stack:
            for key in sorted(keys):
                leases.append(
                    stack.enter_context(
                        self.janus.cache.semaphore(
                            key,
                            limit=1,
                            lease_seconds=self.lock_lease,
                            wait_timeout=self.lock_wait,
                            holder=holder,
                        )
                    )
                )
            heartbeat = threading.Thread(
                target=self._renew, args=(leases, stop), name="janus-ingest-locks", daemon=True
            )
            heartbeat.start()
            try:
                yield
            finally:
                stop.set()
                heartbeat.join()

    def _renew(self, leases: list[Lease], stop: threading.Event) -> None:
        while not stop.wait(self.lock_lease / 3):
            for lease in leases:
                try:
                    if not self.janus.cache.renew(lease, self.lock_lease):
                        log.warning("ingest lock %s lapsed while its task ran", lease.key)
                except Exception:
                    log.warning("could not renew ingest lock %s", lease.key, exc_info=True)


def newer_versions_exist(janus: Janus, refs: Iterable[VersionRef]) -> set[int]:
    """The version ids among ``refs`` whose document has a newer live version."""
    wanted = {ref.version_id: ref.document_id for ref in refs}
    if not wanted:
        return set()
    with janus.ledger.session() as session:
        newest = dict(
            session.execute(
                select(DocumentVersion.document_id, func.max(DocumentVersion.id))
                .where(
                    DocumentVersion.document_id.in_(set(wanted.values())),
                    DocumentVersion.status.in_(LIVE),
                )
                .group_by(DocumentVersion.document_id)
            ).all()
        )
    return {version for version, document in wanted.items() if newest.get(document, 0) > version}


def _object_keys(janus: Janus, tenant: str, doc_id: str) -> list[str]:
    with janus.ledger.session() as session:
        return sorted(
            set(
                session.scalars(
                    select(DocumentVersion.object_key).where(
                        DocumentVersion.tenant_id == tenant, DocumentVersion.doc_id == doc_id
                    )
                )
            )
        )


def _int_list(value: object, name: str) -> list[int]:
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_ITEMS
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidInputError(f"task payload: {name} must be a list of 1 to {MAX_ITEMS} ids")
    return sorted(set(value))


def _str_list(value: object, name: str) -> list[str]:
    if (
        not isinstance(value, list)
        or not 0 < len(value) <= MAX_ITEMS
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise InvalidInputError(f"task payload: {name} must be a list of 1 to {MAX_ITEMS} ids")
    return sorted(set(value))
