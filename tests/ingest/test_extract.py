"""Format detection and text extraction, on real files built by the tests.

PDFs are written with fpdf2 (and encrypted with pypdf), DOCX files with
python-docx, dumps with bz2; the real MediaWiki sample comes from gensim's
test data. Hostile inputs each assert the reason code and that the message
names the file.
"""

from __future__ import annotations

import bz2
import io
import json
import random
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import pytest
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

from janus_stack.errors import InvalidInputError
from janus_stack.ingest.extract import (
    CODE,
    CSV,
    DOCX,
    HTML,
    JSON,
    JSONL,
    MARKDOWN,
    MEDIAWIKI,
    PDF,
    TEXT,
    ExtractedDocument,
    ExtractionError,
    ExtractOptions,
    detect,
    extract,
)

FIXTURES = Path(__file__).parent / "fixtures"
MiB = 1024 * 1024


# -- helpers -------------------------------------------------------------------


def run(
    data: bytes, name: str, *, max_bytes: int = 10 * MiB, **options: Any
) -> list[ExtractedDocument]:
    docs = list(
        extract(io.BytesIO(data), name=name, max_bytes=max_bytes, options=ExtractOptions(**options))
    )
    for doc in docs:
        assert_sections_valid(doc)
    return docs


def one(data: bytes, name: str, **options: Any) -> ExtractedDocument:
    docs = run(data, name, **options)
    assert len(docs) == 1
    return docs[0]


def fails(data: bytes, name: str, reason: str, **kwargs: Any) -> ExtractionError:
    with pytest.raises(ExtractionError) as info:
        run(data, name, **kwargs)
    return check_error(info.value, name, reason)


def check_error(error: ExtractionError, name: str, reason: str) -> ExtractionError:
    assert error.reason == reason, str(error)
    assert error.name == name
    assert str(error).startswith(f"{name}: ")
    assert isinstance(error, InvalidInputError)
    return error


def assert_sections_valid(doc: ExtractedDocument) -> None:
    for section in doc.sections:
        assert 0 <= section.start < section.end <= len(doc.text), section
        assert doc.text[section.start : section.end].strip(), section
    assert [s.start for s in doc.sections] == sorted(s.start for s in doc.sections)


def section_texts(doc: ExtractedDocument, kind: str) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.sections if s.kind == kind]


def path_of(doc: ExtractedDocument, needle: str) -> tuple[str, ...]:
    """The heading path of the paragraph containing ``needle``."""
    for section in doc.sections:
        if (
            section.kind in ("paragraph", "record")
            and needle in doc.text[section.start : section.end]
        ):
            return section.heading_path
    raise AssertionError(f"{needle!r} not in any paragraph")


def make_pdf(pages: list[str], title: str = "Quarterly report") -> bytes:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("Field guide to ponds", style="Title")
    document.add_heading("Plants", level=1)
    document.add_paragraph("Reeds filter the water and shelter insects.")
    document.add_heading("Floating plants", level=2)
    document.add_paragraph("Water lilies shade the surface and keep algae down.")
    document.add_paragraph("duckweed", style="List Bullet")
    document.add_heading("Animals", level=1)
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {
        (0, 0): "species",
        (0, 1): "count",
        (1, 0): "newt",
        (1, 1): "12",
    }.items():
        table.cell(row, col).text = text
    document.add_paragraph("Newts return to the pond every spring.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def add_zip_entry(data: bytes, name: str, payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        target.writestr(name, payload, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def wiki_page(title: str, page_id: int, text: str, ns: int = 0, redirect: str | None = None) -> str:
    redirect_el = f'<redirect title="{redirect}" />' if redirect else ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f"<page><title>{title}</title><ns>{ns}</ns><id>{page_id}</id>{redirect_el}"
        f"<revision><id>{page_id * 10}</id><timestamp>2024-01-01T00:00:00Z</timestamp>"
        f'<text xml:space="preserve">{escaped}</text></revision></page>'
    )


