"""The reader side of ingest: batched version intake, stores ahead of the reader, stopping.

Small documents are where the reader's per-file costs show: these tests pin
down that the cheaper paths (one tokenization per one-chunk text, one
statement per kind of row for a batch of drafts, objects stored by fetcher
threads ahead of the reader) give exactly what the plain paths gave, and
that the fetchers never store an object the run does not record.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from janus_stack.config import load_settings
from janus_stack.context import Janus
from janus_stack.ingest.chunking import Chunker
from janus_stack.ingest.documents import DocumentLedger, VersionDraft, document_key
from janus_stack.ingest.pipeline import IngestOptions, Ingestor
from janus_stack.ingest.projection import Projector
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger
from janus_stack.ledger.models import Chunk, Document, DocumentVersion, IngestionStage
from janus_stack.ops.verify import verify
from janus_stack.urls import SlotURL

TENANT = "default"


class CountingTokenizer:
    """Whitespace words as tokens, two special ones; counts every call it gets."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {"count_tokens": 0, "tokenize_counted": 0}

    @staticmethod
    def _words(text: str) -> list[tuple[int, int]]:
        spans, start = [], None
        for i, char in enumerate(f"{text} "):
            if char.isspace() and start is not None:
                spans.append((start, i))
                start = None
            elif not char.isspace() and start is None:
                start = i
        return spans

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        self.calls["count_tokens"] += 1
        return [len(self._words(text)) + 2 for text in texts]

    def tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        self.calls["tokenize_counted"] += 1
        words = self._words(text)
        return words, len(words) + 2


def test_a_one_chunk_text_is_tokenized_once() -> None:
    tokenizer = CountingTokenizer()
    chunker = Chunker(tokenizer, max_tokens=64, overlap_tokens=4)
    assert tokenizer.calls == {"count_tokens": 1, "tokenize_counted": 0}  # special tokens
    texts = [f"  Note {i}: the council met in Lyon.\n\nIt approved the budget.  " for i in range(5)]
    for text in texts:
        (chunk,) = chunker.chunk(text)
        assert chunk.text == text.strip()
        assert chunk.token_count == len(chunk.text.split()) + 2
    assert tokenizer.calls == {"count_tokens": 1, "tokenize_counted": 5}
    # A text cut into several chunks still has every chunk counted on its own text.
    long = " ".join(f"word{i}." for i in range(200))
    chunks = chunker.chunk(long)
    assert len(chunks) > 3
    assert all(c.token_count == len(c.text.split()) + 2 <= 64 for c in chunks)
    assert tokenizer.calls["count_tokens"] == 1 + len(chunks)


# -- version intake -----------------------------------------------------------------


def draft(source: str, body: str, title: str, media_type: str = "text/plain") -> VersionDraft:
    doc_id = f"{hash(body) & 0xFFFFFFFF:08x}".ljust(64, "0")
    chunk = {
        "id": f"{doc_id[:8]}-0000-5000-8000-{abs(hash(source + body)) % 10**12:012d}",
        "ordinal": 0,
        "text": body,
        "text_sha256": doc_id,
        "page": None,
        "heading_path": [],
        "char_start": 0,
        "char_end": len(body),
        "token_count": 5,
    }
    return VersionDraft(
        tenant=TENANT,
        source=source,
        sub_id="",
        title=title,
        media_type=media_type,
        tags={"title": title},
        doc_id=doc_id,
        object_key=f"{TENANT}/{doc_id}",
        size=len(body),
        chunks=[chunk],
    )


@pytest.fixture
def two_ledgers(tmp_path: Path) -> Iterator[tuple[DocumentLedger, DocumentLedger]]:
    opened = []
    for name in ("batched", "one-by-one"):
        ledger = Ledger(SlotURL.parse("relational", f"sqlite:///{tmp_path}/{name}.db")).open()
        migrations.upgrade(ledger)
        documents = DocumentLedger(ledger)
        documents.ensure_tenant(TENANT)
        opened.append(documents)
    yield opened[0], opened[1]
    for documents in opened:
        documents.ledger.close()


def ledger_state(documents: DocumentLedger) -> dict[str, Any]:
    """Everything the intake writes, with version IDs replaced by (document, number)."""
    with documents.ledger.session() as session:
        number = {
            v.id: (v.document_id, v.version) for v in session.scalars(select(DocumentVersion))
        }
        return {
            "documents": sorted(
                (
                    d.id,
                    d.source,
                    d.title,
                    d.media_type,
                    d.tags["title"],
                    d.status,
                    number.get(d.current_version_id or -1),
                )
                for d in session.scalars(select(Document))
            ),
            "versions": sorted(
                (v.document_id, v.version, v.doc_id, v.object_key, v.status)
                for v in session.scalars(select(DocumentVersion))
            ),
            "chunks": sorted(
                (c.id, number[c.version_id], c.text) for c in session.scalars(select(Chunk))
            ),
            "stages": sorted(
                (number[s.version_id], s.stage, s.status)
                for s in session.scalars(select(IngestionStage))
            ),
        }


