"""Structure-aware, token-bounded, overlapping chunking with exact character offsets.

The chunker works on the model's own tokens: it asks the injected
tokenizer (any :class:`TokenCounter`, e.g. an open ``Embedder``) for the
character span of every token, chooses cuts between tokens and then
re-counts each chunk's text, because a WordPiece tokenizer may split a
substring differently than it split the whole text. A chunk that is
exactly the text that was tokenized (a small document: most of them) takes
the count of that very tokenization, so it is tokenized once, not twice.
So a chunk never holds more than ``max_tokens`` tokens, special tokens
included, and ``text == source[char_start:char_end]`` always holds (a chunk
starts at its first token and ends at its last; whitespace between chunks
belongs to none).

Where to cut, strongest first:

1. a page boundary — hard: chunks never span two pages;
2. a change of ``heading_path`` (a new heading) — the first one within
   reach is taken, so sections stay apart even when they are short;
3. a record boundary (JSON/CSV rows), 4. a paragraph (section or blank
   line), 5. a sentence end or line break, 6. a word boundary, and last
   7. a boundary between two word pieces (a very long "sentence").

Records, paragraphs and sentences are packed: among the cuts between half
the target size and the token budget the strongest wins, ties going to the
cut nearest the target. The next chunk starts up to ``overlap`` tokens
earlier (at a sentence start if one is in reach, else at a word boundary),
except after a heading change or a record boundary, whose text has no
business in the next chunk. A chunk's ``heading_path`` is the common prefix
of the heading paths of the sections it touches.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from janus_stack.errors import InvalidInputError

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "Chunk",
    "Chunker",
    "SectionLike",
    "TokenCounter",
    "chunk_text",
]

DEFAULT_MAX_TOKENS = 256

_PAGE_CUT = 10  # block edges; never inside a block
_HEADING = 5
_RECORD = 4
_PARAGRAPH = 3
_SENTENCE = 2
_WORD = 1
_PIECE = 0

_KIND_STRENGTH = {"heading": _PARAGRAPH, "record": _RECORD, "paragraph": _PARAGRAPH}
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
_LINE_OR_SENTENCE = re.compile(r"(?:[.!?;\u3002\uff01\uff1f][\"'\u201d\u2019)\]]*\s+|\n\s*)")


class TokenCounter(Protocol):
    """What the chunker needs from a tokenizer; an open ``Embedder`` is one."""

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...

    def tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        """Token offsets of ``text`` (special tokens excluded) and its ``count_tokens``."""
        ...


class SectionLike(Protocol):
    """A span of the text with its structure (``extract.Section`` is one)."""

    @property
    def kind(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def page(self) -> int | None: ...
    @property
    def heading_path(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a document, ready to embed.

    Attributes:
        ordinal: position in the document, from 0.
        text: ``source[char_start:char_end]``.
        char_start: offset of the first character in the source text.
        char_end: offset after the last character.
        page: the page it lies on, or ``None`` when the source has no pages.
        heading_path: the headings it sits under, outermost first.
        token_count: tokens the model sees, special tokens included.
    """

    ordinal: int
    text: str
    char_start: int
    char_end: int
    page: int | None
    heading_path: tuple[str, ...]
    token_count: int


@dataclass(frozen=True, slots=True)
class _Block:
    start: int
    end: int
    page: int | None


class Chunker:
    """Cuts texts into chunks with one tokenizer and one set of limits; see the module docstring.

    Args:
        tokenizer: counts tokens and gives token offsets, as the embedder does.
        max_tokens: hard limit per chunk, special tokens included (the embedder's
            ``max_tokens``).
        target_tokens: preferred chunk size; defaults to ``max_tokens``.
        overlap_tokens: tokens repeated from the end of one chunk at the start of
            the next when the cut falls inside a section.

    The limits are checked and the tokenizer's special tokens counted once,
    here, not per document.
    """

    def __init__(
        self,
        tokenizer: TokenCounter,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        target_tokens: int | None = None,
        overlap_tokens: int = 32,
    ) -> None:
        special = tokenizer.count_tokens([""])[0]
        budget = max_tokens - special
        target = min(budget, (target_tokens or max_tokens) - special)
        if budget < 1 or target < 1:
            raise InvalidInputError(
                f"chunking: max_tokens={max_tokens} / target_tokens={target_tokens} leave no "
                f"room next to the tokenizer's {special} special tokens"
            )
        if not 0 <= overlap_tokens < target:
            raise InvalidInputError(
                f"chunking: overlap_tokens={overlap_tokens} must be >= 0 and smaller than the "
                f"target chunk size ({target} tokens of content)"
            )
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._budget = budget
        self._target = target
        self._overlap = overlap_tokens

    def chunk(self, text: str, sections: Sequence[SectionLike] = ()) -> list[Chunk]:
        """Cut ``text``; ``sections`` describe its structure (may be empty, may nest)."""
        if not isinstance(text, str):
            raise InvalidInputError(f"chunking: text must be str, not {type(text).__name__}")
        checked = [_check_section(s, len(text)) for s in sections]
        chunks: list[Chunk] = []
        for block in _blocks(text, checked):
            planner = _Planner(text, block, checked, self.tokenizer)
            for start, end, count in planner.spans(
                self._budget, self._target, self._overlap, self.max_tokens
            ):
                char_start, char_end = planner.char_span(start, end)
                chunks.append(
                    Chunk(
                        ordinal=len(chunks),
                        text=text[char_start:char_end],
                        char_start=char_start,
                        char_end=char_end,
                        page=block.page,
                        heading_path=planner.heading_path(start, end),
                        token_count=count,
                    )
                )
        return chunks


