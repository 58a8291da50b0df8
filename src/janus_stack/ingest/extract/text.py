"""Plain text, and the one decoder every text-based format shares.

Decoding order, from cheapest and surest to most heuristic: a byte-order
mark; strict UTF-8 (most files today); UTF-8 with a handful of damaged
bytes (a file cut mid-character, one bad byte in a long file — decoding it
as a legacy code page would garble every other accented letter); and only
then charset-normalizer's statistical guess. Text that no encoding explains
is refused as ``undecodable`` rather than indexed as mojibake.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

import charset_normalizer

from janus_stack.ingest.extract.base import DocumentBuilder, ExtractedDocument, Source

_BOM_CODECS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_MAX_DAMAGED_RATIO = 0.001
"""UTF-8 with at most one bad byte per thousand is kept as UTF-8."""
_CHAOS_TIE = 0.02
"""Guesses this close in 'mess' are ranked by language coherence instead."""
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def decode(data: bytes, src: Source) -> tuple[str, str]:
    """Decode bytes to text with newlines normalised.

    Returns:
        The text and the name of the encoding that was used.

    Raises:
        ExtractionError: ``undecodable`` if no encoding explains the bytes,
            ``empty`` if the text holds nothing but whitespace.
    """
    text, encoding = _decode(data, src)
    if "\x00" in text:
        raise src.fail(
            "undecodable", "the text contains NUL characters, so it is probably binary data"
        )
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise src.fail("empty", "the file contains only whitespace")
    return text, encoding


def _decode(data: bytes, src: Source) -> tuple[str, str]:
    for bom, codec in _BOM_CODECS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError as exc:
                raise src.fail(
                    "undecodable",
                    f"the file starts with a {codec} byte-order mark but is not valid "
                    f"{codec} (byte {exc.start}); re-save it as UTF-8",
                ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    damaged = _mostly_utf8(data)
    if damaged is not None:
        return damaged, "utf-8 (damaged bytes replaced)"
    guess = _guess(data)
    if guess is None:
        raise src.fail(
            "undecodable",
            "the bytes are not valid UTF-8 and match no known text encoding; "
            "re-save the file as UTF-8",
        )
    return guess


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with rare damage, or None when the damage is not rare."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    multibyte = sum(1 for char in text if ord(char) > 0x7F and char != "\ufffd")
    if multibyte == 0 or bad > max(1, int(len(data) * _MAX_DAMAGED_RATIO)):
        return None
    return text


def _guess(data: bytes) -> tuple[str, str] | None:
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        return None
    best_chaos = min(match.chaos for match in matches)
    close = [match for match in matches if match.chaos <= best_chaos + _CHAOS_TIE]
    chosen = max(close, key=lambda match: (match.coherence, -match.chaos))
    return str(chosen), chosen.encoding


def paragraphs(text: str) -> Iterator[str]:
    """Blocks of text separated by blank lines, trailing spaces trimmed."""
    for raw in _PARAGRAPH_BREAK.split(text):
        block = "\n".join(line.rstrip() for line in raw.strip("\n").splitlines())
        if block.strip():
            yield block


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """One document; each blank-line separated block becomes a paragraph."""
    text, encoding = decode(data, src)
    builder = DocumentBuilder()
    for block in paragraphs(text):
        builder.block(block)
    yield builder.build(title=src.stem, media_type=src.media_type, metadata={"encoding": encoding})
