"""What an ingest run is given and what it reports, shared by the reader and the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from janus_stack.ingest.extract import ExtractOptions

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
