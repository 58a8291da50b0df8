"""MediaWiki XML dumps (plain or .bz2): one document per article.

The dump is streamed: bz2 is decompressed on the fly, the XML is read with
``iterparse`` and each ``<page>`` is dropped from the tree as soon as it has
been turned into a document, so memory follows the largest article, not
the dump. Two guards keep that true for hostile input: XML nested deeper
than ``max_depth`` is refused, and a single page whose XML exceeds the size
limit is refused (a small bz2 file can inflate to gigabytes of one page).

Wikitext is turned into text by :mod:`.wikitext` (linear on any input;
see there why not mwparserfromhell): templates, references, files,
categories and interlanguage links are removed; sections become heading
sections; article links are kept as ``metadata["links"]`` and categories
as ``metadata["categories"]``. Redirects and pages outside the main
(article) namespace are skipped.
"""

from __future__ import annotations

import bz2
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from janus_stack.ingest.extract.base import (
    MEDIAWIKI,
    ExtractedDocument,
    Readable,
    Source,
)
from janus_stack.ingest.extract.wikitext import render

_ARTICLE_NAMESPACE = "0"


class _PageMeter:
    """Counts bytes handed to the XML parser since the last finished page."""

    def __init__(self, inner: Readable | bz2.BZ2File, src: Source) -> None:
        self._inner = inner
        self._src = src
        self._consumed = 0
        self._page_start = 0

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._inner.read(size)
        self._consumed += len(chunk)
        if self._consumed - self._page_start > self._src.max_bytes:
            raise self._src.fail(
                "too_large",
                f"a page in the dump is larger than the limit of "
                f"{self._src.max_bytes / 1_048_576:.1f} MiB once decompressed; "
                "the dump is damaged or hostile",
            )
        return chunk

    def page_done(self) -> None:
        self._page_start = self._consumed


def extract(stream: Readable, src: Source, *, compressed: bool) -> Iterator[ExtractedDocument]:
    """Yield one document per article, as the dump is read."""
    meter = _PageMeter(bz2.BZ2File(stream) if compressed else stream, src)
    limit = src.options.max_depth
    depth = 0
    root: ET.Element | None = None
    found = False
    try:
        for event, element in ET.iterparse(meter, events=("start", "end")):
            if event == "start":
                depth += 1
                if depth > limit:
                    raise src.fail("too_deep", f"the XML is nested deeper than {limit} levels")
                if root is None:
                    root = element
                    if _local(element.tag) != "mediawiki":
                        raise src.fail(
                            "unsupported",
                            f"the XML root is <{_local(element.tag)}>, not a MediaWiki "
                            "dump <mediawiki>",
                        )
                continue
            depth -= 1
            if _local(element.tag) != "page" or root is None:
                continue
            document = _page(element)
            root.clear()  # drop finished pages: memory stays flat
            meter.page_done()
            if document is not None:
                found = True
                yield document
    except ET.ParseError as exc:
        if root is None:
            raise src.fail("unsupported", "the file does not hold a MediaWiki XML dump") from None
        raise src.fail("corrupt", f"the dump is not well-formed XML ({exc})") from None
    except EOFError:
        raise src.fail("corrupt", "the bz2 dump is truncated") from None
    except OSError as exc:
        raise src.fail("corrupt", f"the bz2 dump is damaged ({exc})") from None
    if root is None:
        raise src.fail("empty", "the file holds no XML")
    if not found:
        raise src.fail("empty", "the dump holds no articles with text")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((child for child in element if _local(child.tag) == name), None)


def _page(page: ET.Element) -> ExtractedDocument | None:
    title_el, ns_el, id_el = (_child(page, n) for n in ("title", "ns", "id"))
    revision = _child(page, "revision")
    text_el = _child(revision, "text") if revision is not None else None
    wikitext = (text_el.text or "") if text_el is not None else ""
    namespace = (ns_el.text or "").strip() if ns_el is not None else _ARTICLE_NAMESPACE
    if (
        _child(page, "redirect") is not None
        or namespace != _ARTICLE_NAMESPACE
        or wikitext.lstrip()[:9].upper() == "#REDIRECT"
        or not wikitext.strip()
    ):
        return None
    title = (title_el.text or "").strip() if title_el is not None else ""
    page_id = (id_el.text or "").strip() if id_el is not None else None
    rendered = render(wikitext)
    builder = rendered.builder
    metadata: dict[str, object] = {"links": rendered.links, "categories": rendered.categories}
    if page_id:
        metadata["page_id"] = page_id
    if revision is not None:
        for name in ("id", "timestamp"):
            if (value := _child(revision, name)) is not None and value.text:
                metadata[f"revision_{name}"] = value.text.strip()
    document = builder.build(
        title=title,
        media_type=MEDIAWIKI,
        metadata=metadata,
        sub_id=page_id or title,
    )
    return document if document.text else None
