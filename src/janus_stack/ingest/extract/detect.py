"""Decide a file's format from its first bytes, and only then from its name.

Names lie (a ``.txt`` that is really a PNG, a ``.json`` export that is JSON
Lines), so the magic bytes and the structure of the head decide first; the
extension only breaks ties among text formats that look alike.
"""

from __future__ import annotations

import bz2
import csv
import json
import re
from collections.abc import Mapping
from types import MappingProxyType

from janus_stack.ingest.extract.base import (
    BINARY,
    BZIP2,
    CODE,
    CSV,
    DOCX,
    EMPTY,
    HTML,
    JSON,
    JSONL,
    MARKDOWN,
    MEDIAWIKI,
    PDF,
    TEXT,
    XML,
    ZIP,
)

HEAD_SIZE = 64 * 1024
"""How many leading bytes ``extract`` reads to decide the format."""

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x28\xb5\x2f\xfd", "application/zstd"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"\x7fELF", "application/x-executable"),
    (b"MZ", "application/vnd.microsoft.portable-executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"SQLite format 3\x00", "application/vnd.sqlite3"),
    (b"\x00asm", "application/wasm"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"RIFF", "application/x-riff"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"PAR1", "application/vnd.apache.parquet"),
)

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")

CODE_LANGUAGES: Mapping[str, str] = MappingProxyType({
    "py": "python", "pyi": "python", "js": "javascript", "mjs": "javascript",
    "cjs": "javascript", "jsx": "javascript", "ts": "typescript", "tsx": "typescript",
    "go": "go", "rs": "rust", "java": "java", "kt": "kotlin", "kts": "kotlin",
    "scala": "scala", "c": "c", "h": "c", "cc": "cpp", "cpp": "cpp", "cxx": "cpp",
    "hpp": "cpp", "hh": "cpp", "cs": "csharp", "fs": "fsharp", "swift": "swift",
    "m": "objective-c", "rb": "ruby", "php": "php", "pl": "perl", "pm": "perl",
    "lua": "lua", "r": "r", "jl": "julia", "hs": "haskell", "ml": "ocaml",
    "ex": "elixir", "exs": "elixir", "erl": "erlang", "clj": "clojure", "dart": "dart",
    "sh": "shell", "bash": "shell", "zsh": "shell", "ps1": "powershell", "sql": "sql",
    "css": "css", "scss": "scss", "vue": "vue", "svelte": "svelte", "zig": "zig",
    "nim": "nim", "toml": "toml", "yaml": "yaml", "yml": "yaml", "ini": "ini",
    "cfg": "ini", "proto": "protobuf", "tf": "terraform", "cmake": "cmake",
    "gradle": "groovy", "groovy": "groovy", "mk": "make", "dockerfile": "dockerfile",
})  # fmt: skip
_CODE_FILENAMES = MappingProxyType(
    {"makefile": "make", "dockerfile": "dockerfile", "containerfile": "dockerfile"}
)
_SHEBANG = re.compile(rb"#!\s*\S*?(?:env\s+)?(python|node|bash|sh|zsh|ruby|perl|php)(?:[\d.]*)\b")
_SHEBANG_LANGUAGE = MappingProxyType(
    {"node": "javascript", "sh": "shell", "bash": "shell", "zsh": "shell"}
)

_EXTENSION_TYPES = MappingProxyType({
    "md": MARKDOWN, "markdown": MARKDOWN, "mdown": MARKDOWN, "mkd": MARKDOWN,
    "html": HTML, "htm": HTML, "xhtml": HTML, "json": JSON, "jsonl": JSONL,
    "ndjson": JSONL, "csv": CSV, "tsv": CSV, "docx": DOCX, "pdf": PDF,
})  # fmt: skip

