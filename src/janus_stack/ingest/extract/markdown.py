"""Markdown: rendered to plain text with its heading tree kept as sections.

markdown-it-py (CommonMark plus tables) parses the file, so what counts as
a heading or a code block is what a Markdown viewer would show, not a guess
from a regex. Inline markup (emphasis, link syntax) is dropped from the
text; link targets are kept in ``metadata["links"]``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from janus_stack.ingest.extract.base import DocumentBuilder, ExtractedDocument, Source
from janus_stack.ingest.extract.text import decode

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_TITLE = re.compile(r"^title:\s*[\"']?(.*?)[\"']?\s*$", re.MULTILINE)
_TAG = re.compile(r"<[^<>]+>")


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """One document whose headings become heading sections."""
    text, encoding = decode(data, src)
    title: str | None = None
    if match := _FRONT_MATTER.match(text):
        if title_match := _FRONT_TITLE.search(match.group(1)):
            title = title_match.group(1) or None
        text = text[match.end() :]
    renderer = _Renderer()
    renderer.render(_parser().parse(text))
    builder = renderer.builder
    metadata: dict[str, object] = {"encoding": encoding}
    if renderer.links:
        metadata["links"] = list(dict.fromkeys(renderer.links))
    yield builder.build(
        title=title or builder.top_heading() or src.stem,
        media_type=src.media_type,
        metadata=metadata,
    )


@functools.cache
def _parser() -> MarkdownIt:
    """The one parser: building its rule chains costs more than parsing a short note.

    It is never reconfigured after this, and ``parse`` keeps its state per
    call, so readers on several threads share it safely.
    """
    return MarkdownIt("commonmark", {"html": True}).enable("table")


class _Renderer:
    """Walks markdown-it's flat token stream, feeding a DocumentBuilder."""

    def __init__(self) -> None:
        self.builder = DocumentBuilder()
        self.links: list[str] = []
        self._lists: list[str] = []  # "-" or "1." per open list
        self._list_lines: list[str] = []
        self._rows: list[list[str]] = []
        self._cells: list[str] | None = None

    def render(self, tokens: Sequence[Token]) -> None:
        heading_level: int | None = None
        for token in tokens:
            kind = token.type
            if kind == "heading_open":
                heading_level = int(token.tag[1:])
            elif kind == "inline":
                text = self._inline(token.children or [])
                if heading_level is not None:
                    self.builder.heading(text, heading_level)
                    heading_level = None
                elif self._cells is not None:
                    self._cells.append(" ".join(text.split()))
                elif self._lists:
                    indent = "  " * (len(self._lists) - 1)
                    self._list_lines.append(f"{indent}{self._lists[-1]} {text.strip()}")
                else:
                    self.builder.block(text)
            elif kind in ("bullet_list_open", "ordered_list_open"):
                self._lists.append("-" if kind == "bullet_list_open" else "1.")
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self._lists.pop()
                if not self._lists:
                    self.builder.block("\n".join(self._list_lines))
                    self._list_lines = []
            elif kind == "tr_open":
                self._cells = []
            elif kind == "tr_close" and self._cells is not None:
                self._rows.append(self._cells)
                self._cells = None
            elif kind == "table_close":
                self.builder.block("\n".join(" | ".join(row) for row in self._rows))
                self._rows = []
            elif kind in ("fence", "code_block"):
                self._code(token.content)
            elif kind == "html_block":
                self.builder.block(_TAG.sub("", token.content))

    def _code(self, content: str) -> None:
        if self._lists:
            self._list_lines.append(content.rstrip("\n"))
        else:
            self.builder.block(content.rstrip("\n"))

    def _inline(self, children: Sequence[Token]) -> str:
        parts: list[str] = []
        for child in children:
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                parts.append("\n")
            elif child.type == "image":
                parts.append(child.content)
            elif child.type == "link_open":
                href = child.attrs.get("href")
                if isinstance(href, str) and href:
                    self.links.append(href)
        return "".join(parts)