def wiki_dump(*pages: str) -> bytes:
    return (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">'
        "<siteinfo><sitename>Testwiki</sitename></siteinfo>" + "".join(pages) + "</mediawiki>"
    ).encode()


RIVER_WIKITEXT = """{{Infobox river|name=Millbrook|length=42 km}}
The '''Millbrook''' is a river in [[Northshire]] that feeds the [[Sponge park|sponge parks]] of
[[millbrook_city#History|the city]].<ref>{{cite web|url=http://example.org|title=Rivers}}</ref>
[[File:Millbrook.jpg|thumb|The river in [[Winter]]]]

== Course ==
It rises on [[Hill Moor]] and flows east.<!-- hidden note -->

=== Tributaries ===
* The [[Little Brook]]
* The Fenn &amp; the Otter

== Floods ==
Floods in 2021 damaged {{convert|300|m}} of road.

[[Category:Rivers of Northshire]]
[[de:Millbrook]]
"""


# -- detection -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "name", "expected"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "report.txt", PDF),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "notes.txt", "image/png"),
        (bytes(range(256)) * 8, "notes.txt", "application/octet-stream"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
            "old.doc",
            "application/x-ole-storage",
        ),
        (b"<!DOCTYPE html><html><head><title>x</title>", "page.txt", HTML),
        (b"<mediawiki xmlns='x'><siteinfo>", "dump", MEDIAWIKI),
        (b'[{"a": 1}, {"a": 2}]', "data.txt", JSON),
        (b'{"a": 1}\n{"a": 2}\n{"a": 3}\n', "data.json", JSONL),
        (b"name,city,age\nAlice,Paris,31\nBob,Rome,45\nCarla,Oslo,28\n", "table", CSV),
        (b"# Title\n\nSome *text* with a [link](http://x.y).\n\n## Part\n", "README", MARKDOWN),
        (b"def main() -> None:\n    print('hi')\n", "tool.py", CODE),
        (b"#!/usr/bin/env python3\nimport sys\n", "tool", CODE),
        (b"Dear team,\n\nthe meeting moves to Tuesday.\n", "memo", TEXT),
        (b"[1] Smith, J. (2020). A reference list, not JSON.\n", "refs.txt", TEXT),
    ],
)
def test_detect_by_content_before_name(head: bytes, name: str, expected: str) -> None:
    assert detect(head, name) == expected


def test_detect_docx_and_dump_magic() -> None:
    assert detect(make_docx()[:65536], "upload.zip") == DOCX
    dump = bz2.compress(wiki_dump(wiki_page("A", 1, "Text")))
    assert detect(dump, "dump.bin") == MEDIAWIKI


# -- happy paths ---------------------------------------------------------------


def test_plain_text_paragraphs() -> None:
    doc = one(b"First paragraph\nstill first.\r\n\r\nSecond paragraph.\n", "notes.txt")
    assert doc.media_type == TEXT
    assert doc.title == "notes"
    assert section_texts(doc, "paragraph") == ["First paragraph\nstill first.", "Second paragraph."]
    assert doc.metadata["encoding"] == "utf-8"


def test_legacy_encoding_is_detected() -> None:
    french = (
        "Le conseil municipal a décidé mardi de transformer le parc en bassin de rétention. "
        "Les travaux débuteront à l'été et dureront dix-huit mois. « Nous préférons ralentir "
        "l'eau plutôt que de construire des murs », a expliqué la maire. Où en sera le projet?"
    )
    doc = one(french.encode("cp1252"), "conseil.txt")
    assert "décidé" in doc.text
    assert "très" not in doc.text
    assert "préférons" in doc.text
    assert doc.text == french


def test_utf16_with_bom_and_damaged_utf8() -> None:
    assert one("Grüße aus München".encode("utf-16"), "g.txt").text == "Grüße aus München"
    damaged = ("Grüße aus München, schöne Straße. " * 40).encode() + b"\xff tail"
    doc = one(damaged, "d.txt")
    assert doc.text.startswith("Grüße aus München")
    assert "\ufffd" in doc.text