_HTML_START = re.compile(r"<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)
_HTML_TAGS = re.compile(r"<(?:p|div|h[1-6]|table|title|meta)[\s>/]", re.IGNORECASE)
_JSON_START = re.compile(r'[\[{]\s*(?:["\[{\]}]|-?\d|true\b|false\b|null\b)')
_JSON_STRICT_START = re.compile(r'\{\s*"|\[\s*[\[{]')
# Markdown cues. Each pattern stops at a line end or a bounded length, so a
# hostile head ("[[[[…", 64 KB of newlines) cannot make the search quadratic.
_MD_HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
_MD_FEATURE = re.compile(
    r"(^[ \t]*[-*+][ \t]+\S|^[ \t]*\d{1,9}\.[ \t]+\S|\[[^\[\]\n]{1,200}\]\([^()\s]{1,500}\)"
    r"|^```|^>[ \t]|\*\*[^*\n]+\*\*|^[^\n]+\n(?:=+|-+)[ \t]*$)",
    re.MULTILINE,
)


def extension(name: str) -> str:
    """The lower-case extension of ``name`` without the dot ('' if none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return base.rpartition(".")[2] if "." in base.lstrip(".") else ""


def code_language(name: str, head: bytes = b"") -> str | None:
    """The programming language a file name (or shebang line) points to."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
    if base in _CODE_FILENAMES:
        return _CODE_FILENAMES[base]
    language = CODE_LANGUAGES.get(extension(name))
    if language is None and (match := _SHEBANG.match(head)):
        word = match.group(1).decode()
        language = _SHEBANG_LANGUAGE.get(word, word)
    return language


def looks_binary(head: bytes) -> bool:
    """True when the bytes are not text in any encoding we read.

    NUL bytes never occur in UTF-8 or legacy 8-bit text, and text has few
    C0 control characters; random or compressed data has about one in eight.
    UTF-16/32 text is recognised only with a byte-order mark.
    """
    if head.startswith(_BOMS):
        return False
    if b"\x00" in head:
        return True
    controls = sum(head.count(bytes([c])) for c in range(32) if c not in b"\t\n\r\f\v\x1b")
    return controls > max(1, len(head) // 50)


def detect(data_head: bytes, name: str) -> str:
    """Return the media type of a file from its first bytes and its name.

    Args:
        data_head: the first bytes of the file (``HEAD_SIZE`` is plenty; less
            works, the whole file is best for small files).
        name: the file name, consulted only after the content.

    Returns:
        One of the media types in :mod:`janus_stack.ingest.extract.base`,
        or a specific binary type (``image/png``, …) that ``extract``
        refuses as unsupported.
    """
    head = data_head[:HEAD_SIZE]
    ext = extension(name)
    if not head:
        return EMPTY
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(head, ext)
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return _bzip2_kind(head, name)
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            return media_type
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if looks_binary(head):
        return BINARY
    return _text_kind(data_head, name, ext)


def _zip_kind(head: bytes, ext: str) -> str:
    if b"word/" in head or (ext == "docx" and b"[Content_Types].xml" in head):
        return DOCX
    if b"xl/" in head:
        return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    if b"ppt/" in head:
        return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    if b"mimetypeapplication/vnd.oasis.opendocument" in head:
        return "application/vnd.oasis.opendocument"
    return DOCX if ext == "docx" else ZIP


def _bzip2_kind(head: bytes, name: str) -> str:
    if name.lower().endswith(".xml.bz2"):
        return MEDIAWIKI
    try:
        text = bz2.BZ2Decompressor().decompress(head, 4096)
    except (OSError, EOFError):
        return BZIP2
    return MEDIAWIKI if b"<mediawiki" in text else BZIP2


def _text_kind(data_head: bytes, name: str, ext: str) -> str:
    head = data_head[:HEAD_SIZE]
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    lowered = text[:4096].lower()
    if lowered.startswith("<mediawiki") or (
        lowered.startswith("<?xml") and "<mediawiki" in lowered
    ):
        return MEDIAWIKI
    language = code_language(name, head)
    if _HTML_START.match(lowered) or (lowered.startswith("<?xml") and "<html" in lowered):
        return HTML
    if lowered.startswith("<?xml") or (lowered.startswith("<") and ext == "xml"):
        return XML
    if _JSON_START.match(text) and language is None:
        json_kind = _json_kind(text, ext, complete=len(data_head) < HEAD_SIZE)
        if json_kind is not None:
            return json_kind
    if language is not None:
        return CODE
    by_ext = _EXTENSION_TYPES.get(ext)
    if by_ext in (MARKDOWN, CSV, JSON, JSONL):
        return by_ext
    if by_ext == HTML and _HTML_TAGS.search(lowered):
        return HTML
    if _looks_like_csv(text):
        return CSV
    if len(_MD_HEADING.findall(text)) >= 2 or (
        _MD_HEADING.search(text) and _MD_FEATURE.search(text)
    ):
        return MARKDOWN
    return TEXT


def _json_kind(text: str, ext: str, *, complete: bool) -> str | None:
    """JSON or JSON Lines, judged by parsing the head; None if neither."""
    if complete:
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            return JSONL if ext in ("jsonl", "ndjson") else JSON
    lines = [line for line in text.splitlines() if line.strip()]
    if not complete and lines:
        lines = lines[:-1]  # the last line may be cut off by the head limit
    try:
        parsed = [json.loads(line) for line in lines[:50]]
    except (ValueError, RecursionError):
        parsed = []
    if (
        parsed
        and all(isinstance(item, dict | list) for item in parsed)
        and (len(parsed) > 1 or ext in ("jsonl", "ndjson"))
    ):
        return JSONL
    if ext in ("json", "jsonl", "ndjson"):
        return JSON if ext == "json" else JSONL
    if not complete and _JSON_STRICT_START.match(text):
        return JSON
    return None


def sniff_delimiter(lines: list[str]) -> tuple[str, int] | None:
    """The delimiter that splits ``lines`` into a steady number (>1) of fields.

    Returns the delimiter and the field count, or None. ``csv.Sniffer`` is
    not used: its quote-guessing regex is quadratic (a crafted 64 KB head
    takes a minute), while this is one C-speed ``csv.reader`` pass per
    candidate.
    """
    rows = [line for line in lines[:50] if line.strip()]
    if len(rows) < 2:
        return None
    best: tuple[float, int, str] | None = None
    for delimiter in ",;\t|":
        widths = [len(row) for row in csv.reader(rows, delimiter=delimiter)]
        width = max(set(widths), key=widths.count)
        steady = widths.count(width) / len(widths)
        if width > 1 and steady >= 0.9 and (best is None or (steady, width) > best[:2]):
            best = (steady, width, delimiter)
    return (best[2], best[1]) if best else None


def _looks_like_csv(text: str) -> bool:
    """A table: several lines that split into the same number of fields."""
    lines = [line for line in text.splitlines()[:30] if line.strip()]
    if len(lines) < 3:
        return False
    found = sniff_delimiter(lines[:-1])  # the last line may be cut off
    if found is None:
        return False
    delimiter, width = found
    widths = {len(row) for row in csv.reader(lines[:-1], delimiter=delimiter)}
    # Two comma-separated fields per line is also a poem or an address list.
    return widths == {width} and (width >= 3 or delimiter != ",")
