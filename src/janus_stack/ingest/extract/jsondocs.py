"""JSON and JSON Lines: each record a document, or one document of records.

Nesting depth is measured with a flat scan *before* ``json.loads`` runs:
the parser recurses, and a few kilobytes of ``[[[[…`` would otherwise cost
a RecursionError deep inside it (or, with a larger stack, the process).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from janus_stack.ingest.extract.base import (
    JSONL,
    DocumentBuilder,
    ExtractedDocument,
    Source,
)
from janus_stack.ingest.extract.text import decode

# Possessive, and an unterminated string runs to the end: no input makes
# this backtrack, so the scan stays linear even on hostile text.
_STRINGS = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_TITLE_KEYS = ("title", "name", "headline", "subject")
_MAX_METADATA_FIELDS = 50
_MAX_METADATA_STRING = 200


def nesting_depth(text: str, limit: int) -> int:
    """The deepest bracket nesting in JSON text, scanning at most to ``limit + 1``."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


def extract(data: bytes, src: Source) -> Iterator[ExtractedDocument]:
    """Records become documents (``sub_id`` = index or line number) or sections."""
    text, _ = decode(data, src)
    # Parse everything before yielding anything: a bad line fails the whole
    # file up front instead of after half its records were stored.
    parse = _jsonl_records if src.media_type == JSONL else _json_records
    records = list(parse(text, src))
    options = src.options
    if options.json_records_as_documents:
        found = False
        for sub_id, record in records:
            document = _record_document(record, sub_id, src)
            if document is not None:
                found = True
                yield document
        if not found:
            raise src.fail("empty", _no_text(src))
        return
    builder = DocumentBuilder()
    for _, record in records:
        body = _record_text(record, src)
        if body:
            builder.block(body, kind="record")
    document = builder.build(title=src.stem, media_type=src.media_type)
    if not document.text:
        raise src.fail("empty", _no_text(src))
    yield document


def _no_text(src: Source) -> str:
    field = src.options.json_text_field
    if field:
        return f"no record has a text field {field!r}; check the JSON text field setting"
    return "the JSON holds no string values to index"


def _parse(text: str, src: Source, where: str = "") -> Any:
    limit = src.options.max_depth
    if nesting_depth(text, limit) > limit:
        raise src.fail("too_deep", f"the JSON{where} is nested deeper than {limit} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = f"line {exc.lineno}" if not where else where.strip()
        raise src.fail(
            "corrupt", f"invalid JSON at {line}, column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise src.fail("corrupt", f"the JSON{where} cannot be parsed ({exc})") from None


def _json_records(text: str, src: Source) -> Iterator[tuple[str | None, Any]]:
    value = _parse(text, src)
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield str(index), item
    else:
        yield None, value


def _jsonl_records(text: str, src: Source) -> Iterator[tuple[str | None, Any]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield str(number), _parse(line, src, f" on line {number}")


def _record_document(record: Any, sub_id: str | None, src: Source) -> ExtractedDocument | None:
    body = _record_text(record, src)
    if not body:
        return None
    builder = DocumentBuilder()
    builder.block(body, kind="record")
    title = _record_title(record) or (f"{src.stem} #{sub_id}" if sub_id else src.stem)
    metadata: dict[str, Any] = {}
    if isinstance(record, dict):
        fields = _scalar_fields(record, src.options.json_text_field)
        if fields:
            metadata["fields"] = fields
    return builder.build(title=title, media_type=src.media_type, metadata=metadata, sub_id=sub_id)


def _record_text(record: Any, src: Source) -> str:
    field = src.options.json_text_field
    if field is None:
        return "\n".join(f"{path}: {value}" if path else value for path, value in _leaves(record))
    value: Any = record
    for key in field.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, list):
        return "\n\n".join(item for item in value if isinstance(item, str))
    return value if isinstance(value, str) else ""


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every non-blank string under ``value`` with its dotted key path."""
    if isinstance(value, str):
        if value.strip():
            yield path, value.strip()
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, path)


def _record_title(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    for key in _TITLE_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())[:300]
    return None


def _scalar_fields(record: dict[str, Any], text_field: str | None) -> dict[str, Any]:
    """Short top-level values, kept so they can be used as filters."""
    fields: dict[str, Any] = {}
    for key, value in record.items():
        if key == text_field or len(fields) >= _MAX_METADATA_FIELDS:
            continue
        short_text = isinstance(value, str) and len(value) <= _MAX_METADATA_STRING
        if short_text or value is None or isinstance(value, bool | int | float):
            fields[key] = value
    return fields
