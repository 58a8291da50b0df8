"""DOCX: body paragraphs and tables in reading order, Word headings as sections.

The zip container is inspected before python-docx sees it: a DOCX is a zip
archive, and a crafted one can declare gigabytes of XML in a few kilobytes.
``zipfile`` never inflates an entry past its declared size, so checking the
declared sizes (in total, and each entry's compression ratio) bounds the
memory the parse can take.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator

import docx
from docx.document import Document
from docx.table import Table
from docx.text.paragraph import Paragraph

from janus_stack.ingest.extract.base import DocumentBuilder, ExtractedDocument, Source

MAX_RATIO = 200
"""Deflate reaches ~10-30x on real Word XML; a bomb sits near 1000x."""
_RATIO_FLOOR = 1024 * 1024
"""Entries smaller than this cannot hurt, whatever their ratio."""
_HEADING = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """One document; ``Heading N`` and ``Title`` paragraphs become headings."""
    _check_container(data, src)
    try:
        document = docx.Document(io.BytesIO(data))
        builder, title = _read_body(document)
        core_title = (document.core_properties.title or "").strip()
        author = (document.core_properties.author or "").strip()
    except Exception as exc:
        # python-docx and lxml report damage as KeyError, ValueError,
        # XMLSyntaxError, PackageNotFoundError, ... depending on the part.
        raise src.fail("corrupt", f"the DOCX is damaged and cannot be read ({exc})") from None
    metadata: dict[str, object] = {"author": author} if author else {}
    result = builder.build(
        title=core_title or title or builder.top_heading() or src.stem,
        media_type=src.media_type,
        metadata=metadata,
    )
    if not result.text:
        raise src.fail("empty", "the Word document contains no text")
    yield result


def _check_container(data: bytes, src: Source) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise src.fail("corrupt", f"the DOCX is not a readable zip archive ({exc})") from None
    names = {info.filename for info in infos}
    if "word/document.xml" not in names:
        if "EncryptedPackage" in names:
            raise src.fail("encrypted", "the Word document is encrypted; decrypt it first")
        raise src.fail(
            "unsupported", "this zip archive is not a Word document (no word/document.xml)"
        )
    if any(info.flag_bits & 0x1 for info in infos):
        raise src.fail("encrypted", "the DOCX archive is encrypted; decrypt it first")
    limit = src.options.max_docx_uncompressed
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise src.fail(
            "too_large",
            f"the DOCX would unpack to {total / 1_048_576:.0f} MiB, over the limit of "
            f"{limit / 1_048_576:.0f} MiB (possible zip bomb)",
        )
    for info in infos:
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(
            info.compress_size, 1
        ):
            ratio = info.file_size // max(info.compress_size, 1)
            raise src.fail(
                "too_large",
                f"{info.filename} inside the DOCX is compressed {ratio}:1, far beyond real "
                "documents; refusing it as a likely zip bomb",
            )


def _read_body(document: Document) -> tuple[DocumentBuilder, str | None]:
    builder = DocumentBuilder()
    title: str | None = None
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            style = item.style.name if item.style is not None else ""
            text = item.text
            level = _heading_level(style or "")
            if level == 0:
                title = title or text.strip() or None
                builder.heading(text, 1)
            elif level is not None:
                builder.heading(text, level + 1 if title else level)
            elif (style or "").lower().startswith("list"):
                builder.block(f"- {text.strip()}" if text.strip() else "")
            else:
                builder.block(text)
        elif isinstance(item, Table):
            builder.block(_table_text(item))
    return builder, title


def _heading_level(style: str) -> int | None:
    """0 for Title, N for Heading N, None for body text."""
    if style.lower() == "title":
        return 0
    match = _HEADING.match(style.strip())
    return int(match.group(1)) if match else None


def _table_text(table: Table) -> str:
    lines = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # merged cells repeat their text
                cells.append(text)
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)
