"""Value objects shared by every format: documents, sections, options, errors.

The format modules all build their output through :class:`DocumentBuilder`
so that character offsets in :class:`Section` are computed in one place and
always point into the final ``text`` — a chunker relies on that blindly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal, Protocol

from janus_stack.errors import InvalidInputError

SectionKind = Literal["page", "heading", "paragraph", "record"]
Reason = Literal[
    "empty", "too_large", "encrypted", "corrupt", "unsupported", "undecodable", "too_deep"
]

# Media types returned by ``detect`` and carried by every extracted document.
TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
JSON = "application/json"
JSONL = "application/x-ndjson"
CSV = "text/csv"
CODE = "text/x-source-code"
MEDIAWIKI = "application/x-mediawiki-dump+xml"
BZIP2 = "application/x-bzip2"
ZIP = "application/zip"
XML = "application/xml"
EMPTY = "application/x-empty"
BINARY = "application/octet-stream"

_BLOCK_SEPARATOR = "\n\n"


class ExtractionError(InvalidInputError):
    """One file could not be turned into text; the batch around it goes on.

    ``reason`` is a stable code for programs (reports, metrics, retries);
    the message is for people and always starts with the file name.
    """

    def __init__(self, name: str, reason: Reason, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.reason: Reason = reason


@dataclass(frozen=True)
class Section:
    """A span of ``ExtractedDocument.text`` with its place in the structure.

    ``start``/``end`` are character offsets (``text[start:end]``). Sections
    may nest: a page section contains the paragraph sections on that page.
    ``heading_path`` lists the enclosing headings, outermost first; for a
    heading section it ends with the heading itself.
    """

    kind: SectionKind
    start: int
    end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExtractedDocument:
    """One logical document: a whole file, or one article/record of it."""

    title: str
    text: str
    media_type: str
    sections: tuple[Section, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    sub_id: str | None = None


@dataclass(frozen=True)
class ExtractOptions:
    """Per-call choices; the defaults suit most corpora.

    Attributes:
        json_text_field: JSON/JSONL key (dotted for nesting) holding the text;
            ``None`` flattens every string leaf into ``key: value`` lines.
        json_records_as_documents: a top-level JSON array or a JSONL file
            yields one document per record instead of one for the file.
        max_depth: deepest nesting accepted in JSON and XML; deeper input is
            refused before a parser can recurse on it.
        max_docx_uncompressed: ceiling on the sum of the declared
            uncompressed sizes inside a DOCX (zip-bomb guard).
        html_keep_links: record the link targets of the main HTML content in
            ``metadata["links"]``.
    """

    json_text_field: str | None = None
    json_records_as_documents: bool = True
    max_depth: int = 64
    max_docx_uncompressed: int = 256 * 1024 * 1024
    html_keep_links: bool = True


@dataclass(frozen=True)
class Source:
    """What a format module knows about the file it is handed."""

    name: str
    media_type: str
    max_bytes: int
    options: ExtractOptions

    @property
    def stem(self) -> str:
        """The file name without folders and extension: the fallback title."""
        base = self.name.replace("\\", "/").rsplit("/", 1)[-1]
        for suffix in (".xml.bz2", ".tar.gz"):
            if base.lower().endswith(suffix):
                return base[: -len(suffix)] or base
        stem, dot, _ = base.rpartition(".")
        return stem if dot and stem else base

    def fail(self, reason: Reason, detail: str) -> ExtractionError:
        """Build the error for this file (the caller raises it)."""
        return ExtractionError(self.name, reason, detail)


class DocumentBuilder:
    """Accumulates text blocks and records their sections with exact offsets.

    Blocks are separated by a blank line. Headings form a stack so every
    block knows its ``heading_path``; pages wrap the blocks added between
    :meth:`begin_page` and :meth:`end_page`.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._length = 0
        self._sections: list[Section] = []
        self._headings: list[tuple[int, str]] = []
        self._page: int | None = None
        self._page_start: int | None = None
        self._top: list[tuple[int, str]] = []

    @property
    def heading_path(self) -> tuple[str, ...]:
        return tuple(title for _, title in self._headings)

    def _append(self, text: str) -> tuple[int, int]:
        if self._parts:
            self._parts.append(_BLOCK_SEPARATOR)
            self._length += len(_BLOCK_SEPARATOR)
        start = self._length
        self._parts.append(text)
        self._length += len(text)
        if self._page is not None and self._page_start is None:
            self._page_start = start
        return start, self._length

    def heading(self, text: str, level: int) -> None:
        """Add a heading of ``level`` (1 = top); it closes deeper headings."""
        text = " ".join(text.split())
        if not text:
            return
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, text))
        if not any(seen <= level for seen, _ in self._top):
            self._top.append((level, text))
        start, end = self._append(text)
        self._sections.append(Section("heading", start, end, self._page, self.heading_path))

    def block(self, text: str, kind: SectionKind = "paragraph") -> None:
        """Add a paragraph (or record) under the current headings and page."""
        text = text.strip()
        if not text:
            return
        start, end = self._append(text)
        self._sections.append(Section(kind, start, end, self._page, self.heading_path))

    def begin_page(self, number: int) -> None:
        self.end_page()
        self._page = number
        self._page_start = None

    def end_page(self) -> None:
        if self._page is not None and self._page_start is not None:
            self._sections.append(Section("page", self._page_start, self._length, self._page))
        self._page = None
        self._page_start = None

    def top_heading(self) -> str | None:
        """The first heading of the highest level seen: the likely title."""
        if not self._top:
            return None
        return min(self._top, key=lambda item: item[0])[1]

    def build(
        self,
        *,
        title: str,
        media_type: str,
        metadata: dict[str, Any] | None = None,
        sub_id: str | None = None,
    ) -> ExtractedDocument:
        """Freeze what was added; sections are ordered by start, pages first."""
        self.end_page()
        order = {"page": 0, "heading": 1, "record": 2, "paragraph": 3}
        sections = sorted(self._sections, key=lambda s: (s.start, order[s.kind], -s.end))
        return ExtractedDocument(
            title=title.strip() or "untitled",
            text="".join(self._parts),
            media_type=media_type,
            sections=tuple(sections),
            metadata=metadata or {},
            sub_id=sub_id,
        )


class BoundedReader:
    """A byte stream that replays an already-read head, then refuses to go
    past ``limit`` bytes in total — so a streamed file still honours the
    size limit even when its length was unknown up front."""

    def __init__(self, head: bytes, rest: BinaryIO, limit: int, name: str) -> None:
        self._head = head
        self._rest = rest
        self._limit = limit
        self._name = name
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                chunk, self._head = self._head, b""
            else:
                chunk, self._head = self._head[:size], self._head[size:]
        else:
            chunk = self._rest.read(size)
        self.consumed += len(chunk)
        if self.consumed > self._limit:
            raise ExtractionError(self._name, "too_large", over_limit(self._limit))
        return chunk

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, /) -> int:
        raise io.UnsupportedOperation("a bounded reader only reads forward")


class Readable(Protocol):
    """A forward-only byte stream, as ``bz2.BZ2File`` and ``iterparse`` want."""

    def read(self, size: int = -1, /) -> bytes: ...

    def seekable(self) -> bool: ...

    def seek(self, offset: int, /) -> int: ...


def over_limit(limit: int, size: int | None = None) -> str:
    """The human text for a file over the size limit."""
    got = f" ({size / 1_048_576:.1f} MiB)" if size is not None else ""
    return (
        f"the file is larger than the configured limit of {limit / 1_048_576:.1f} MiB{got}; "
        "raise the ingest size limit or split the file"
    )
