"""The ingestion pipeline: every document into every store exactly once.

A file is read, stored as an object, extracted and chunked on a producer
thread (``reader.py``; an upload arrives already stored: the API streams it
into the objects slot, hashing and counting as it goes, and hands over a
:class:`StoredFile`); the version and its chunks enter the ledger in one transaction.
The consumer then runs the remaining stages over *batches* of versions —
embed → index → entities → graph — so the embedder always sees full
batches and the graph gets bulk writes. Each stage is marked done in the
ledger; a re-run skips it, and a killed run resumes from the ledger.

With a broker queue (any queue slot but ``inline://``) the consumer enqueues
each batch as an ``ingest.project`` task for ``janus worker`` instead
(``enqueue.py``), and resume re-queues through the queue.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

from janus_stack import ids
from janus_stack.context import Janus
from janus_stack.ingest.batching import VersionBatcher
from janus_stack.ingest.chunking import Chunker
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.ingest.enqueue import ProjectionQueue
from janus_stack.ingest.entities import EntityExtractor
from janus_stack.ingest.llm_extractor import choose_extractor
from janus_stack.ingest.options import (
    FileOutcome,
    IngestOptions,
    IngestReport,
    ProgressCallback,
    StoredFile,
)
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.reader import FileReader
from janus_stack.ingest.removal import release_object, remove_doc_id
from janus_stack.slots.embeddings import Embedder

__all__ = [
    "FileOutcome",
    "IngestOptions",
    "IngestReport",
    "Ingestor",
    "ProgressCallback",
    "StoredFile",
]


class Ingestor:
    """Runs ingestion against an open ``Janus`` context.

    Args:
        projection_queue: enqueue the projection stages through it instead
            of running them here (``janus ingest`` passes one when
            ``queued_mode``); what was enqueued is then in its ``work``.
    """

    def __init__(
        self,
        janus: Janus,
        embedder: Embedder,
        options: IngestOptions | None = None,
        progress: ProgressCallback | None = None,
        *,
        projection_queue: ProjectionQueue | None = None,
    ) -> None:
        self.janus = janus
        self.embedder = embedder
        self.options = options or IngestOptions()
        self.documents = DocumentLedger(janus.ledger)
        self._progress = progress or (lambda _kind, _n: None)
        self.projector = Projector(
            janus,
            embedder,
            self.documents,
            extractor=self._extractor() if self.options.entities else None,
            progress=self._progress,
        )
        self.projection_queue = projection_queue

    def _extractor(self) -> EntityExtractor:
        model = self.janus.llm if self.options.extractor == "llm" else None
        return choose_extractor(self.options.extractor, model)

    def ingest(
        self,
        files: Sequence[Path | StoredFile],
        *,
        tenant: str,
        tags: dict[str, str] | None = None,
    ) -> IngestReport:
        """Ingest ``files``; per-file failures are reported, never fatal to the batch.

        If projecting fails (or is interrupted), the reader stops at its next
        file and what it read so far is recorded for ``resume``; then the
        failure is raised.
        """
        ids.check_tenant(tenant)
        chunker = Chunker(
            self.embedder,
            max_tokens=self.embedder.max_tokens,
            target_tokens=self.options.chunk_tokens,
            overlap_tokens=self.options.overlap_tokens,
        )
        self.documents.ensure_tenant(tenant)
        report = IngestReport()
        # Room for two projection batches of one-chunk documents: the reader stays a whole
        # batch ahead of the embedder instead of stalling it after every batch.
        ready: queue.Queue[object] = queue.Queue(maxsize=max(64, 2 * self.options.batch_chunks))
        stop = threading.Event()
        reader = FileReader(
            self.janus,
            self.documents,
            self.options,
            chunker,
            progress=self._progress,
            projection_queue=self.projection_queue,
        )
        producer = threading.Thread(  # in this context: the request ID and trace follow it
            target=contextvars.copy_context().run,
            args=(reader.run, files, tenant, dict(tags or {}), report, ready, stop),
            # Ledger transactions of an embedder batch of chunks (the consumer's least) while
            # the consumer may wait for them, else of a few: a reader 0.14 ms per small
            # document cheaper, measured with 256 instead of 32.
            kwargs={
                "least": self.embedder.batch_size,
                "most": min(self.options.batch_chunks, 8 * self.embedder.batch_size),
            },
            name="janus-ingest-reader",
            daemon=True,
        )
        producer.start()
        most = self.options.batch_chunks
        # Inline, the embedder starts on its first full batch; a queued task waits for a
        # whole projection batch, since each task has a fixed cost for the worker.
        least = most if self.projection_queue is not None else self.embedder.batch_size
        batcher = VersionBatcher(ready, least=least, most=most, step=self.embedder.batch_size)
        try:
            while batch := batcher.next_batch():
                self._project(tenant, batch)
        except BaseException:
            stop.set()
            batcher.discard_rest()
            raise
        finally:
            producer.join()
        if batcher.failure is not None:
            raise batcher.failure
        self.janus.ledger.refresh_statistics()
        return report

    def resume(self, tenant: str | None = None) -> int:
        """Finish what a killed run left: unfinished versions, then half-done removals.

        Returns how many versions were finished (or, queued, re-queued).
        """
        if self.projection_queue is not None:
            return self.projection_queue.requeue_unfinished(tenant)
        unfinished = self.documents.unfinished_versions(tenant)
        for start in range(0, len(unfinished), 64):
            self.projector.run(unfinished[start : start + 64])
        for owner, doc_id, object_keys in self.documents.leftovers(tenant):
            remove_doc_id(self.janus, self.documents, owner, doc_id)
            for object_key in object_keys:
                release_object(self.janus, self.documents, object_key)
        return len(unfinished)

    def _project(self, tenant: str, version_ids: list[int]) -> None:
        if self.projection_queue is None:
            self.projector.run(version_ids)
        else:
            self.projection_queue.submit(tenant, version_ids)
            self._progress("task", 1)
