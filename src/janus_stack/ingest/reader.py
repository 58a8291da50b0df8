"""The producer side of ingest: files in, versions with their chunks recorded in the ledger.

One reader thread walks the files in order: hash check against the ledger
(one query per block of files), extraction, chunking, and the version
drafts, recorded a batch at a time by a :class:`VersionWriter` that hands
them to the consumer. Reading a file and storing its bytes as an object is
mostly waiting (two fsyncs per object), so a few fetcher threads do that
for the next files while the reader extracts the current one; concurrent
fsyncs also share journal commits, which halves their CPU. Everything the
ledger learns still happens in file order on the reader thread, and a
file's object is durable before any version that refers to it is recorded:
should the reader remove an object (a failed or changed file) that a file
fetched ahead has the very bytes of, that file stores it again.
"""

from __future__ import annotations

import contextvars
import hashlib
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

from janus_stack import ids
from janus_stack.context import Janus
from janus_stack.errors import JanusError
from janus_stack.ingest.batching import READER_DONE, VersionWriter
from janus_stack.ingest.chunking import Chunker
from janus_stack.ingest.documents import DocumentLedger, VersionDraft, document_key
from janus_stack.ingest.enqueue import ProjectionQueue
from janus_stack.ingest.extract import ExtractedDocument, ExtractionError, extract
from janus_stack.ingest.options import (
    FileOutcome,
    IngestOptions,
    IngestReport,
    ProgressCallback,
    StoredFile,
)
from janus_stack.ingest.removal import delete_document, release_object

# Files whose ledger state is looked up in one query before they are read.
_KNOWN_BLOCK = 256
# Fetcher threads, and how far they may run ahead of the reader (files, bytes held).
# Four concurrent puts cost half the CPU of one at a time and an eighth of the wait.
_FETCHERS = 4
_AHEAD_FILES = 16
_AHEAD_BYTES = 32 * 1024 * 1024

Known = list[tuple[str, str, str]]  # (sub_id, object_key, status) of each live document
# A file, its source, what the ledger knows of it, and its bytes with their object key.
Fetch = tuple[Path | StoredFile, str, Known, Future[tuple[bytes, str]]]


def source_of(item: Path | StoredFile) -> str:
    """A file's identity in the ledger: its resolved path, or the upload's source."""
    return item.source if isinstance(item, StoredFile) else str(item.resolve())


def _unchanged(known: Known, key: str) -> bool:
    """Whether every live document of the file is done and was read from these very bytes."""
    return bool(known) and all(k == key and status == "done" for _, k, status in known)


def _size_hint(item: Path | StoredFile) -> int:
    if isinstance(item, StoredFile):
        return item.size
    try:
        return item.stat().st_size
    except OSError:
        return 0  # reading it will fail and say why


