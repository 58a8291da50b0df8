"""Batching on both sides of the queue between the reader and the consumer.

The reader records the versions it drafted in the ledger a batch at a time
(:class:`VersionWriter`: one transaction per batch of chunks, not one per
document; an embedder batch while the consumer may be waiting for one, a
few of them once it has work queued), then puts ``(version_id, chunk_count)`` for every version it
recorded, any exception it hit, and :data:`READER_DONE` at the end. The
consumer wants batches that keep the embedder busy: it should start as
soon as one embedder batch of chunks is waiting (not idle while the reader
fills a whole projection batch), take everything that piled up meanwhile
(up to the projection batch size), and cut at whole embedder batches, so
many tiny documents still reach the embedder in full batches.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable

from janus_stack.ingest.versions import VersionDraft

READER_DONE = object()


class VersionWriter:
    """Records drafted versions in the ledger in batches and hands them to the consumer.

    Args:
        record: writes drafts in one transaction, returning each one's
            version ID (``None`` where the ledger already has those bytes).
        ready: the consumer's queue; gets ``(version_id, chunk_count)``.
        least: record once the drafts hold this many chunks while fewer
            than this many versions wait in ``ready`` (the consumer may be
            waiting for them).
        most: record once the drafts hold this many chunks anyway. Each
            transaction has a fixed cost, about a tenth of a millisecond per
            small document at 32 chunks, which the reader pays beside the
            embedder.
    """

    def __init__(
        self,
        record: Callable[[list[VersionDraft]], list[int | None]],
        ready: queue.Queue[object],
        *,
        least: int,
        most: int,
    ) -> None:
        self._record = record
        self._ready = ready
        self._least = max(1, min(least, most))
        self._most = max(1, most)
        self._drafts: list[VersionDraft] = []
        self._counted: list[Callable[[int], None]] = []
        self._chunks = 0

    def add(self, draft: VersionDraft, counted: Callable[[int], None]) -> None:
        """Queue ``draft``; ``counted`` gets its chunk count once it is recorded as new."""
        self._drafts.append(draft)
        self._counted.append(counted)
        self._chunks += len(draft.chunks)
        if self._chunks >= self._most or (
            self._chunks >= self._least and self._ready.qsize() < self._least
        ):
            self.flush()

    def flush(self) -> None:
        """Record every queued draft now (before anything reads the ledger for them)."""
        if not self._drafts:
            return
        drafts, counted = self._drafts, self._counted
        self._drafts, self._counted, self._chunks = [], [], 0
        for draft, count, version_id in zip(drafts, counted, self._record(drafts), strict=True):
            if version_id is not None:
                count(len(draft.chunks))
                self._ready.put((version_id, len(draft.chunks)))


class VersionBatcher:
    """Hands out batches of version IDs from the reader's queue, in the order read.

    Args:
        ready: the reader's queue.
        least: chunks to wait for before a batch goes (fewer only at the end).
        most: chunks a batch holds at most (a version is never split).
        step: a batch that does not drain the queue is cut at a multiple of this.
    """

    def __init__(self, ready: queue.Queue[object], *, least: int, most: int, step: int) -> None:
        self._ready = ready
        self._least = max(1, min(least, most))
        self._most = max(1, most)
        self._step = max(1, step)
        self._waiting: deque[tuple[int, int]] = deque()
        self._chunks = 0
        self._done = False
        self.failure: BaseException | None = None

    def next_batch(self) -> list[int]:
        """The next batch; empty once the reader is done and every version was handed out."""
        while not self._done and self._chunks < self._least:
            self._receive(self._ready.get())
        while not self._done and self._chunks < self._most:
            try:
                item = self._ready.get_nowait()
            except queue.Empty:
                break
            self._receive(item)
        if self._done:
            target = self._most
        else:
            whole = self._chunks // self._step * self._step
            target = min(self._most, max(self._least, whole))
        batch: list[int] = []
        taken = 0
        while self._waiting and (taken < target or not batch):
            version_id, chunks = self._waiting.popleft()
            batch.append(version_id)
            taken += chunks
        self._chunks -= taken
        return batch

    def discard_rest(self) -> None:
        """Take everything the reader still puts, unprojected, until it is done.

        After the consumer failed: the reader must not block on a full queue;
        what it recorded meanwhile waits in the ledger for ``resume``.
        """
        while not self._done:
            self._receive(self._ready.get())
        self._waiting.clear()
        self._chunks = 0

    def _receive(self, item: object) -> None:
        if item is READER_DONE:
            self._done = True
        elif isinstance(item, BaseException):
            # The first failure is raised once every version read before it is projected.
            self.failure = self.failure or item
        else:
            assert isinstance(item, tuple)
            version_id, chunks = item
            self._waiting.append((version_id, chunks))
            self._chunks += chunks
