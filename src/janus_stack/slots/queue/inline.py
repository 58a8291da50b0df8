"""``inline://``: worker threads in this process, fed straight from the ledger.

There is no message to lose: a scheduler thread claims due rows from the
``tasks`` table, as many as there are idle workers, in one statement
(honouring ``next_attempt_at``, so backoff needs no timer per task) and
hands them to a thread pool. ``_dispatch`` only wakes the scheduler early.
Work enqueued by another process sharing the ledger is picked up within
``poll`` seconds, and the atomic claim makes several inline queues on one
ledger safe. One thread claims for all workers because on SQLite every claim
is a write: workers claiming for themselves measured about half as fast.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from typing import ClassVar

from janus_stack.ledger.database import Ledger
from janus_stack.slots.params import float_param
from janus_stack.slots.queue import TaskQueue
from janus_stack.slots.queue.handlers import TaskHandlers
from janus_stack.slots.queue.tasks import TaskRecord
from janus_stack.urls import SlotURL

log = logging.getLogger(__name__)


class InlineQueue(TaskQueue):
    """The embedded default: no broker, the ledger is the queue."""

    backend: ClassVar[str] = "inline"
    embedded: ClassVar[bool] = True
    hint: ClassVar[str] = "check that the ledger is open and migrated"
    extra_options: ClassVar[tuple[str, ...]] = ("poll",)

    def __init__(self, url: SlotURL, *, ledger: Ledger, handlers: TaskHandlers) -> None:
        super().__init__(url, ledger=ledger, handlers=handlers)
        self.poll = float_param(url, "poll", 1.0, minimum=0.01)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._busy = 0
        self._futures: set[Future[None]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._scheduler: threading.Thread | None = None
        self._capacity = 0

    def _open_transport(self) -> None:
        """Nothing to connect: the ledger was checked by the base class."""

    def _close_transport(self) -> None:
        """Nothing to release beyond the workers, which ``stop`` already ended."""

    def _dispatch(self, task_id: str, delay_seconds: float) -> None:
        self._wake.set()

    def _start_workers(self, workers: int) -> None:
        self._capacity = workers
        self._stopping.clear()
        with self._lock:  # tasks cancelled by an earlier stop() never ran _work
            self._busy = 0
            self._futures.clear()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="janus-queue")
        self._scheduler = threading.Thread(
            target=self._schedule, name="janus-queue-scheduler", daemon=True
        )
        self._scheduler.start()

    def _stop_workers(self, timeout: float) -> None:
        self._stopping.set()
        self._wake.set()
        if self._scheduler is not None:
            self._scheduler.join(timeout)
            self._scheduler = None
        with self._lock:
            pending = set(self._futures)
        wait(pending, timeout=timeout)
        if self._pool is not None:
            # Claimed tasks that never started are re-queued when their lease runs out.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            pause = self.poll
            try:
                pause = self._fill()
            except Exception:
                log.warning("queue scheduler could not read the ledger", exc_info=True)
            self._wake.wait(pause)
            self._wake.clear()

    def _fill(self) -> float:
        """Claim due tasks up to the free capacity and submit them; return how long to sleep."""
        with self._lock:
            free = self._capacity - self._busy
        if free <= 0 or self._pool is None:
            return self.poll  # a finishing task wakes the scheduler
        claimed = self._store.claim_due(free, self.lease)
        for record in claimed:
            with self._lock:
                self._busy += 1
            future = self._pool.submit(self._work, record)
            with self._lock:
                self._futures.add(future)
            future.add_done_callback(self._forget)
        if len(claimed) == free:
            return self.poll
        next_due = self._store.next_due()
        if next_due is None:
            return self.poll
        until = (next_due - datetime.now(UTC)).total_seconds()
        return min(self.poll, max(until, 0.0))

    def _work(self, record: TaskRecord) -> None:
        try:
            self._run_claimed(record)
        except Exception:
            log.exception("task %s: the ledger failed mid-run; its lease will expire", record.id)
        finally:
            with self._lock:
                self._busy -= 1
            self._wake.set()

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)
