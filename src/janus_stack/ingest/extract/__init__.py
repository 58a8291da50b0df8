"""Turn a file's bytes into text with structure: the first step of ingest.

``detect`` decides the format from the content (magic bytes, structure)
and only then from the name; ``extract`` yields one or more
:class:`ExtractedDocument` — a MediaWiki dump or a JSON Lines file holds
many. Every refusal is an :class:`ExtractionError` whose message names the
file and whose ``reason`` is one of ``empty``, ``too_large``,
``encrypted``, ``corrupt``, ``unsupported``, ``undecodable``, ``too_deep``.

Formats: plain text, Markdown, HTML, PDF, DOCX, JSON, JSON Lines, CSV/TSV,
source code, MediaWiki XML dumps (plain or .bz2). Format modules are
imported on first use, so a caller that never sees a PDF never loads pypdf.

Files are read whole (at most ``max_bytes``) and fail as a unit, before any
document is yielded; MediaWiki dumps are streamed article by article.

    ExtractionError(InvalidInputError)   reason: the code above
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from janus_stack.ingest.extract.base import (
    BINARY,
    BZIP2,
    CODE,
    CSV,
    DOCX,
    EMPTY,
    HTML,
    JSON,
    JSONL,
    MARKDOWN,
    MEDIAWIKI,
    PDF,
    TEXT,
    ZIP,
    BoundedReader,
    ExtractedDocument,
    ExtractionError,
    ExtractOptions,
    Reason,
    Section,
    SectionKind,
    Source,
    over_limit,
)
from janus_stack.ingest.extract.detect import HEAD_SIZE, detect

__all__ = [
    "CODE",
    "CSV",
    "DOCX",
    "HTML",
    "JSON",
    "JSONL",
    "MARKDOWN",
    "MEDIAWIKI",
    "PDF",
    "TEXT",
    "ExtractOptions",
    "ExtractedDocument",
    "ExtractionError",
    "Reason",
    "Section",
    "SectionKind",
    "detect",
    "extract",
]

_MODULES = MappingProxyType(
    {
        TEXT: "text",
        MARKDOWN: "markdown",
        HTML: "html",
        PDF: "pdf",
        DOCX: "docx",
        ZIP: "docx",  # a zip named otherwise may still be a DOCX; docx.py checks
        JSON: "jsondocs",
        JSONL: "jsondocs",
        CSV: "csvdocs",
        CODE: "code",
    }
)
_UNSUPPORTED_HINTS = MappingProxyType(
    {
        "application/x-ole-storage": "a legacy Office file (.doc/.xls) or an encrypted Office "
        "file; save it as .docx",
        "application/xml": "XML other than a MediaWiki dump",
    }
)


def extract(
    source: BinaryIO | Path,
    *,
    name: str,
    max_bytes: int,
    options: ExtractOptions | None = None,
) -> Iterator[ExtractedDocument]:
    """Yield the documents in one file.

    Args:
        source: an open binary stream (read from its current position) or a
            path.
        name: the file's name, used in messages, for titles and as a format
            hint after the content.
        max_bytes: the largest file accepted; larger input fails with
            ``too_large`` before it is read into memory.
        options: format choices; the defaults when omitted.

    Raises:
        ExtractionError: when iterated, for any file that cannot be turned
            into text, with the file name and the reason.
    """
    options = options or ExtractOptions()
    if isinstance(source, Path):
        size = source.stat().st_size
        if size == 0:
            raise ExtractionError(name, "empty", "the file is empty (0 bytes)")
        if size > max_bytes:
            raise ExtractionError(name, "too_large", over_limit(max_bytes, size))
        with source.open("rb") as stream:
            yield from _extract_stream(stream, name, max_bytes, options)
    else:
        yield from _extract_stream(source, name, max_bytes, options)


def _extract_stream(
    stream: BinaryIO, name: str, max_bytes: int, options: ExtractOptions
) -> Iterator[ExtractedDocument]:
    head = _read_up_to(stream, min(HEAD_SIZE, max_bytes + 1))
    media_type = detect(head, name)
    src = Source(name=name, media_type=media_type, max_bytes=max_bytes, options=options)
    if media_type == EMPTY:
        raise src.fail("empty", "the file is empty (0 bytes)")
    if media_type in (MEDIAWIKI, BZIP2):
        module = importlib.import_module("janus_stack.ingest.extract.mediawiki")
        reader = BoundedReader(head, stream, max_bytes, name)
        src = Source(name=name, media_type=MEDIAWIKI, max_bytes=max_bytes, options=options)
        yield from module.extract(reader, src, compressed=head.startswith(b"BZh"))
        return
    module_name = _MODULES.get(media_type)
    if module_name is None:
        what = _UNSUPPORTED_HINTS.get(
            media_type, "binary data" if media_type == BINARY else media_type
        )
        raise src.fail(
            "unsupported",
            f"unsupported file type: {what} (detected from the content, whatever the name "
            "says); Janus reads text, Markdown, HTML, PDF, DOCX, JSON, CSV, source code "
            "and MediaWiki dumps",
        )
    data = head + _read_up_to(stream, max_bytes + 1 - len(head))
    if len(data) > max_bytes:
        raise src.fail("too_large", over_limit(max_bytes))
    if media_type == ZIP:
        src = Source(name=name, media_type=DOCX, max_bytes=max_bytes, options=options)
    module = importlib.import_module(f"janus_stack.ingest.extract.{module_name}")
    extractor: Callable[[bytes, Source], Iterator[ExtractedDocument]] = module.extract
    yield from extractor(data, src)


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes or until EOF: raw streams may return less per call."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