class FileReader:
    """Reads, stores, extracts and chunks files for one :class:`Ingestor` run.

    Args:
        projection_queue: with a broker queue, removals of documents a
            changed file no longer holds are deferred to it.
    """

    def __init__(
        self,
        janus: Janus,
        documents: DocumentLedger,
        options: IngestOptions,
        chunker: Chunker,
        *,
        progress: ProgressCallback,
        projection_queue: ProjectionQueue | None,
    ) -> None:
        self.janus = janus
        self.documents = documents
        self.options = options
        self.chunker = chunker
        self._progress = progress
        self.projection_queue = projection_queue
        # Objects this run removed: a file fetched before the removal must store them again.
        self._released: set[str] = set()

    def run(
        self,
        files: Sequence[Path | StoredFile],
        tenant: str,
        tags: dict[str, str],
        report: IngestReport,
        ready: queue.Queue[object],
        stop: threading.Event,
        *,
        least: int,
        most: int,
    ) -> None:
        """Read ``files`` into ``ready`` (see ``batching.py``) until done or ``stop`` is set.

        ``least`` and ``most`` bound the chunks per ledger transaction (see
        :class:`VersionWriter`). Any exception is put on ``ready`` for the
        consumer to raise; :data:`READER_DONE` always comes last.
        """
        writer = VersionWriter(self._record_versions, ready, least=least, most=most)
        pool = ThreadPoolExecutor(max_workers=_FETCHERS, thread_name_prefix="janus-ingest-fetch")
        try:
            self._read_files(files, tenant, tags, report, writer, pool, stop)
            writer.flush()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            ready.put(READER_DONE)

    def _read_files(
        self,
        files: Sequence[Path | StoredFile],
        tenant: str,
        tags: dict[str, str],
        report: IngestReport,
        writer: VersionWriter,
        pool: ThreadPoolExecutor,
        stop: threading.Event,
    ) -> None:
        budget = self.options.max_documents
        # With a budget, no file is stored before the reader knows it still wants it.
        window = 1 if budget is not None else _AHEAD_FILES
        for item, source, known, fetched in self._fetch_ahead(files, tenant, pool, window):
            if stop.is_set():
                return
            with self.janus.telemetry.stage("prepare") as stage:
                outcome = self._prepare_file(
                    item, source, known, fetched, tenant, tags, writer, budget
                )
                stage.outcome, stage.documents = outcome.status, outcome.documents
            report.files.append(outcome)
            self._progress("file", 1)
            if budget is not None:
                budget -= outcome.documents
                if budget <= 0:
                    return

    def _fetch_ahead(
        self,
        files: Sequence[Path | StoredFile],
        tenant: str,
        pool: ThreadPoolExecutor,
        window: int,
    ) -> Iterator[Fetch]:
        """Each file with its ledger state and its read (and store) running on ``pool``.

        A file is submitted only while fewer than ``window`` files (and
        ``_AHEAD_BYTES``) wait for the reader, so memory stays bounded.
        """
        pending: deque[tuple[Fetch, int]] = deque()
        held = 0
        sources: list[str] = []
        known: dict[str, Known] = {}
        for index, item in enumerate(files):
            if index % _KNOWN_BLOCK == 0:
                block = files[index : index + _KNOWN_BLOCK]
                sources = [source_of(each) for each in block]
                known = self.documents.versions_of_files(tenant, sources)
            source = sources[index % _KNOWN_BLOCK]
            size = _size_hint(item)
            while pending and (len(pending) >= window or held + size > _AHEAD_BYTES):
                fetch, fetched_size = pending.popleft()
                held -= fetched_size
                yield fetch
            state = known[source]
            fetched = pool.submit(contextvars.copy_context().run, self._fetch, item, tenant, state)
            pending.append(((item, source, state, fetched), size))
            held += size
        for fetch, _size in pending:
            yield fetch

    def _fetch(self, item: Path | StoredFile, tenant: str, known: Known) -> tuple[bytes, str]:
        """Read the file and store its bytes unless the ledger has them done (a fetcher thread)."""
        data = self._read(item)
        if isinstance(item, StoredFile):
            return data, item.key
        key = f"{tenant}/{hashlib.sha256(data).hexdigest()}"
        if not _unchanged(known, key):
            self.janus.objects.put(
                data, tenant=tenant, metadata={"source": item.name[:200]}, durable=False
            )
        return data, key

    def _prepare_file(
        self,
        item: Path | StoredFile,
        source: str,
        known: Known,
        fetched: Future[tuple[bytes, str]],
        tenant: str,
        tags: dict[str, str],
        writer: VersionWriter,
        budget: int | None,
    ) -> FileOutcome:
        """Extract and chunk one file; ``known`` is what the ledger has of it."""
        name = item.name
        outcome = FileOutcome(path=str(item) if isinstance(item, Path) else name, status="ingested")
        # A failed stored file's object goes too, unless a live version shares it.
        stored = item.key if isinstance(item, StoredFile) else None
        try:
            data, key = fetched.result()
            if _unchanged(known, key):
                outcome.status = "unchanged"
                return outcome
            if key in self._released:
                self.janus.objects.put(
                    data, tenant=tenant, metadata={"source": name[:200]}, durable=False
                )
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
                    self.janus.objects.sync()
                    for previous in self.documents.adopt_object(tenant, source, key):
                        self._release(previous)
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

    def _record_versions(self, drafts: Sequence[VersionDraft]) -> list[int | None]:
        """Record ``drafts`` once their objects, stored without waiting for the disk, are durable.

        The fetchers put objects with ``durable=False``; a version must never
        point at an object a power loss could take back.
        """
        self.janus.objects.sync()
        return self.documents.start_versions(drafts)

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
            self._release(stored)
        self.janus.events.append(
            tenant=tenant,
            actor="ingest",
            type="document.failed",
            subject=source,
            payload={"reason": reason, "error": error},
        )

    def _release(self, key: str) -> None:
        if release_object(self.janus, self.documents, key):
            self._released.add(key)

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
            for chunk in self.chunker.chunk(document.text, document.sections)
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
                    removed = delete_document(self.janus, tenant, document_id).objects_removed
                    self._released.update(removed)
                else:
                    self.projection_queue.defer_removal(tenant, document_id)