def chunk_text(
    text: str,
    sections: Sequence[SectionLike] = (),
    *,
    tokenizer: TokenCounter,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    target_tokens: int | None = None,
    overlap_tokens: int = 32,
) -> list[Chunk]:
    """Cut one ``text``; :class:`Chunker` documents the arguments (build one for many texts)."""
    chunker = Chunker(
        tokenizer, max_tokens=max_tokens, target_tokens=target_tokens, overlap_tokens=overlap_tokens
    )
    return chunker.chunk(text, sections)


def _check_section(section: SectionLike, length: int) -> SectionLike:
    if not 0 <= section.start <= section.end <= length:
        raise InvalidInputError(
            f"chunking: a {section.kind} section spans {section.start}..{section.end}, "
            f"outside the text of {length} characters",
            hint="section offsets must point into the text they were extracted with",
        )
    return section


def _blocks(text: str, sections: Sequence[SectionLike]) -> list[_Block]:
    """Split the text where the page changes: chunks are planned within one block."""
    pages = [s for s in sections if s.kind == "page"] or [s for s in sections if s.page is not None]
    edges = {0, len(text)}
    for section in pages:
        edges.update((section.start, section.end))
    cuts = sorted(edges)
    blocks: list[_Block] = []
    for start, end in itertools.pairwise(cuts):
        if not text[start:end].strip():
            continue  # the blank between two pages belongs to neither
        page = _page_at(pages, start, end)
        if blocks and blocks[-1].page == page:
            blocks[-1] = _Block(blocks[-1].start, end, page)
        else:
            blocks.append(_Block(start, end, page))
    return blocks


def _page_at(pages: Sequence[SectionLike], start: int, end: int) -> int | None:
    """The page of the innermost (latest-starting) page span covering ``start..end``."""
    covering = [s for s in pages if s.start <= start and end <= s.end and s.start < s.end]
    if not covering:
        return None
    return max(covering, key=lambda s: (s.start, -s.end)).page