def test_markdown_structure() -> None:
    source = b"""---
title: Pond handbook
---
# Ponds

Ponds are *small* bodies of water; see [the guide](https://example.org/guide).

## Plants

- reeds
- lilies

### Floating

Lilies float.

```python
print("not a heading")
# also not a heading
```

| plant | depth |
|-------|-------|
| reed  | 0.5   |
"""
    doc = one(source, "handbook.md")
    assert doc.media_type == MARKDOWN
    assert doc.title == "Pond handbook"
    assert section_texts(doc, "heading") == ["Ponds", "Plants", "Floating"]
    assert path_of(doc, "Lilies float.") == ("Ponds", "Plants", "Floating")
    assert path_of(doc, "- reeds\n- lilies") == ("Ponds", "Plants")
    assert "# also not a heading" in doc.text
    assert "plant | depth\nreed | 0.5" in doc.text
    assert "*small*" not in doc.text and "small" in doc.text
    assert doc.metadata["links"] == ["https://example.org/guide"]


def test_html_boilerplate_removed_structure_kept() -> None:
    data = (FIXTURES / "news_article.html").read_bytes()
    doc = one(data, "sponge-parks.html")
    assert doc.media_type == HTML
    assert doc.title == "Cities turn to sponge parks to tame flash floods"
    assert doc.metadata["boilerplate_removed"] is True
    for kept in (
        "When the Millbrook river burst its banks",
        "- Retention basins that double as sports pitches",
        "We stopped asking how to get the water away",
        "Residents were sceptical at first",
    ):
        assert kept in doc.text
    for dropped in (
        "We use cookies",
        "Share on X",
        "Read more",
        "shopping trolleys",
        "Most read",
        "garden furniture",
        "Copyright 2024",
        "gtag",
        "Maria Okafor covers",
    ):
        assert dropped not in doc.text
    assert path_of(doc, "Residents were sceptical") == ("The cost question", "What residents think")


@pytest.mark.parametrize("keep", [True, False])
def test_html_links_kept_as_metadata(keep: bool) -> None:
    data = (FIXTURES / "news_article.html").read_bytes()
    data = data.replace(
        b"advised the Millbrook project",
        b'advised the <a href="https://example.org/millbrook">Millbrook project</a>',
    )
    doc = one(data, "page.html", html_keep_links=keep)
    assert "who advised the Millbrook project, said" in doc.text
    assert doc.metadata.get("links") == (["https://example.org/millbrook"] if keep else None)


def test_html_fragment_falls_back_to_visible_text() -> None:
    doc = one(b"<p>Short note.</p>", "note.htm")
    assert doc.text == "Short note."
    assert doc.metadata["boilerplate_removed"] is False
    assert one(b"<p>Note.</p><script>var x = 1;</script>", "n.htm").text == "Note."


def test_pdf_pages_numbered() -> None:
    pages = [f"Chapter {n}\n\nRevenue grew in region {n}." for n in (1, 2, 3)]
    doc = one(make_pdf(pages), "report.pdf")
    assert doc.media_type == PDF
    assert doc.title == "Quarterly report"
    assert doc.metadata["page_count"] == 3
    page_sections = [s for s in doc.sections if s.kind == "page"]
    assert [s.page for s in page_sections] == [1, 2, 3]
    for section, number in zip(page_sections, (1, 2, 3), strict=True):
        assert f"Revenue grew in region {number}." in doc.text[section.start : section.end]
    paragraph = next(
        s for s in doc.sections if s.kind == "paragraph" and "region 2" in doc.text[s.start : s.end]
    )
    assert paragraph.page == 2


def test_pdf_with_owner_password_only_is_read() -> None:
    doc = one(encrypt_pdf(make_pdf(["Open to read."]), user_password=""), "protected.pdf")
    assert "Open to read." in doc.text


