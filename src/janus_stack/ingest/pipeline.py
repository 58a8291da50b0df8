"""The ingestion pipeline: every document into every store exactly once.

A file is read, stored as an object, extracted and chunked on a producer
thread (an upload arrives already stored: the API streams it into the
objects slot, hashing and counting as it goes, and hands over a
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
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from janus_stack import ids
from janus_stack.context import Janus
from janus_stack.errors import JanusError
from janus_stack.ingest.batching import READER_DONE, VersionBatcher, VersionWriter
from janus_stack.ingest.chunking import chunk_text
from janus_stack.ingest.documents import DocumentLedger, VersionDraft, document_key
from janus_stack.ingest.enqueue import ProjectionQueue
from janus_stack.ingest.entities import EntityExtractor
from janus_stack.ingest.extract import ExtractedDocument, ExtractionError, ExtractOptions, extract
from janus_stack.ingest.llm_extractor import choose_extractor
from janus_stack.ingest.projection import Projector
from janus_stack.ingest.removal import delete_document, release_object, remove_doc_id
from janus_stack.slots.embeddings import Embedder

ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class IngestOptions:
    """Limits and knobs of one ingest run."""

    max_bytes: int = 100 * 1024 * 1024
    chunk_tokens: int | None = None
    overlap_tokens: int = 32
    # Chunks per projection batch (and per queued task). The embedder gets them sorted by
    # length, so a larger batch pads less: 256 cost ~7% more embedding than one sort of
    # everything on 10k notes, 1024 ~2%.
    batch_chunks: int = 1024
    entities: bool = True
    extractor: str = "spacy"  # or "llm": see ingest/llm_extractor.py
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    max_documents: int | None = None


@dataclass(frozen=True)
class StoredFile:
    """An input already in the objects slot (an API upload), ingested as if read from ``source``.

    Attributes:
        name: the file name extraction sees (it picks the format by extension).
        source: the path-like identity of the file in the ledger; a later
            input with the same source is a new version of the same file.
        key: the object's key, ``<tenant>/<sha256>``.
        size: the object's size in bytes.
    """

    name: str
    source: str
    key: str
    size: int


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    status: str  # ingested | unchanged | failed
    documents: int = 0
    chunks: int = 0
    error: str | None = None

    def count_chunks(self, chunks: int) -> None:
        """Count the chunks of one of its versions, once the ledger recorded it as new."""
        self.chunks += chunks


@dataclass
class IngestReport:
    files: list[FileOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]

    def as_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for outcome in self.files:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return {
            "files": [outcome.__dict__ for outcome in self.files],
            "summary": {
                "files": len(self.files),
                "documents": sum(f.documents for f in self.files),
                "chunks": sum(f.chunks for f in self.files),
                **counts,
            },
        }


# Files whose ledger state is looked up in one query before they are read.
_KNOWN_BLOCK = 256


def _source_of(item: Path | StoredFile) -> str:
    """A file's identity in the ledger: its resolved path, or the upload's source."""
    return item.source if isinstance(item, StoredFile) else str(item.resolve())


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
        """Ingest ``files``; per-file failures are reported, never fatal to the batch."""
        ids.check_tenant(tenant)
        self.documents.ensure_tenant(tenant)
        report = IngestReport()
        # Room for two projection batches of one-chunk documents: the reader stays a whole
        # batch ahead of the embedder instead of stalling it after every batch.
        ready: queue.Queue[object] = queue.Queue(maxsize=max(64, 2 * self.options.batch_chunks))
        producer = threading.Thread(  # in this context: the request ID and trace follow it
            target=contextvars.copy_context().run,
            args=(self._produce, files, tenant, dict(tags or {}), report, ready),
            name="janus-ingest-reader",
            daemon=True,
        )
        producer.start()
        most = self.options.batch_chunks
        # Inline, the embedder starts on its first full batch; a queued task waits for a
        # whole projection batch, since each task has a fixed cost for the worker.
        least = most if self.projection_queue is not None else self.embedder.batch_size
        batcher = VersionBatcher(ready, least=least, most=most, step=self.embedder.batch_size)
        while batch := batcher.next_batch():
            self._project(tenant, batch)
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

    def _produce(
        self,
        files: Sequence[Path | StoredFile],
        tenant: str,
        tags: dict[str, str],
        report: IngestReport,
        ready: queue.Queue[object],
    ) -> None:
        # One ledger transaction per embedder batch of chunks: the consumer's least.
        writer = VersionWriter(
            self.documents.start_versions, ready, flush_chunks=self.embedder.batch_size
        )
        try:
            self._read_files(files, tenant, tags, report, writer)
            writer.flush()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)
        finally:
            ready.put(READER_DONE)

    def _read_files(
        self,
        files: Sequence[Path | StoredFile],
        tenant: str,
        tags: dict[str, str],
        report: IngestReport,
        writer: VersionWriter,
    ) -> None:
        budget = self.options.max_documents
        for start in range(0, len(files), _KNOWN_BLOCK):
            block = files[start : start + _KNOWN_BLOCK]
            sources = [_source_of(item) for item in block]
            known = self.documents.versions_of_files(tenant, sources)
            for item, source in zip(block, sources, strict=True):
                with self.janus.telemetry.stage("prepare") as stage:
                    outcome = self._prepare_file(
                        item, source, known[source], tenant, tags, writer, budget
                    )
                    stage.outcome, stage.documents = outcome.status, outcome.documents
                report.files.append(outcome)
                self._progress("file", 1)
                if budget is not None:
                    budget -= outcome.documents
                    if budget <= 0:
                        return

    def _prepare_file(
        self,
        item: Path | StoredFile,
        source: str,
        known: list[tuple[str, str, str]],
        tenant: str,
        tags: dict[str, str],
        writer: VersionWriter,
        budget: int | None,
    ) -> FileOutcome:
        """Read, store, extract and chunk one file; ``known`` is what the ledger has of it."""
        name = item.name
        outcome = FileOutcome(path=str(item) if isinstance(item, Path) else name, status="ingested")
        # A failed stored file's object goes too, unless a live version shares it.
        stored = item.key if isinstance(item, StoredFile) else None
        try:
            data = self._read(item)
            key = (
                item.key
                if isinstance(item, StoredFile)
                else f"{tenant}/{hashlib.sha256(data).hexdigest()}"
            )
            if known and all(k == key and status == "done" for _, k, status in known):
                outcome.status = "unchanged"
                return outcome
            if isinstance(item, Path):
                self.janus.objects.put(data, tenant=tenant, metadata={"source": name[:200]})
            stored = key
            seen: set[str] = set()
            for document in extract(
                BytesIO(data),
                name=name,
                max_bytes=self.options.max_bytes,
                options=self.options.extract,
            ):
                sub_id = document.sub_id or ""
                seen.add(sub_id)
                writer.add(
                    self._draft_version(tenant, source, document, data, key, tags),
                    outcome.count_chunks,
                )
                outcome.documents += 1
                if budget is not None and outcome.documents >= budget:
                    break
            else:
                if known:  # a new file has no older versions to drop or re-point
                    # Its new versions first: a crash must not leave the changed records
                    # unrecorded while the others already point at the new bytes.
                    writer.flush()
                    self._drop_vanished(tenant, source, seen, known)
                    for previous in self.documents.adopt_object(tenant, source, key):
                        release_object(self.janus, self.documents, previous)
        except ExtractionError as exc:
            outcome.status, outcome.error = "failed", str(exc)
            writer.flush()  # what was read before the failure keeps the object in use
            self._record_failure(tenant, source, item, exc.reason, str(exc), stored)
        except (OSError, JanusError) as exc:
            outcome.status, outcome.error = "failed", f"{outcome.path}: {exc}"
            reason = "unreadable" if isinstance(exc, OSError) else "error"
            writer.flush()
            self._record_failure(tenant, source, item, reason, outcome.error, stored)
        return outcome

    def _record_failure(
        self,
        tenant: str,
        source: str,
        item: Path | StoredFile,
        reason: str,
        error: str,
        stored: str | None,
    ) -> None:
        """Record a failed file in the ledger and the event log; drop its unreferenced object."""
        try:
            size = item.size if isinstance(item, StoredFile) else item.stat().st_size
        except OSError:
            size = 0
        self.documents.record_failure(
            tenant=tenant, source=source, sub_id="", error=error, size=size, doc_id=""
        )
        if stored is not None:
            release_object(self.janus, self.documents, stored)
        self.janus.events.append(
            tenant=tenant,
            actor="ingest",
            type="document.failed",
            subject=source,
            payload={"reason": reason, "error": error},
        )

    def _read(self, item: Path | StoredFile) -> bytes:
        size = item.size if isinstance(item, StoredFile) else item.stat().st_size
        if size > self.options.max_bytes:
            raise ExtractionError(
                item.name,
                "too_large",
                f"the file is {size:,} bytes, over the limit of {self.options.max_bytes:,}; "
                "raise max_bytes or split it",
            )
        if isinstance(item, StoredFile):
            return self.janus.objects.read_bytes(item.key)
        return item.read_bytes()

    def _draft_version(
        self,
        tenant: str,
        source: str,
        document: ExtractedDocument,
        data: bytes,
        key: str,
        tags: dict[str, str],
    ) -> VersionDraft:
        sub_id = document.sub_id or ""
        if sub_id:
            doc_id = ids.doc_id(tenant, f"{sub_id}\0{document.text}".encode())
        else:
            doc_id = ids.doc_id(tenant, data)
        chunks = [
            {
                "id": ids.chunk_id(doc_id, chunk.ordinal, chunk.text),
                "ordinal": chunk.ordinal,
                "text": chunk.text,
                "text_sha256": hashlib.sha256(chunk.text.encode()).hexdigest(),
                "page": chunk.page,
                "heading_path": list(chunk.heading_path),
                "char_start": chunk.char_start,
                "char_end": chunk.char_end,
                "token_count": chunk.token_count,
            }
            for chunk in chunk_text(
                document.text,
                document.sections,
                tokenizer=self.embedder,
                max_tokens=self.embedder.max_tokens,
                target_tokens=self.options.chunk_tokens,
                overlap_tokens=self.options.overlap_tokens,
            )
        ]
        return VersionDraft(
            tenant=tenant,
            source=source,
            sub_id=sub_id,
            title=document.title or Path(source).name,
            media_type=document.media_type,
            tags=tags,
            doc_id=doc_id,
            object_key=key,
            size=len(data),
            chunks=chunks,
        )

    def _drop_vanished(
        self, tenant: str, source: str, seen: set[str], known: Iterable[tuple[str, str, str]]
    ) -> None:
        """Delete the documents a changed file no longer contains (e.g. removed articles)."""
        for sub_id, _key, _status in known:
            if sub_id not in seen:
                document_id = document_key(tenant, source, sub_id)
                if self.projection_queue is None:
                    delete_document(self.janus, tenant, document_id)
                else:
                    self.projection_queue.defer_removal(tenant, document_id)
