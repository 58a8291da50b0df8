"""The chunker: invariants over random documents (hypothesis), then the cutting rules.

Most tests use small deterministic tokenizers so hypothesis can run hundreds
of documents a second; one of them deliberately counts more tokens than its
offsets show (as WordPiece can when a chunk starts inside a word), so the
re-count that keeps chunks under ``max_tokens`` is exercised. The last
tests run the real MiniLM tokenizer through an open embedder.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janus_stack.errors import InvalidInputError
from janus_stack.ingest.chunking import Chunk, chunk_text
from janus_stack.ingest.extract.base import DocumentBuilder
from janus_stack.slots import embeddings
from janus_stack.slots.embeddings import Embedder

_TOKEN = re.compile(r"\w+|[^\w\s]")


class PieceTokenizer:
    """Words split into pieces of ``width`` characters; two special tokens."""

    def __init__(self, width: int = 4, count_width: int | None = None) -> None:
        self.width = width
        self.count_width = count_width or width

    def _pieces(self, text: str, width: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for match in _TOKEN.finditer(text):
            start, end = match.span()
            out.extend((p, min(end, p + width)) for p in range(start, end, width))
        return out

    def tokenize_offsets(self, text: str) -> list[tuple[int, int]]:
        return self._pieces(text, self.width)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(self._pieces(t, self.count_width)) + 2 for t in texts]

    def tokenize_counted(self, text: str) -> tuple[list[tuple[int, int]], int]:
        return self.tokenize_offsets(text), self.count_tokens([text])[0]


@dataclass(frozen=True)
class Sec:
    kind: str
    start: int
    end: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()


WORDS = ["alpha", "beta", "gamma", "naïve", "東京", "x", "Zürich", "supercalifragilistic", "42"]


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[Sec]]:
    """Pages of headings and paragraphs of sentences, with the sections an extractor makes."""
    text, sections = "", []
    paged = draw(st.booleans())
    path: tuple[str, ...] = ()
    for page in range(1, draw(st.integers(1, 4)) + 1):
        page_start = len(text)
        for _ in range(draw(st.integers(1, 5))):
            if draw(st.integers(0, 3)) == 0:
                title = draw(st.sampled_from(["Intro", "Methods", "Results"]))
                path = (*path[: draw(st.integers(0, 1))], title)
                start = len(text)
                text += title
                sections.append(Sec("heading", start, len(text), page if paged else None, path))
                text += "\n\n"
            kind = draw(st.sampled_from(["paragraph", "paragraph", "record"]))
            sentences = [
                " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=60)))
                + draw(st.sampled_from([".", "!", "", "?"]))
                for _ in range(draw(st.integers(1, 6)))
            ]
            sep = draw(st.sampled_from([" ", "\n", "  "]))
            start = len(text)
            text += sep.join(sentences)
            sections.append(Sec(kind, start, len(text), page if paged else None, path))
            text += "\n\n"
        if paged:
            sections.append(Sec("page", page_start, len(text) - 2, page))
    return text, sections


def check_invariants(
    text: str,
    sections: Sequence[Sec],
    chunks: list[Chunk],
    tokenizer: PieceTokenizer,
    max_tokens: int,
    overlap: int,
) -> None:
    pages = [s for s in sections if s.kind == "page"]
    for i, chunk in enumerate(chunks):
        assert chunk.ordinal == i
        assert 0 <= chunk.char_start < chunk.char_end <= len(text)
        assert chunk.text == text[chunk.char_start : chunk.char_end]
        assert chunk.text == chunk.text.strip()
        assert chunk.token_count == tokenizer.count_tokens([chunk.text])[0]
        assert chunk.token_count <= max_tokens
        if pages:
            page = next(p for p in pages if p.start <= chunk.char_start < p.end)
            assert chunk.char_end <= page.end, "a chunk spans two pages"
            assert chunk.page == page.page
        for section in sections:
            if (
                section.kind != "page"
                and section.start < chunk.char_end
                and chunk.char_start < section.end
            ):
                assert section.heading_path[: len(chunk.heading_path)] == chunk.heading_path
    for before, after in itertools.pairwise(chunks):
        assert before.char_start < after.char_start, "chunks must move forward"
        assert before.char_end < after.char_end
        shared = (
            text[after.char_start : before.char_end] if after.char_start < before.char_end else ""
        )
        assert len(tokenizer.tokenize_offsets(shared)) <= overlap
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.char_start : chunk.char_end] = b"\1" * (chunk.char_end - chunk.char_start)
    missing = [i for i, c in enumerate(text) if not c.isspace() and not covered[i]]
    assert not missing, f"text not in any chunk: {text[missing[0] : missing[0] + 20]!r}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=documents(),
    max_tokens=st.integers(8, 80),
    overlap=st.integers(0, 10),
    skewed=st.booleans(),
)
def test_invariants_hold_on_random_documents(
    doc: tuple[str, list[Sec]], max_tokens: int, overlap: int, skewed: bool
) -> None:
    text, sections = doc
    tokenizer = PieceTokenizer(4, count_width=3 if skewed else None)
    overlap = min(overlap, max_tokens - 3)
    chunks = chunk_text(
        text, sections, tokenizer=tokenizer, max_tokens=max_tokens, overlap_tokens=overlap
    )
    check_invariants(text, sections, chunks, tokenizer, max_tokens, overlap)
    again = chunk_text(
        text, sections, tokenizer=tokenizer, max_tokens=max_tokens, overlap_tokens=overlap
    )
    assert again == chunks


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=400),
    max_tokens=st.integers(4, 30),
)
def test_invariants_hold_on_arbitrary_unicode(text: str, max_tokens: int) -> None:
    tokenizer = PieceTokenizer(3)
    chunks = chunk_text(text, tokenizer=tokenizer, max_tokens=max_tokens, overlap_tokens=1)
    check_invariants(text, [], chunks, tokenizer, max_tokens, 1)


def sentences(n: int, words: int = 9) -> Iterator[str]:
    for i in range(n):
        yield " ".join(f"w{i}x{j}" for j in range(words)) + "."


def test_a_long_sentence_is_split_at_token_bounds_with_overlap() -> None:
    text = " ".join(f"word{i}" for i in range(1000))  # no punctuation at all
    tok = PieceTokenizer(100)  # one token per word
    chunks = chunk_text(text, tokenizer=tok, max_tokens=52, overlap_tokens=5)
    assert len(chunks) > 20
    assert all(c.token_count <= 52 for c in chunks)
    assert chunks[0].token_count == 52
    assert chunks[1].text.startswith("word45 ")  # 50 words of content, 5 repeated
    assert chunks[-1].text.endswith("word999")


def test_a_single_giant_word_is_split_between_pieces() -> None:
    text = "x" * 500
    chunks = chunk_text(text, tokenizer=PieceTokenizer(4), max_tokens=12, overlap_tokens=0)
    assert "".join(c.text for c in chunks) == text
    assert all(c.token_count <= 12 for c in chunks)


def test_paragraph_boundary_is_preferred_to_sentences() -> None:
    first = " ".join(sentences(10))  # 100 tokens
    second = " ".join(sentences(10))
    text = f"{first}\n\n{second}"
    chunks = chunk_text(
        text, tokenizer=PieceTokenizer(100), max_tokens=180, target_tokens=150, overlap_tokens=8
    )
    assert chunks[0].text == first
    assert chunks[1].char_start < len(first), "a paragraph cut keeps the overlap"


def test_sentence_end_is_preferred_to_words() -> None:
    text = " ".join(sentences(30))
    chunks = chunk_text(text, tokenizer=PieceTokenizer(100), max_tokens=62, overlap_tokens=0)
    assert all(c.text.endswith(".") for c in chunks)
    assert all(c.token_count <= 62 for c in chunks)


def test_overlap_starts_at_a_sentence_when_one_is_in_reach() -> None:
    text = " ".join(sentences(30, words=4))  # 5 tokens per sentence with the period
    chunks = chunk_text(text, tokenizer=PieceTokenizer(100), max_tokens=42, overlap_tokens=8)
    for chunk in chunks[1:]:
        assert chunk.text[0] == "w" and text[chunk.char_start - 2] == "."


def test_headings_keep_short_sections_apart_and_carry_the_path() -> None:
    parts = [("Intro", "Short intro."), ("Setup", "Tiny setup."), ("Usage", " ".join(sentences(3)))]
    text, sections = "", []
    for title, body in parts:
        start = len(text)
        text += title
        sections.append(Sec("heading", start, len(text), None, ("Guide", title)))
        text += "\n\n"
        start = len(text)
        text += body
        sections.append(Sec("paragraph", start, len(text), None, ("Guide", title)))
        text += "\n\n"
    chunks = chunk_text(text, sections, tokenizer=PieceTokenizer(100), max_tokens=200)
    assert [c.heading_path for c in chunks] == [("Guide", t) for t, _ in parts]
    assert chunks[0].text == "Intro\n\nShort intro."


def test_records_are_packed_without_overlap() -> None:
    text, sections = "", []
    for i in range(40):
        start = len(text)
        text += f"id: {i}\nname: item {i}"  # 7 tokens
        sections.append(Sec("record", start, len(text), None, ("items.csv",)))
        text += "\n"
    chunks = chunk_text(
        text, sections, tokenizer=PieceTokenizer(100), max_tokens=50, overlap_tokens=6
    )
    assert len(chunks) < 10
    for chunk in chunks:
        assert chunk.text.startswith("id: ") and chunk.text[-1].isdigit()
        assert chunk.heading_path == ("items.csv",)
    for before, after in itertools.pairwise(chunks):
        assert after.char_start > before.char_end


def test_chunks_never_span_pages_and_carry_the_page_number() -> None:
    page_text = " ".join(sentences(3))
    text = f"{page_text}\n\n{page_text}\n\f{page_text}"
    second = len(page_text) + 2
    third = text.index("\f") + 1
    sections = [
        Sec("page", 0, len(page_text), 1),
        Sec("page", second, second + len(page_text), 2),
        Sec("page", third, len(text), 3),
    ]
    chunks = chunk_text(text, sections, tokenizer=PieceTokenizer(100), max_tokens=500)
    assert [(c.page, c.text) for c in chunks] == [(1, page_text), (2, page_text), (3, page_text)]


def test_pages_given_only_on_paragraphs_are_honoured() -> None:
    a, b = "First page text.", "Second page text."
    text = f"{a}\n\n{b}"
    sections = [Sec("paragraph", 0, len(a), 7), Sec("paragraph", len(a) + 2, len(text), 8)]
    chunks = chunk_text(text, sections, tokenizer=PieceTokenizer(100), max_tokens=100)
    assert [(c.page, c.text) for c in chunks] == [(7, a), (8, b)]


def test_empty_and_blank_texts_give_no_chunks() -> None:
    assert chunk_text("", tokenizer=PieceTokenizer()) == []
    assert chunk_text(" \n\t ", tokenizer=PieceTokenizer()) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_tokens": 2}, "no room"),
        ({"max_tokens": 20, "overlap_tokens": 18}, "overlap_tokens"),
        ({"max_tokens": 20, "target_tokens": 10, "overlap_tokens": 8}, "overlap_tokens"),
        ({"overlap_tokens": -1}, "overlap_tokens"),
    ],
)
def test_bad_sizes_are_refused(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        chunk_text("some text", (), tokenizer=PieceTokenizer(), **kwargs)


def test_sections_outside_the_text_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="outside the text"):
        chunk_text("short", [Sec("paragraph", 0, 50)], tokenizer=PieceTokenizer())


def test_text_must_be_a_string() -> None:
    with pytest.raises(InvalidInputError, match="must be str"):
        chunk_text(b"bytes", tokenizer=PieceTokenizer())  # type: ignore[arg-type]


# -- with the real MiniLM tokenizer -------------------------------------------


@pytest.fixture(scope="module")
def minilm() -> Iterator[object]:
    with embeddings.open("minilm://") as embedder:
        yield embedder


def test_real_tokenizer_keeps_every_chunk_within_the_model_limit(minilm: object) -> None:
    assert isinstance(minilm, Embedder)
    builder = DocumentBuilder()
    builder.begin_page(1)
    builder.heading("Embeddings", 1)
    builder.block(" ".join(["Tokenisation of naïve café façades costs ünïcödé word pieces."] * 60))
    builder.begin_page(2)
    builder.heading("Very long word", 2)
    builder.block("pneumonoultramicroscopicsilicovolcanoconiosis" * 2 + " end. " + "hyper" * 19)
    builder.block("A run-on sentence " + " ".join(f"token{i}" for i in range(600)))
    doc = builder.build(title="t", media_type="text/plain")
    chunks = chunk_text(doc.text, doc.sections, tokenizer=minilm, max_tokens=minilm.max_tokens)
    assert len(chunks) > 5
    counts = minilm.count_tokens([c.text for c in chunks])
    for chunk, count in zip(chunks, counts, strict=True):
        assert chunk.text == doc.text[chunk.char_start : chunk.char_end]
        assert chunk.token_count == count <= 256
        assert chunk.page in (1, 2)
        assert chunk.heading_path[0] == "Embeddings"
    assert max(counts) > 200, "chunks should fill the budget, not stay tiny"
    vectors = minilm.embed([c.text for c in chunks])
    assert vectors.shape == (len(chunks), 384)
