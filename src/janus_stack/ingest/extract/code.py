"""Source code: kept verbatim, split into blocks under their definition.

Indentation and blank lines carry meaning in code, so the text is not
re-flowed as prose is. Each run of non-blank lines is a paragraph section;
a line at column 0 that opens a definition (``def``, ``class``, ``func``,
``fn``, ``function``, ``struct``, ...) is a heading, and the blocks after it
carry it in ``heading_path`` until the next one — enough for a chunker to
keep a function together and label it, in any language, without a parser
per language.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from janus_stack.ingest.extract.base import ExtractedDocument, Section, Source
from janus_stack.ingest.extract.detect import code_language
from janus_stack.ingest.extract.text import decode

_BLOCK = re.compile(r"(?:^[ \t]*\S[^\n]*(?:\n|\Z))+", re.MULTILINE)
_DEFINITION = re.compile(
    r"^(?:@?export\s+|pub(?:\([\w:]+\))?\s+|public\s+|private\s+|protected\s+|internal\s+"
    r"|static\s+|abstract\s+|final\s+|async\s+|default\s+|unsafe\s+|extern\s+)*"
    r"(?:def|class|func|fn|function|struct|enum|trait|impl|interface|type|module"
    r"|object|record|CREATE\s+(?:OR\s+REPLACE\s+)?(?:TABLE|VIEW|FUNCTION|PROCEDURE))\b[^\n]*",
    re.MULTILINE | re.IGNORECASE,
)
_MAX_HEADING = 160


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """One document, text unchanged, sections per block and definition."""
    text, encoding = decode(data, src)
    language = code_language(src.name, data[:256]) or "unknown"
    sections: list[Section] = []
    heading: tuple[str, ...] = ()
    for block in _BLOCK.finditer(text):
        start, end = block.start(), block.end()
        while end > start and text[end - 1] == "\n":
            end -= 1
        for definition in _DEFINITION.finditer(text, start, end):
            heading = (" ".join(definition.group().split())[:_MAX_HEADING],)
            sections.append(Section("heading", definition.start(), definition.end(), None, heading))
        sections.append(Section("paragraph", start, end, None, heading))
    sections.sort(key=lambda s: (s.start, s.kind != "heading"))
    yield ExtractedDocument(
        title=src.name.replace("\\", "/").rsplit("/", 1)[-1],
        text=text,
        media_type=src.media_type,
        sections=tuple(sections),
        metadata={"language": language, "encoding": encoding, "lines": text.count("\n") + 1},
    )
