"""The ingestion pipeline: every document into every store exactly once.

A file is read, stored as an object, extracted and chunked on a producer
thread; the version and its chunks enter the ledger in one transaction.
The consumer then runs the remaining stages over *batches* of versions —
embed → index → entities → graph — so the embedder always sees full
batches and the graph gets bulk writes. Each stage is marked done in the
ledger; a re-run skips it, and a killed run resumes from the ledger.

With a broker queue (any queue slot but ``inline://``) the consumer enqueues
each batch as an ``ingest.project`` task for ``janus worker`` instead
(``enqueue.py``), and resume re-queues through the queue.
"""

from __future__ import annotations

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
from janus_stack.ingest.chunking import chunk_text
from janus_stack.ingest.documents import DocumentLedger, document_key
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
    batch_chunks: int = 256
    entities: bool = True
    extractor: str = "spacy"  # or "llm": see ingest/llm_extractor.py
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    max_documents: int | None = None


@dataclass
class FileOutcome:
    """What happened to one input file."""

    path: str
    status: str  # ingested | unchanged | failed
    documents: int = 0
    chunks: int = 0
    error: str | None = None


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


_DONE = object()


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
        self, files: Sequence[Path], *, tenant: str, tags: dict[str, str] | None = None
    ) -> IngestReport:
        """Ingest ``files``; per-file failures are reported, never fatal to the batch."""
        ids.check_tenant(tenant)
        self.documents.ensure_tenant(tenant)
        report = IngestReport()
        # Room for two projection batches of one-chunk documents: the reader stays a whole
        # batch ahead of the embedder instead of stalling it after every batch.
        ready: queue.Queue[object] = queue.Queue(maxsize=max(64, 2 * self.options.batch_chunks))
        producer = threading.Thread(
            target=self._produce,
            args=(files, tenant, dict(tags or {}), report, ready),
            name="janus-ingest-reader",
            daemon=True,
        )
        producer.start()
        pending: list[int] = []
        pending_chunks = 0
        failure: BaseException | None = None
        while True:
            item = ready.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                failure = item
                continue
            assert isinstance(item, tuple)
            version_id, chunk_count = item
            pending.append(version_id)
            pending_chunks += chunk_count
            if pending_chunks >= self.options.batch_chunks:
                self._project(tenant, pending)
                pending, pending_chunks = [], 0
        producer.join()
        if pending:
            self._project(tenant, pending)
        if failure is not None:
            raise failure
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
        files: Sequence[Path],
        tenant: str,
        tags: dict[str, str],
        report: IngestReport,
        ready: queue.Queue[object],
    ) -> None:
        try:
            budget = self.options.max_documents
            for path in files:
                outcome = self._prepare_file(path, tenant, tags, ready, budget)
                report.files.append(outcome)
                self._progress("file", 1)
                if budget is not None:
                    budget -= outcome.documents
                    if budget <= 0:
                        break
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)
        finally:
            ready.put(_DONE)

    def _prepare_file(
        self,
        path: Path,
        tenant: str,
        tags: dict[str, str],
        ready: queue.Queue[object],
        budget: int | None,
    ) -> FileOutcome:
        source = str(path.resolve())
        outcome = FileOutcome(path=str(path), status="ingested")
        stored: str | None = None
        try:
            data = self._read(path)
            sha = hashlib.sha256(data).hexdigest()
            key = f"{tenant}/{sha}"
            known = self.documents.versions_of_file(tenant, source)
            if known and all(k == key and status == "done" for _, k, status in known):
                outcome.status = "unchanged"
                return outcome
            self.janus.objects.put(data, tenant=tenant, metadata={"source": path.name[:200]})
            stored = key
            seen: set[str] = set()
            for document in extract(
                BytesIO(data),
                name=path.name,
                max_bytes=self.options.max_bytes,
                options=self.options.extract,
            ):
                sub_id = document.sub_id or ""
                seen.add(sub_id)
                version = self._start_version(tenant, source, document, data, key, tags)
                outcome.documents += 1
                if version is not None:
                    version_id, chunk_count = version
                    outcome.chunks += chunk_count
                    ready.put((version_id, chunk_count))
                if budget is not None and outcome.documents >= budget:
                    break
            else:
                self._drop_vanished(tenant, source, seen, known)
                for previous in self.documents.adopt_object(tenant, source, key):
                    release_object(self.janus, self.documents, previous)
        except ExtractionError as exc:
            outcome.status, outcome.error = "failed", str(exc)
            self._record_failure(tenant, source, path, exc.reason, str(exc), stored)
        except (OSError, JanusError) as exc:
            outcome.status, outcome.error = "failed", f"{path}: {exc}"
            reason = "unreadable" if isinstance(exc, OSError) else "error"
            self._record_failure(tenant, source, path, reason, outcome.error, stored)
        return outcome

    def _record_failure(
        self, tenant: str, source: str, path: Path, reason: str, error: str, stored: str | None
    ) -> None:
        """Record a failed file in the ledger and the event log; drop its unreferenced object."""
        try:
            size = path.stat().st_size
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

    def _read(self, path: Path) -> bytes:
        size = path.stat().st_size
        if size > self.options.max_bytes:
            raise ExtractionError(
                path.name,
                "too_large",
                f"the file is {size:,} bytes, over the limit of {self.options.max_bytes:,}; "
                "raise max_bytes or split it",
            )
        return path.read_bytes()

    def _start_version(
        self,
        tenant: str,
        source: str,
        document: ExtractedDocument,
        data: bytes,
        key: str,
        tags: dict[str, str],
    ) -> tuple[int, int] | None:
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
        version_id = self.documents.start_version(
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
        return None if version_id is None else (version_id, len(chunks))

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