def test_docx_headings_tables_lists() -> None:
    doc = one(make_docx(), "ponds.docx")
    assert doc.media_type == DOCX
    assert doc.title == "Field guide to ponds"
    assert path_of(doc, "Water lilies shade") == (
        "Field guide to ponds",
        "Plants",
        "Floating plants",
    )
    assert path_of(doc, "species | count\nnewt | 12") == ("Field guide to ponds", "Animals")
    assert "- duckweed" in doc.text


def test_docx_detected_despite_zip_name() -> None:
    assert one(make_docx(), "attachment.zip").media_type == DOCX


JSON_RECORDS = [
    {"title": "Reed", "body": "Reeds filter water.", "tags": ["plant", "wet"], "height": 2},
    {"title": "Newt", "body": "Newts eat larvae.", "meta": {"author": "Ana"}},
]


def test_json_records_flattened() -> None:
    docs = run(json.dumps(JSON_RECORDS).encode(), "species.json")
    assert [(d.sub_id, d.title) for d in docs] == [("0", "Reed"), ("1", "Newt")]
    assert docs[0].text == "title: Reed\nbody: Reeds filter water.\ntags: plant\ntags: wet"
    assert "meta.author: Ana" in docs[1].text
    assert docs[0].metadata["fields"] == {
        "title": "Reed",
        "body": "Reeds filter water.",
        "height": 2,
    }
    assert docs[0].sections[0].kind == "record"


def test_json_text_field_and_single_document() -> None:
    docs = run(json.dumps(JSON_RECORDS).encode(), "species.json", json_text_field="body")
    assert [d.text for d in docs] == ["Reeds filter water.", "Newts eat larvae."]
    assert "body" not in docs[0].metadata["fields"]
    combined = one(
        json.dumps(JSON_RECORDS).encode(),
        "species.json",
        json_text_field="body",
        json_records_as_documents=False,
    )
    assert section_texts(combined, "record") == ["Reeds filter water.", "Newts eat larvae."]


def test_jsonl_line_numbers_and_missing_field() -> None:
    lines = b'{"text": "alpha"}\n\n{"text": "beta", "lang": "en"}\n{"other": 1}\n'
    docs = run(lines, "feed.jsonl", json_text_field="text")
    assert [(d.sub_id, d.text) for d in docs] == [("1", "alpha"), ("3", "beta")]
    assert docs[1].metadata["fields"] == {"lang": "en"}
    assert docs[0].media_type == JSONL
    error = fails(b'{"other": 1}\n{"other": 2}\n', "feed.jsonl", "empty", json_text_field="text")
    assert "'text'" in str(error)


def test_csv_rows_as_records() -> None:
    data = b"name;city;visits\nAlice;Paris;3\nBob;Rome;\n"
    doc = one(data, "visits.csv")
    assert doc.media_type == CSV
    assert section_texts(doc, "record") == [
        "name: Alice; city: Paris; visits: 3",
        "name: Bob; city: Rome",
    ]
    assert doc.metadata["columns"] == ["name", "city", "visits"]
    assert doc.metadata["delimiter"] == ";"
    assert doc.metadata["row_count"] == 2


def test_code_kept_verbatim_with_definitions() -> None:
    source = (
        b'"""Tool."""\n\nimport sys\n\n\n'
        b"def main() -> None:\n    x = 1\n\n    print(x)\n\n\n"
        b"class Box:\n    pass\n"
    )
    doc = one(source, "tool.py")
    assert doc.media_type == CODE
    assert doc.text == source.decode()
    assert doc.metadata["language"] == "python"
    assert section_texts(doc, "heading") == ["def main() -> None:", "class Box:"]
    assert path_of(doc, "print(x)") == ("def main() -> None:",)
    assert path_of(doc, "import sys") == ()


