"""PDF: the text of every page, with page numbers kept as sections.

pypdf rather than pypdfium2: it is pure Python, so a hostile file can at
worst raise or be slow, never crash the worker through a native parser; it
ships type hints; its encryption API tells "needs a password" apart from
"damaged"; and it installs anywhere without a platform wheel. It is slower
than PDFium (about 6 ms a page here), which the ingest queue absorbs.

Files with an owner password only (printable but "protected") open with
the empty user password, as every PDF viewer does.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from janus_stack.ingest.extract.base import DocumentBuilder, ExtractedDocument, Source
from janus_stack.ingest.extract.text import paragraphs


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """One document with a page section per page that has text."""
    reader = _open(data, src)
    builder = DocumentBuilder()
    unreadable: list[int] = []
    page_count = 0
    try:
        pages = list(reader.pages)
    except FileNotDecryptedError:
        raise src.fail("encrypted", _ENCRYPTED) from None
    except Exception as exc:
        # pypdf signals damage with many exception types (KeyError,
        # ValueError, RecursionError, ...) depending on where it trips.
        raise src.fail(
            "corrupt", f"the PDF is damaged and its pages cannot be read ({exc})"
        ) from None
    for number, page in enumerate(pages, start=1):
        page_count = number
        try:
            text = page.extract_text() or ""
        except Exception:  # one damaged page must not hide the others
            unreadable.append(number)
            continue
        builder.begin_page(number)
        for block in paragraphs(text):
            builder.block(block)
        builder.end_page()
    if page_count and len(unreadable) == page_count:
        raise src.fail("corrupt", "the PDF is damaged: none of its pages could be read")
    metadata: dict[str, object] = {"page_count": page_count}
    if unreadable:
        metadata["unreadable_pages"] = unreadable
    document = builder.build(
        title=_title(reader) or src.stem, media_type=src.media_type, metadata=metadata
    )
    if not document.text:
        raise src.fail(
            "empty",
            f"the PDF has no text layer in its {page_count} page(s) (scanned images?); "
            "run OCR on it first",
        )
    yield document


_ENCRYPTED = "the PDF is encrypted (password protected); decrypt it first"


def _open(data: bytes, src: Source) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data))
    except Exception as exc:
        raise src.fail(
            "corrupt", f"the PDF is truncated or damaged and cannot be opened ({exc})"
        ) from None
    if reader.is_encrypted:
        try:
            result = reader.decrypt("")
        except DependencyError:
            raise src.fail(
                "encrypted",
                "the PDF is encrypted with AES and the 'cryptography' package is not "
                "installed; install it or decrypt the file first",
            ) from None
        except Exception:
            raise src.fail("encrypted", _ENCRYPTED) from None
        if result == PasswordType.NOT_DECRYPTED:
            raise src.fail("encrypted", _ENCRYPTED)
    return reader


def _title(reader: PdfReader) -> str | None:
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # a broken info dictionary only costs us the title
        return None
    return title.strip() if isinstance(title, str) and title.strip() else None
