"""Documents as MCP resources: ``janus://documents/{document_id}``.

Listing pages through the tenant's documents (``PAGE_SIZE`` a page; the
cursor is the offset). Reading one returns two contents under its URI: the
extracted text, reassembled from its chunks (a chunk's text is exactly
``source[char_start:char_end]``, so overlaps are cut where the previous chunk
ended; whitespace between chunks is not stored and becomes a line break),
and the document's metadata as JSON. At most ``MAX_CHUNKS`` chunks are read;
beyond that the metadata says ``truncated``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from mcp import types

from janus_stack.errors import InvalidInputError
from janus_stack.mcp.backend import MemoryBackend

SCHEME = "janus://documents/"
TEMPLATE = SCHEME + "{document_id}"
PAGE_SIZE = 50
CHUNK_PAGE = 1000
MAX_CHUNKS = 20_000
MAX_OFFSET = 10_000_000
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def document_id_of(uri: str) -> str:
    """The document id a ``janus://documents/{id}`` URI names."""
    document_id = uri.removeprefix(SCHEME) if uri.startswith(SCHEME) else ""
    if not _DOCUMENT_ID.match(document_id):
        raise InvalidInputError(
            f"{uri[:200]!r} is not a Janus document; resources are {TEMPLATE}",
            hint="list them with resources/list",
        )
    return document_id


def offset_of(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or int(cursor) > MAX_OFFSET:
        raise InvalidInputError(f"cursor {cursor[:40]!r} did not come from resources/list")
    return int(cursor)


def reassemble(chunks: Sequence[dict[str, Any]]) -> str:
    """The document's text from its chunks in order, each overlap kept once."""
    parts: list[str] = []
    end = 0
    for chunk in sorted(chunks, key=lambda c: int(c["ordinal"])):
        start, text = int(chunk["char_start"]), str(chunk["text"])
        if start >= end:
            if parts:
                parts.append("\n")
            parts.append(text)
        elif int(chunk["char_end"]) > end:
            parts.append(text[end - start :])
        end = max(end, int(chunk["char_end"]))
    return "".join(parts)


def _resource(document: dict[str, Any]) -> types.Resource:
    tags = ", ".join(f"{k}={v}" for k, v in (document.get("tags") or {}).items())
    description = f"{document['status']}, {document.get('chunks', 0)} chunks" + (
        f"; tags {tags}" if tags else ""
    )
    return types.Resource(
        uri=SCHEME + document["id"],
        name=document.get("name") or document["id"],
        title=document.get("title") or None,
        description=description,
        mime_type="text/plain",
    )


async def list_documents(backend: MemoryBackend, cursor: str | None) -> types.ListResourcesResult:
    offset = offset_of(cursor)
    page = await backend.documents(limit=PAGE_SIZE, offset=offset)
    documents: list[dict[str, Any]] = page["documents"]
    more = offset + len(documents) < int(page.get("total", 0))
    return types.ListResourcesResult(
        resources=[_resource(d) for d in documents],
        next_cursor=str(offset + len(documents)) if more and documents else None,
    )


def templates() -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(
        resource_templates=[
            types.ResourceTemplate(
                uri_template=TEMPLATE,
                name="document",
                title="A Janus document",
                description="The extracted text of a document and its metadata (JSON).",
                mime_type="text/plain",
            )
        ]
    )


async def read_document(backend: MemoryBackend, uri: str) -> types.ReadResourceResult:
    document_id = document_id_of(uri)
    detail = await backend.document(document_id, chunk_limit=CHUNK_PAGE, chunk_offset=0)
    chunks: list[dict[str, Any]] = list(detail["chunks"]["items"])
    total = int(detail["chunks"]["total"])
    while len(chunks) < min(total, MAX_CHUNKS):
        more = await backend.document(document_id, chunk_limit=CHUNK_PAGE, chunk_offset=len(chunks))
        if not more["chunks"]["items"]:
            break
        chunks.extend(more["chunks"]["items"])
    metadata = {key: value for key, value in detail.items() if key != "chunks"}
    metadata["chunk_count"] = total
    metadata["truncated"] = len(chunks) < total
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(uri=uri, text=reassemble(chunks), mime_type="text/plain"),
            types.TextResourceContents(
                uri=uri,
                text=json.dumps(metadata, ensure_ascii=False, default=str),
                mime_type="application/json",
            ),
        ]
    )