def test_a_batch_of_drafts_is_recorded_as_if_one_at_a_time(
    two_ledgers: tuple[DocumentLedger, DocumentLedger],
) -> None:
    batched, one_by_one = two_ledgers
    first = [draft("/a", "alpha one", "A"), draft("/b", "beta one", "B")]
    for documents in two_ledgers:
        assert None not in documents.start_versions(first)
    # Then, in one batch: a retitle with the same bytes, a new version, a retitle of that
    # new version, an unchanged file, a new file, and a file named twice with new bytes.
    second = [
        draft("/a", "alpha one", "A renamed"),
        draft("/a", "alpha two", "A2", media_type="text/markdown"),
        draft("/a", "alpha two", "A2 renamed"),
        draft("/b", "beta one", "B"),
        draft("/c", "gamma", "C"),
        draft("/c", "gamma two", "C2"),
    ]
    together = batched.start_versions(second)
    apart = [one_by_one.start_versions([each])[0] for each in second]
    assert [v is None for v in together] == [v is None for v in apart]
    assert [v is None for v in together] == [True, False, True, True, False, False]
    state = ledger_state(batched)
    assert state == ledger_state(one_by_one)
    titles = {source: title for _id, source, title, *_rest in state["documents"]}
    assert titles == {"/a": "A2 renamed", "/b": "B", "/c": "C2"}
    current = {source: version for _i, source, *_mid, version in state["documents"]}
    assert current["/c"] == (document_key(TENANT, "/c", ""), 1)  # the first until finished


# -- the pipeline -------------------------------------------------------------------


def write_notes(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = folder / f"note{i:03d}.txt"
        path.write_text(f"Note {i}. The council of town {i} approved budget {i * 7}.\n")
        files.append(path)
    return files


def object_count(janus: Janus) -> int:
    return sum(1 for _ in janus.objects.list("", tenant=TENANT))


def test_a_budget_stores_no_object_beyond_what_it_ingests(tmp_path: Path) -> None:
    files = write_notes(tmp_path / "notes", 40)
    with Janus(load_settings()) as janus:
        options = IngestOptions(entities=False, max_documents=5)
        report = Ingestor(janus, janus.embedder, options).ingest(files, tenant=TENANT)
        assert [f.status for f in report.files] == ["ingested"] * 5
        assert object_count(janus) == 5
        assert verify(janus, TENANT).ok


class Crash(BaseException):
    """Stands for an interrupt or a failure in the projection stages."""


def test_a_failed_projection_stops_the_reader_and_resume_finishes(tmp_path: Path) -> None:
    files = write_notes(tmp_path / "notes", 300)

    def fail(_self: Projector, _version_ids: Sequence[int]) -> None:
        raise Crash("projection failed")

    with Janus(load_settings()) as janus, pytest.MonkeyPatch.context() as patch:
        patch.setattr(Projector, "run", fail)
        ingestor = Ingestor(janus, janus.embedder, IngestOptions(entities=False, batch_chunks=1))
        with pytest.raises(Crash):
            ingestor.ingest(files, tenant=TENANT)
        # The reader stopped (it would block forever on its full queue otherwise) ...
        assert not [t for t in threading.enumerate() if t.name.startswith("janus-ingest")]
        with janus.ledger.session() as session:
            recorded = len(list(session.scalars(select(DocumentVersion.id))))
        # ... long before the end: the queue holds 64 versions and the first batch 32.
        assert 0 < recorded < len(files) // 2
    with Janus(load_settings()) as janus:
        ingestor = Ingestor(janus, janus.embedder, IngestOptions(entities=False))
        assert ingestor.resume() == recorded
        report = ingestor.ingest(files, tenant=TENANT)
        statuses = [f.status for f in report.files]
        assert statuses.count("unchanged") == recorded
        assert statuses.count("ingested") == len(files) - recorded
        assert object_count(janus) == len(files)
        assert verify(janus, TENANT).ok


def test_a_file_fetched_ahead_keeps_bytes_a_failed_file_released(tmp_path: Path) -> None:
    # The same bytes: a corrupt JSON file, and a text file the fetchers stored meanwhile.
    body = '{"note": "the council met in Lyon and approved the budget'
    broken, fine = tmp_path / "a.json", tmp_path / "b.txt"
    broken.write_text(body)
    fine.write_text(body)
    with Janus(load_settings()) as janus:
        ingestor = Ingestor(janus, janus.embedder, IngestOptions(entities=False))
        report = ingestor.ingest([broken, fine], tenant=TENANT)
        assert [f.status for f in report.files] == ["failed", "ingested"]
        assert object_count(janus) == 1
        assert verify(janus, TENANT).ok
