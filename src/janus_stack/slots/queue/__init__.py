"""The queue slot: background work whose durable state lives in the ledger.

A backend is only a transport. ``TaskQueue`` validates input, writes the
``tasks`` row, runs handlers and applies the retry/dead-letter state machine
(``tasks.TaskStore``) once for every backend; a backend delivers task ids to
worker threads (``_dispatch``) and starts/stops those workers. Because
delivery is "at least once" and every run starts with an atomic claim of the
row, duplicate or lost messages cost a no-op or a delay, never a double run
or a lost task.

    inline://?workers=4                    threads in this process, fed from the ledger
    amqp://user:pass@host:5672/vhost?prefix=janus&workers=4   Dramatiq on RabbitMQ

Options shared by every backend (URL query): ``workers`` (default 4),
``lease`` (seconds a running task may go without a heartbeat before it counts
as abandoned, default 30), ``max_payload`` (bytes of JSON, default 262144).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
import uuid
from typing import Any, ClassVar

from janus_stack.errors import InvalidInputError, JanusError
from janus_stack.ledger.database import Ledger
from janus_stack.slots.base import Slot, load_backend
from janus_stack.slots.params import check_params, float_param
from janus_stack.slots.queue.attempt import normalise_payload, run_handler
from janus_stack.slots.queue.handlers import Handler, TaskHandlers, TaskOptions
from janus_stack.slots.queue.tasks import DEAD, DONE, STATUSES, TaskRecord, TaskStore
from janus_stack.urls import SlotURL

__all__ = [
    "BACKENDS",
    "PROBE_TASK",
    "TaskHandlers",
    "TaskOptions",
    "TaskQueue",
    "TaskRecord",
    "open",
]

BACKENDS = {
    "inline": "queue.inline:InlineQueue",
    "amqp": "queue.dramatiq:DramatiqQueue",
    "amqps": "queue.dramatiq:DramatiqQueue",
}
PROBE_TASK = "janus.probe"
DOCTOR_TENANT = "_doctor"
COMMON_OPTIONS = ("workers", "lease", "max_payload")

log = logging.getLogger(__name__)


def _probe(payload: dict[str, Any]) -> dict[str, Any]:
    return {"echo": payload.get("nonce")}


class TaskQueue(Slot):
    """The contract every queue backend fulfils; see the module docstring.

    Backends implement the transport only: ``_open_transport``,
    ``_close_transport``, ``_dispatch``, ``_start_workers``, ``_stop_workers``.
    """

    slot: ClassVar[str] = "queue"
    extra_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, url: SlotURL, *, ledger: Ledger, handlers: TaskHandlers) -> None:
        super().__init__(url)
        check_params(url, COMMON_OPTIONS + self.extra_options)
        self._ledger = ledger
        self._handlers = handlers
        self._store = TaskStore(ledger)
        self.workers = int(float_param(url, "workers", 4, minimum=1))
        self.lease = float_param(url, "lease", 30.0, minimum=0.1)
        self.max_payload = int(float_param(url, "max_payload", 256 * 1024, minimum=2))
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._started = False
        self._halt = threading.Event()
        self._maintenance: threading.Thread | None = None

    # -- transport core, per backend -------------------------------------------------

    def _open_transport(self) -> None:
        raise NotImplementedError

    def _close_transport(self) -> None:
        raise NotImplementedError

    def _dispatch(self, task_id: str, delay_seconds: float) -> None:
        """Deliver ``task_id`` to a worker no sooner than ``delay_seconds`` from now."""
        raise NotImplementedError

    def _start_workers(self, workers: int) -> None:
        raise NotImplementedError

    def _stop_workers(self, timeout: float) -> None:
        raise NotImplementedError

    def _may_have_lost(self) -> bool:
        """Whether claimable rows overdue by a lease may have lost their message.

        A transport that reads due rows from the ledger never loses one; a
        broker should say yes only when its queue is drained, or a long but
        healthy backlog would be delivered again on every sweep.
        """
        return False

    # -- lifecycle --------------------------------------------------------------------

    def _open(self) -> None:
        self._store.check()
        self._open_transport()

    def _close(self) -> None:
        self._shutdown(timeout=30.0)
        self._close_transport()

    @property
    def started(self) -> bool:
        return self._started

    def start(self, workers: int | None = None) -> None:
        """Recover abandoned work from the ledger, then run ``workers`` worker threads.

        Idempotent while started. The process that calls it must have
        registered handlers for the tasks it will be handed.
        """
        self._require_open()
        if self._started:
            return
        count = self.workers if workers is None else workers
        if count < 1:
            raise InvalidInputError(f"queue slot: workers must be at least 1, not {count}")
        self._sweep()
        self._start_workers(count)
        self._halt.clear()
        self._maintenance = threading.Thread(
            target=self._maintain, name="janus-queue-maintenance", daemon=True
        )
        self._maintenance.start()
        self._started = True

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work and wait up to ``timeout`` seconds for running tasks to finish.

        Leases keep being extended until the workers are gone, so a slow task
        finishing during shutdown is not mistaken for an abandoned one.
        """
        self._require_open()
        self._shutdown(timeout)

    def _shutdown(self, timeout: float) -> None:
        if not self._started:
            return
        self._started = False
        try:
            self._stop_workers(timeout)
        finally:
            self._halt.set()
            if self._maintenance is not None:
                self._maintenance.join(timeout)
                self._maintenance = None

    # -- the public API ---------------------------------------------------------------

    def enqueue(
        self, name: str, payload: dict[str, Any], *, idempotency_key: str, tenant: str
    ) -> TaskRecord:
        """Record a task durably, then hand it to the transport.

        A second call with the same ``idempotency_key`` returns the first
        task's record (whatever its state) and schedules nothing. Once this
        returns the task is in the ledger: if the transport fails to deliver
        it, a worker's recovery sweep will.
        """
        self._require_open()
        handler = self._lookup(name)
        if handler is None:
            known = ", ".join(self._handlers.names()) or "none registered"
            raise InvalidInputError(
                f"queue slot: unknown task {name!r}; known tasks: {known}",
                hint="register the handler in the TaskHandlers given to the queue",
            )
        if not isinstance(tenant, str) or not 0 < len(tenant) <= 64:
            raise InvalidInputError(f"task {name!r}: tenant must be 1 to 64 characters")
        if not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 300:
            raise InvalidInputError(f"task {name!r}: idempotency_key must be 1 to 300 characters")
        normalised = normalise_payload(name, payload, self.max_payload)
        with self.telemetry.span(f"queue.enqueue {name}", kind="producer", task=name):
            record, created = self._store.insert(
                name=name,
                tenant=tenant,
                key=idempotency_key,
                payload=normalised,
                max_attempts=handler[1].max_attempts,
                trace_context=self.telemetry.carrier(),
            )
        if not created:
            if (record.name, record.tenant, record.payload) != (name, tenant, normalised):
                raise InvalidInputError(
                    f"idempotency key {idempotency_key!r} already belongs to task {record.id} "
                    f"({record.name!r}, tenant {record.tenant!r}) with a different "
                    "name, tenant or payload",
                    hint="use a key that identifies exactly one unit of work",
                )
            return record
        self.telemetry.task_enqueued(name)
        self._deliver(record.id, 0.0)
        return record

    def get(self, task_id: str) -> TaskRecord:
        self._require_open()
        return self._store.get(task_id)

    def list(
        self,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        *,
        tenant: str | None = None,
    ) -> builtins.list[TaskRecord]:
        """Newest first, optionally filtered by status, task name and tenant."""
        self._require_open()
        if status is not None and status not in STATUSES:
            raise InvalidInputError(
                f"unknown task status {status!r}; expected one of {', '.join(STATUSES)}"
            )
        if not 1 <= limit <= 10_000:
            raise InvalidInputError(f"limit must be between 1 and 10000, not {limit}")
        return self._store.list(status=status, name=name, tenant=tenant, limit=limit)

    def retry(self, task_id: str) -> TaskRecord:
        """Put a dead task back in the queue with a fresh set of attempts."""
        self._require_open()
        record = self._store.requeue_dead(task_id)
        self._deliver(record.id, 0.0)
        return record

    def wait_idle(self, timeout: float, *, tenant: str | None = None) -> bool:
        """Wait until no task is queued, running or retrying; False on timeout."""
        self._require_open()
        deadline = time.monotonic() + timeout
        while self._store.pending(tenant) > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def probe(self, timeout: float = 10.0) -> None:
        """Round-trip a no-op task through the transport and the ledger (``janus doctor``).

        Uses running workers when there are some, else starts one for the
        probe (which may also pick up other due tasks meanwhile, as any
        worker would). The probe row is deleted afterwards whatever the outcome.
        """
        self._require_open()
        nonce = uuid.uuid4().hex
        key = f"{DOCTOR_TENANT}:probe:{nonce}"
        record = self.enqueue(
            PROBE_TASK, {"nonce": nonce}, idempotency_key=key, tenant=DOCTOR_TENANT
        )
        temporary = not self._started
        try:
            if temporary:
                self.start(1)
            deadline = time.monotonic() + timeout
            current = record
            while current.status not in (DONE, DEAD) and time.monotonic() < deadline:
                time.sleep(0.02)
                current = self._store.get(record.id)
        finally:
            if temporary:
                self._shutdown(timeout)
            self._store.delete(record.id)
        if current.status != DONE or current.result != {"echo": nonce}:
            raise JanusError(
                f"queue slot ({self.backend} at {self.url.redacted}): the probe task ended "
                f"{current.status!r} after {timeout:g}s (last error: {current.last_error})",
                hint="check the worker logs and that the transport is reachable",
            )

    # -- execution: the state machine, once for every backend --------------------------

    def _lookup(self, name: str) -> tuple[Handler, TaskOptions] | None:
        if name == PROBE_TASK:
            return _probe, TaskOptions(max_attempts=1)
        return self._handlers.get(name)

    def _execute(self, task_id: str) -> None:
        """Claim, run and settle one delivered task; a no-op if another worker owns it."""
        claim = self._store.claim(task_id, self.lease)
        if claim.record is not None:
            self._run_claimed(claim.record)
        elif claim.wait_seconds > 0:  # delivered early (clock skew, recovery): try again later
            self._deliver(task_id, claim.wait_seconds)

    def _run_claimed(self, record: TaskRecord) -> None:
        """Run a task this worker has claimed and record the outcome.

        The attempt runs inside the trace and request that queued the task
        (its ``trace_context``), so its spans, log lines and events join them.
        """
        entry = self._lookup(record.name)
        options = TaskOptions() if entry is None else entry[1]
        with self._lock:
            self._running.add(record.id)
        with self.telemetry.task_run(
            record.name, record.trace_context, **{"janus.task_id": record.id}
        ) as run:
            try:
                error, result = run_handler(record, entry)
            finally:
                with self._lock:
                    self._running.discard(record.id)
            run.outcome = self._settle(record, options, error, result)

    def _settle(
        self,
        record: TaskRecord,
        options: TaskOptions,
        error: str | None,
        result: dict[str, Any] | None,
    ) -> str:
        """Record an attempt's outcome: ``done``, ``retry``, ``dead`` or ``superseded``."""
        if error is None:
            if not self._store.complete(record.id, record.attempts, result):
                log.warning("task %s finished after its lease was taken over", record.id)
                return "superseded"
            return "done"
        outcome = self._store.fail(record.id, record.attempts, error, options)
        if outcome is None:
            return "superseded"
        if outcome[0] == DEAD:
            return "dead"
        self._deliver(record.id, outcome[1])
        return "retry"

    def _sweep(self) -> None:
        stale = self.lease if self._may_have_lost() else None
        for task_id in self._store.recover(stale_after=stale):
            self._deliver(task_id, 0.0)

    def _deliver(self, task_id: str, delay_seconds: float) -> None:
        """Dispatch, tolerating transport failures: the row is durable and a sweep redelivers."""
        try:
            self._dispatch(task_id, delay_seconds)
        except Exception:
            log.warning("task %s is in the ledger but not delivered yet", task_id, exc_info=True)

    def _maintain(self) -> None:
        """Extend the leases of running tasks and recover abandoned ones, every lease/3."""
        interval = max(self.lease / 3, 0.05)
        while not self._halt.wait(interval):
            try:
                with self._lock:
                    running = builtins.list(self._running)
                self._store.extend_leases(running, self.lease)
                self._sweep()
            except Exception:
                log.warning("queue maintenance failed; retrying in %.1fs", interval, exc_info=True)


def open(url: SlotURL, *, ledger: Ledger, handlers: TaskHandlers) -> TaskQueue:
    """Construct the backend for ``url``'s scheme and open it."""
    queue = load_backend(url, BACKENDS, TaskQueue, ledger=ledger, handlers=handlers)
    return queue.open()