class _Planner:
    """Tokens of one block, the strength of a cut before each token, and their headings."""

    def __init__(
        self, text: str, block: _Block, sections: Sequence[SectionLike], tokenizer: TokenCounter
    ) -> None:
        self.text = text
        self.tokenizer = tokenizer
        # Whitespace around the block never belongs to a chunk; without it, a chunk that
        # spans the whole block is exactly the text tokenized here and needs no re-count.
        content = text[block.start : block.end]
        start = block.start + len(content) - len(content.lstrip())
        end = block.start + len(content.rstrip())
        local, self.count = tokenizer.tokenize_counted(text[start:end])
        self.span = (start, end)
        self.tokens = [(start + s, start + e) for s, e in local if e > s]
        self.starts = [s for s, _ in self.tokens]
        self.paths = self._paint_paths(block, sections)
        self._block = block
        self._sections = sections
        self._strength: list[int] | None = None

    @property
    def strength(self) -> list[int]:
        """The strength of a cut before each token, weighed only for a block that needs cuts."""
        if self._strength is None:
            self._strength = self._strengths(self._block, self._sections)
        return self._strength

    def _index(self, position: int) -> int:
        """The token a cut at character ``position`` falls before."""
        return bisect.bisect_left(self.starts, position)

    def _paint_paths(
        self, block: _Block, sections: Sequence[SectionLike]
    ) -> list[tuple[str, ...] | None]:
        paths: list[tuple[str, ...] | None] = [None] * len(self.tokens)
        inner = [
            s for s in sections if s.kind != "page" and s.start < block.end and s.end > block.start
        ]
        for section in sorted(inner, key=lambda s: (s.start, -s.end)):  # outer first, inner wins
            for i in range(self._index(section.start), self._index(section.end)):
                paths[i] = tuple(section.heading_path)
        return paths

    def _strengths(self, block: _Block, sections: Sequence[SectionLike]) -> list[int]:
        n = len(self.tokens)
        strength = [_PIECE] * (n + 1)
        strength[0] = strength[n] = _PAGE_CUT
        for i in range(1, n):
            (_, prev_end), (start, _) = self.tokens[i - 1], self.tokens[i]
            joined = (
                start == prev_end
                and self.text[prev_end - 1].isalnum()
                and self.text[start].isalnum()
            )
            strength[i] = _PIECE if joined else _WORD
            if self.paths[i] != self.paths[i - 1] and self.paths[i] is not None:
                strength[i] = _HEADING
        source = self.text[block.start : block.end]
        for pattern, value in ((_LINE_OR_SENTENCE, _SENTENCE), (_BLANK_LINE, _PARAGRAPH)):
            for match in pattern.finditer(source):
                self._raise(strength, block.start + match.end(), value)
        for section in sections:
            kind_strength = _KIND_STRENGTH.get(section.kind)
            if kind_strength is not None:
                self._raise(strength, section.start, kind_strength)
                if section.kind != "heading":  # never cut between a heading and its text
                    self._raise(strength, section.end, kind_strength)
        return strength

    def _raise(self, strength: list[int], position: int, value: int) -> None:
        i = self._index(position)
        if 0 < i < len(self.tokens):
            strength[i] = max(strength[i], value)

    def spans(
        self, budget: int, target: int, overlap: int, max_tokens: int
    ) -> list[tuple[int, int, int]]:
        """``(first token, end token, token count)`` of every chunk of the block."""
        n = len(self.tokens)
        fits = 0 < n <= budget and self.count <= max_tokens
        if fits and self.char_span(0, n) == self.span and not self._heading_changes():
            # The whole block fits and no heading divides it: the cuts below would give
            # this one chunk too, so there is nothing to weigh.
            return [(0, n, self.count)]
        out: list[tuple[int, int, int]] = []
        start, limit, floor = 0, budget, 0
        while start < n:
            end = self._cut(start, min(n, start + limit), target, floor)
            span = self.char_span(start, end)
            if span == self.span:
                count = self.count
            else:
                count = self.tokenizer.count_tokens([self.text[slice(*span)]])[0]
            if count > max_tokens and end - start > 1:  # re-plan this chunk smaller
                limit = max(1, end - start - (count - max_tokens))
                if start + limit <= floor:  # it could no longer pass the previous chunk
                    start, limit = floor, budget  # so give up the overlap instead
                continue
            out.append((start, end, count))
            limit, floor = budget, end
            if end >= n:
                break
            start = self._next_start(start, end, overlap)
        return out

    def _heading_changes(self) -> bool:
        return any(b is not None and a != b for a, b in itertools.pairwise(self.paths))

    def _cut(self, start: int, limit: int, target: int, floor: int) -> int:
        """The end of the chunk from ``start``; it must pass ``floor``, the previous end."""
        n = len(self.tokens)
        strength = self.strength
        first = max(start, floor) + 1
        for i in range(first, limit):
            if strength[i] >= _HEADING:
                return i  # sections stay apart, however short
        if limit >= n:
            return n
        low = min(limit, max(first, start + target // 2))
        aim = start + target
        return max(range(low, limit + 1), key=lambda i: (strength[i], -abs(i - aim), i))

    def _next_start(self, start: int, end: int, overlap: int) -> int:
        if overlap == 0 or self.strength[end] >= _RECORD:
            return end
        window = range(max(start + 1, end - overlap), end)
        for wanted in (_SENTENCE, _WORD):  # begin the repeat at a sentence if one is in reach
            for i in window:
                if self.strength[i] >= wanted:
                    return i
        return window.start

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        return self.tokens[start][0], self.tokens[end - 1][1]

    def heading_path(self, start: int, end: int) -> tuple[str, ...]:
        found = [p for p in dict.fromkeys(self.paths[start:end]) if p is not None]
        if not found:
            return ()
        common = found[0]
        for path in found[1:]:
            size = 0
            while size < min(len(common), len(path)) and common[size] == path[size]:
                size += 1
            common = common[:size]
        return common