@pytest.mark.parametrize("compressed", [False, True])
def test_mediawiki_dump_synthetic(compressed: bool) -> None:
    dump = wiki_dump(
        wiki_page("Millbrook", 7, RIVER_WIKITEXT),
        wiki_page("Old name", 8, "#REDIRECT [[Millbrook]]", redirect="Millbrook"),
        wiki_page("Talk:Millbrook", 9, "Is this river real?", ns=1),
        wiki_page("Hill Moor", 11, "'''Hill Moor''' is a moor near [[Millbrook]]."),
    )
    data = bz2.compress(dump) if compressed else dump
    docs = run(data, "wiki.xml.bz2" if compressed else "wiki.xml")
    assert [(d.title, d.sub_id) for d in docs] == [("Millbrook", "7"), ("Hill Moor", "11")]
    river = docs[0]
    assert river.media_type == MEDIAWIKI
    assert river.metadata["links"] == [
        "Northshire",
        "Sponge park",
        "Millbrook city",
        "Winter",  # in a file caption: the caption is dropped, the link is real
        "Hill Moor",
        "Little Brook",
    ]
    assert river.metadata["categories"] == ["Rivers of Northshire"]
    assert river.metadata["page_id"] == "7"
    for markup in (
        "{{",
        "}}",
        "[[",
        "]]",
        "'''",
        "<ref",
        "cite web",
        "thumb",
        "hidden note",
        "==",
        "&amp;",
    ):
        assert markup not in river.text, markup
    assert river.text.startswith(
        "The Millbrook is a river in Northshire that feeds the sponge parks"
    )
    assert "The Fenn & the Otter" in river.text
    assert path_of(river, "Little Brook") == ("Course", "Tributaries")
    assert path_of(river, "Floods in 2021") == ("Floods",)
    assert docs[1].text == "Hill Moor is a moor near Millbrook."


def test_mediawiki_streams_from_unseekable_source() -> None:
    pages = [
        wiki_page(f"Page {n}", n, f"Body of page {n} about [[Topic {n}]].") for n in range(1, 301)
    ]
    data = bz2.compress(wiki_dump(*pages))

    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self.inner.read(min(len(buffer), 4096))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    stream = io.BufferedReader(OneWay())
    iterator = extract(stream, name="big.xml.bz2", max_bytes=10 * MiB)
    first = next(iterator)
    assert first.title == "Page 1" and first.metadata["links"] == ["Topic 1"]
    assert sum(1 for _ in iterator) == 299


