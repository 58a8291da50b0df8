"""Where the async server crosses into the synchronous Janus context.

Every Janus call runs on a worker thread (``anyio.to_thread``), bounded by
a capacity limiter, so the event loop keeps serving ``/healthz`` and SSE
while a search or an ingest runs. Which calls may overlap is decided by a
readers-writer lock around the one ``Janus`` context of the process:

* **Reads** (search, ask, memory, listings, downloads, event queries) share
  it. Qdrant Edge's shard, ladybug (behind its own lock), ONNX Runtime, the
  tokenizers and SQLite in WAL mode all serve concurrent readers; spaCy,
  used to link query entities, is serialised by :class:`LockedExtractor`.
* **Writes** (ingest, delete, the slot probes of ``/readyz``) hold it alone:
  the ingest pipeline and the removal code were written for one writer per
  context (they read-modify-write the ledger and the projections).

The lock prefers writers, so a stream of searches cannot starve an upload.
Lock acquisition happens on the worker thread, never on the event loop.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import ParamSpec, TypeVar

import anyio
import anyio.to_thread

from janus_stack.ingest.entities import ChunkFindings, ChunkText, EntityExtractor

P = ParamSpec("P")
T = TypeVar("T")


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    def acquire_read(self) -> None:
        with self._condition:
            while self._writer or self._writers_waiting:
                self._condition.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._condition:
            self._readers -= 1
            if self._readers == 0:
                self._condition.notify_all()

    def acquire_write(self) -> None:
        with self._condition:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._condition.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._condition:
            self._writer = False
            self._condition.notify_all()

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def writing(self) -> Iterator[None]:
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()


class Guard:
    """Runs blocking Janus work on worker threads under the context's lock.

    Args:
        threads: how many Janus calls may run at once (the rest wait their turn).
    """

    def __init__(self, threads: int = 8) -> None:
        self.lock = ReadWriteLock()
        self.limiter = anyio.CapacityLimiter(threads)

    async def read(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` on a worker thread, sharing the context with other reads."""
        return await anyio.to_thread.run_sync(
            self._locked, self.lock.reading, functools.partial(func, *args, **kwargs),
            limiter=self.limiter,
        )  # fmt: skip

    async def write(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func(*args, **kwargs)`` on a worker thread, holding the context alone."""
        return await anyio.to_thread.run_sync(
            self._locked, self.lock.writing, functools.partial(func, *args, **kwargs),
            limiter=self.limiter,
        )  # fmt: skip

    @staticmethod
    def _locked(mode: Callable[[], AbstractContextManager[None]], work: Callable[[], T]) -> T:
        with mode():
            return work()


class LockedExtractor(EntityExtractor):
    """An entity extractor whose calls never overlap (spaCy is not documented thread-safe)."""

    def __init__(self, inner: EntityExtractor) -> None:
        super().__init__(exclude_types=inner.exclude_types)
        self.inner = inner
        self._lock = threading.Lock()

    def find_candidates(self, chunks: Sequence[ChunkText]) -> list[ChunkFindings]:
        with self._lock:
            return self.inner.find_candidates(chunks)
