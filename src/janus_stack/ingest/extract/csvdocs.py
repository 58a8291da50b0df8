"""CSV and TSV: one document, each row a record section of ``column: value``.

Repeating the column name next to every value keeps a row meaningful on
its own once a chunker has cut the table apart ("price: 12" says more to an
embedding or a reader than a bare "12").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from janus_stack.ingest.extract.base import DocumentBuilder, ExtractedDocument, Source
from janus_stack.ingest.extract.detect import extension, sniff_delimiter
from janus_stack.ingest.extract.text import decode

_SAMPLE_CHARS = 64 * 1024


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """One document whose sections are the table's rows."""
    text, encoding = decode(data, src)
    delimiter, has_header = _sniff(text, src.name)
    try:
        rows = [
            row
            for row in csv.reader(io.StringIO(text), delimiter=delimiter)
            if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise src.fail("corrupt", f"the CSV cannot be parsed ({exc})") from None
    if not rows:
        raise src.fail("empty", "the CSV has no rows")
    width = max(len(row) for row in rows)
    header = [c.strip() for c in rows[0]] if has_header else []
    columns = [
        (header[i] if i < len(header) and header[i] else f"column {i + 1}") for i in range(width)
    ]
    body = rows[1:] if has_header else rows
    builder = DocumentBuilder()
    for row in body:
        builder.block(
            "; ".join(
                f"{columns[i]}: {value.strip()}" for i, value in enumerate(row) if value.strip()
            ),
            kind="record",
        )
    metadata: dict[str, object] = {
        "columns": columns,
        "row_count": len(body),
        "delimiter": delimiter,
        "has_header": has_header,
        "encoding": encoding,
    }
    document = builder.build(title=src.stem, media_type=src.media_type, metadata=metadata)
    if not document.text:
        raise src.fail("empty", "the CSV has a header but no data rows")
    yield document


def _sniff(text: str, name: str) -> tuple[str, bool]:
    """The delimiter and whether the first row is a header."""
    lines = text[:_SAMPLE_CHARS].split("\n")
    if len(text) > _SAMPLE_CHARS:
        lines = lines[:-1]  # cut off by the sample
    found = sniff_delimiter(lines)
    delimiter = found[0] if found else ("\t" if extension(name) == "tsv" else ",")
    first = next(csv.reader(lines[:1], delimiter=delimiter), [])
    return delimiter, _looks_like_header(first)


def _looks_like_header(row: list[str]) -> bool:
    """Distinct, non-empty, non-numeric cells: how column names look."""
    cells = [cell.strip() for cell in row]
    if len(cells) < 2 or not all(cells) or len(set(cells)) != len(cells):
        return False
    for cell in cells:
        try:
            float(cell)
        except ValueError:
            continue
        return False
    return True