def test_real_gensim_wikipedia_dump() -> None:
    """The sample dump shipped in gensim's test data: 106 real articles.

    gensim belongs in the test extra, so in CI this runs, never skips.
    """
    gensim = pytest.importorskip("gensim")
    path = (
        Path(gensim.__file__).parent
        / "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    )
    started = time.perf_counter()
    docs = list(extract(path, name=path.name, max_bytes=50 * MiB))
    elapsed = time.perf_counter() - started
    total = sum(len(d.text) for d in docs)
    print(f"\ngensim dump: {len(docs)} articles, {total} characters, {elapsed:.1f} s")
    assert len(docs) == 106
    assert total > 2_500_000
    titles = {d.title for d in docs}
    assert {"Anarchism", "Autism", "Albedo"} <= titles
    assert "AccessibleComputing" not in titles  # a redirect
    anarchism = next(d for d in docs if d.title == "Anarchism")
    assert "Political philosophy" in anarchism.metadata["links"]
    assert any(s.heading_path == ("History", "Origins") for s in anarchism.sections)
    for doc in docs:
        assert doc.text and doc.metadata["links"] is not None
        assert "{{" not in doc.text and "<ref" not in doc.text


# -- hostile and broken input --------------------------------------------------


def test_truncated_pdf_is_corrupt() -> None:
    data = make_pdf(["Some text. " * 200, "More text. " * 200])
    error = fails(data[: len(data) // 2], "report.pdf", "corrupt")
    assert "damaged" in str(error) or "truncated" in str(error)


def test_encrypted_pdf() -> None:
    data = encrypt_pdf(make_pdf(["Secret plans."]), user_password="s3cret")
    error = fails(data, "report.pdf", "encrypted")
    assert "decrypt it first" in str(error)


def test_pdf_without_text_layer_is_empty() -> None:
    pdf = FPDF()
    pdf.add_page()
    error = fails(bytes(pdf.output()), "scan.pdf", "empty")
    assert "OCR" in str(error)


def test_docx_zip_bomb_total_size() -> None:
    data = add_zip_entry(make_docx(), "word/media/filler.bin", b"\x00" * (60 * MiB))
    assert len(data) < MiB
    error = fails(data, "bomb.docx", "too_large", max_docx_uncompressed=50 * MiB)
    assert "zip bomb" in str(error)


def test_docx_zip_bomb_ratio() -> None:
    data = add_zip_entry(make_docx(), "word/media/filler.bin", b"\x00" * (8 * MiB))
    error = fails(data, "bomb.docx", "too_large")
    assert "compressed" in str(error) and "word/media/filler.bin" in str(error)


def test_docx_with_broken_xml_is_corrupt() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            payload = source.read(info.filename)
            if info.filename == "word/document.xml":
                payload = payload[: len(payload) // 2]
            target.writestr(info, payload)
    fails(out.getvalue(), "broken.docx", "corrupt")


def test_plain_zip_named_docx_is_unsupported() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photos/readme.txt", "hello")
    fails(out.getvalue(), "fake.docx", "unsupported")


def test_truncated_docx_is_corrupt() -> None:
    data = make_docx()
    fails(data[: len(data) // 3], "cut.docx", "corrupt")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing.txt"
    path.write_bytes(b"")
    with pytest.raises(ExtractionError) as info:
        list(extract(path, name="nothing.txt", max_bytes=MiB))
    check_error(info.value, "nothing.txt", "empty")
    fails(b"", "nothing.txt", "empty")
    fails(b"  \n\t\n", "blank.txt", "empty")


def test_binary_with_txt_name_is_unsupported() -> None:
    rng = random.Random(7)
    data = bytes(rng.randrange(256) for _ in range(4096))
    error = fails(data, "notes.txt", "unsupported")
    assert "binary" in str(error)
    error = fails(b"\x89PNG\r\n\x1a\n" + data, "photo.txt", "unsupported")
    assert "image/png" in str(error)


def test_legacy_office_file_is_unsupported_with_advice() -> None:
    error = fails(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512, "old.doc", "unsupported")
    assert ".docx" in str(error)


def test_invalid_utf8_is_undecodable() -> None:
    rng = random.Random(3)
    data = b"Header line\n" + bytes(rng.randrange(0x80, 0x100) for _ in range(3000))
    error = fails(data, "garbled.txt", "undecodable")
    assert "UTF-8" in str(error)


def test_deeply_nested_json() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    fails(deep, "deep.json", "too_deep")
    fails(b'{"a": ' * 65 + b"1" + b"}" * 65, "nested.json", "too_deep")
    assert one(b'{"a": ' * 60 + b'"ok"' + b"}" * 60, "nested.json").text.endswith(": ok")
    fails(b'{"x": 1}\n' + b"[" * 5000 + b"]" * 5000 + b"\n", "deep.jsonl", "too_deep")


def test_invalid_json_names_the_line() -> None:
    error = fails(b'{"a": 1}\n{"b": 2}\n{"c": oops}\n', "feed.jsonl", "corrupt")
    assert "line 3" in str(error)
    fails(b'{"a": [1, 2}', "bad.json", "corrupt")


def test_file_over_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.truncate(50 * MiB)  # sparse: costs no disk
    with pytest.raises(ExtractionError) as info:
        list(extract(path, name="huge.txt", max_bytes=10 * MiB))
    check_error(info.value, "huge.txt", "too_large")
    assert "10.0 MiB" in str(info.value) and "50.0 MiB" in str(info.value)

    class Counting(io.BytesIO):
        read_total = 0

        def read(self, size: int | None = -1) -> bytes:
            chunk = super().read(size)
            Counting.read_total += len(chunk)
            return chunk

    stream = Counting(b"word " * (10 * MiB))  # a 50 MB stream of text
    with pytest.raises(ExtractionError) as info:
        list(extract(stream, name="stream.txt", max_bytes=10 * MiB))
    check_error(info.value, "stream.txt", "too_large")
    assert Counting.read_total <= 10 * MiB + 1


def test_mediawiki_hostile_inputs() -> None:
    dump = bz2.compress(wiki_dump(*[wiki_page(f"P{n}", n, "text " * 200) for n in range(50)]))
    fails(dump[: len(dump) // 2], "cut.xml.bz2", "corrupt")
    bomb = bz2.compress(wiki_dump(wiki_page("Big", 1, "a" * (4 * MiB))))
    assert len(bomb) < 10_000
    fails(bomb, "bomb.xml.bz2", "too_large", max_bytes=MiB)
    nested = b"<mediawiki>" + b"<x>" * 100 + b"</x>" * 100 + b"</mediawiki>"
    fails(nested, "nested.xml", "too_deep")
    fails(wiki_dump(wiki_page("R", 1, "#REDIRECT [[X]]")), "redirects.xml", "empty")
    fails(b"<mediawiki><page><title>A</title>", "broken.xml", "corrupt")


HOSTILE_PATTERNS = ["[", "<", "\n", '"', ',"a', "[[", "<ref>", "{{", "<title", "\\", "*", "|"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("pattern", HOSTILE_PATTERNS)
def test_pathological_text_stays_linear(pattern: str) -> None:
    """Repeated syntax characters: a quadratic regex or sniffer would hang here.

    (``csv.Sniffer`` took 65 s on 64 KB of ``,"a``; it is not used.)
    """
    data = (pattern * (128 * 1024 // len(pattern))).encode()
    for name in ("blob", "notes.md", "table.csv", "data.json", "page.html"):
        try:
            list(extract(io.BytesIO(data), name=name, max_bytes=MiB))
        except ExtractionError as error:
            assert error.name == name
    dump = wiki_dump(wiki_page("Hostile", 1, pattern * (128 * 1024 // len(pattern)) + " end"))
    try:
        list(extract(io.BytesIO(dump), name="hostile.xml", max_bytes=MiB))
    except ExtractionError as error:
        assert error.reason == "empty"


WIKI_SYNTAX = [
    "[[", "]]", "{{", "}}", "{|", "|}", "|-", "|", "||", "!", "<b>", "</b>", "<div>", "<ref>",
    "</ref>", "<ref/>", "'''", "''", "==", "=", "\n", "*", "#", ":", "[http://x.org ", "[",
    "]", "&amp;", "<!--", "-->", "<nowiki>", "[[File:x.jpg|thumb|", "[[Category:", "<", ">",
]  # fmt: skip


@pytest.mark.timeout(60)
def test_random_wiki_syntax_stays_linear() -> None:
    """Random mixes of wiki syntax (mwparserfromhell took 15-28 s on 60-110 KB);
    the timeout turns a super-linear regression into a failure."""
    rng = random.Random(11)
    for _ in range(10):
        pool = [*rng.sample(WIKI_SYNTAX, rng.randint(1, 6)), "a", " "]
        text = "".join(rng.choice(pool) for _ in range(20_000)) + " end"
        dump = io.BytesIO(wiki_dump(wiki_page("Fuzz", 1, text)))
        try:
            docs = list(extract(dump, name="f.xml", max_bytes=MiB))
        except ExtractionError as error:
            assert error.reason == "empty"
        else:
            assert [d.title for d in docs] == ["Fuzz"]


def test_other_bzip2_is_unsupported() -> None:
    fails(bz2.compress(b"<rss><channel/></rss>"), "feed.bz2", "unsupported")
    fails(bz2.compress(b"plain words, not XML at all\n" * 50), "words.bz2", "unsupported")


def test_error_iteration_is_lazy_but_file_level_atomic() -> None:
    """A bad JSONL line fails the file before any record is yielded."""
    iterator: Iterator[ExtractedDocument] = extract(
        io.BytesIO(b'{"a": "x"}\n{"a": oops}\n'), name="f.jsonl", max_bytes=MiB
    )
    with pytest.raises(ExtractionError):
        next(iterator)
