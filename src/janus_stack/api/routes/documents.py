"""``/v1/documents``: upload (→ ingest), list, show with versions and chunks, download, delete.

An upload is identified by its name within the tenant, a file name or a
relative path (``notes/report.pdf``): uploading it again replaces the
document's contributions with the new version's (or is a no-op when the
bytes are unchanged), exactly as ``janus ingest`` does for a path; its
ledger source is ``JANUS_HOME/uploads/<tenant>/<name>`` (a name, never a
file on disk), and clients see it as ``<name>`` (see ``api/sources.py``). The
received file is streamed into the objects slot in bounded chunks — hashed
and counted on the way, so an upload over the limit stops with 413 and
stores nothing — and the pipeline ingests the stored object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import func, select

from janus_stack.api.auth import Principal, require
from janus_stack.api.keys import Permission
from janus_stack.api.sources import Sources
from janus_stack.api.state import ApiState, api_state
from janus_stack.api.uploads import Upload, receive_upload
from janus_stack.errors import InvalidInputError, NotFoundError, PayloadTooLargeError
from janus_stack.ingest.documents import DocumentLedger
from janus_stack.ingest.pipeline import StoredFile
from janus_stack.ingest.removal import delete_document, release_object
from janus_stack.ledger.models import Chunk, Document, DocumentVersion
from janus_stack.ops.inventory import show_document

router = APIRouter(prefix="/v1/documents", tags=["documents"])

DocumentId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
STATUSES = ("pending", "running", "done", "failed")
_READ_CHUNK = 256 * 1024


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "tag": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "key=value, repeatable.",
                        },
                        "entities": {"type": "boolean", "default": True},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    summary="Upload a file and ingest it",
    openapi_extra=UPLOAD_BODY,
    responses={200: {"description": "The same bytes were uploaded before: nothing changed"}},
)
async def upload(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.DOCUMENTS_WRITE))],
) -> JSONResponse:
    """Multipart upload: a ``file`` part, repeatable ``tag=key=value``, ``entities=false``.

    201 when something new was ingested, 200 when the bytes were unchanged,
    413 over the size limit, 422 when the file could not be extracted.
    """
    state = api_state(request)
    received = await receive_upload(request, state.options.max_upload_bytes)
    try:
        result = await state.guard.write(ingest_upload, state, principal, received)
    finally:
        await received.file.close()
    state.metrics.uploaded_bytes.inc(result.pop("_bytes"))
    status = 201 if result["status"] == "ingested" else 200
    if result["status"] == "failed":
        error = str(result.get("error") or "the file could not be ingested")
        too_large = "too_large" in error or "over the limit" in error
        status = 413 if too_large else 422
        body = {
            **result,
            "error": {
                "status": status,
                "type": "payload_too_large" if too_large else "unprocessable_document",
                "message": error,
            },
        }
        return JSONResponse(body, status)
    return JSONResponse(result, status)


def ingest_upload(state: ApiState, principal: Principal, upload: Upload) -> dict[str, Any]:
    """Store and ingest one upload as the principal (the MCP server's ``ingest`` tool too)."""
    janus, tenant, limit = state.janus, principal.tenant, state.options.max_upload_bytes
    source = state.sources(tenant).ledger(upload.name)
    upload.file.file.seek(0)
    try:
        info = janus.objects.put(
            upload.file.file, tenant=tenant, metadata={"source": upload.name[:200]}, max_bytes=limit
        )
    except PayloadTooLargeError:
        raise PayloadTooLargeError(
            f"the file is over the upload limit of {limit:,} bytes; nothing was stored",
            hint="split the file, or start the server with a larger --max-upload-mb",
        ) from None
    documents = DocumentLedger(janus.ledger)
    stored = StoredFile(name=upload.name, source=source, key=info.key, size=info.size)
    try:
        report = state.ingestor(entities=upload.entities).ingest(
            [stored], tenant=tenant, tags=upload.tags
        )
    except BaseException:
        release_object(janus, documents, info.key)
        raise
    outcome = report.files[0]
    document_ids = documents.documents_of_source(tenant, source)
    size = info.size
    janus.events.append(
        tenant=tenant,
        actor=principal.actor,
        type="api.document.upload",
        subject=upload.name,
        payload={"status": outcome.status, "bytes": size, "documents": document_ids},
    )
    return {
        "name": upload.name,
        "tenant": tenant,
        "status": outcome.status,
        "documents": document_ids,
        "document_count": outcome.documents,
        "chunks": outcome.chunks,
        "error": outcome.error,
        "_bytes": size,
    }


@router.get("", summary="List documents with filters and paging")
async def list_documents(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.DOCUMENTS_READ))],
    status: Annotated[str | None, Query(pattern="^(pending|running|done|failed)$")] = None,
    title: Annotated[str | None, Query(max_length=200, description="Substring, any case.")] = None,
    name: Annotated[
        str | None,
        Query(
            max_length=1024,
            description="Exactly this name: an upload's (a file name or relative path, as "
            "uploaded) or the file name of a file ingested on the server.",
        ),
    ] = None,
    tag: Annotated[list[str] | None, Query(description="key=value, repeatable.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    state = api_state(request)
    tags: dict[str, str] = {}
    for item in tag or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"tag filter {item[:80]!r} must be written key=value")
        tags[key] = value
    return await state.guard.read(
        list_page, state, principal.tenant, status, title, name, tags, limit, offset
    )


def list_page(
    state: ApiState,
    tenant: str,
    status: str | None,
    title: str | None,
    name: str | None,
    tags: dict[str, str],
    limit: int,
    offset: int,
) -> dict[str, Any]:
    sources = state.sources(tenant)
    conditions: list[Any] = [Document.tenant_id == tenant, Document.status != "deleted"]
    if status:
        conditions.append(Document.status == status)
    if title:
        conditions.append(func.lower(Document.title).contains(title.lower(), autoescape=True))
    if name:
        conditions.append(sources.name_matches(name))
    for key, value in tags.items():
        conditions.append(Document.tags[key].as_string() == value)
    chunk_counts = (
        select(Chunk.doc_id, func.count().label("chunks"))
        .where(Chunk.tenant_id == tenant)
        .group_by(Chunk.doc_id)
        .subquery()
    )
    query = (
        select(Document, DocumentVersion, chunk_counts.c.chunks)
        .outerjoin(DocumentVersion, DocumentVersion.id == Document.current_version_id)
        .outerjoin(chunk_counts, chunk_counts.c.doc_id == DocumentVersion.doc_id)
        .where(*conditions)
        .order_by(Document.created_at, Document.id)
        .limit(limit)
        .offset(offset)
    )
    with state.janus.ledger.session() as session:
        total = session.scalar(select(func.count()).select_from(Document).where(*conditions))
        rows = [
            _summary(document, version, chunks or 0, sources)
            for document, version, chunks in session.execute(query)
        ]
    return {"documents": rows, "total": int(total or 0), "limit": limit, "offset": offset}


def _summary(
    document: Document, version: DocumentVersion | None, chunks: int, sources: Sources
) -> dict[str, Any]:
    return {
        "id": document.id,
        "name": sources.public(document.source),
        "title": document.title,
        "sub_id": document.sub_id,
        "media_type": document.media_type,
        "status": document.status,
        "tags": document.tags,
        "version": version.version if version else None,
        "doc_id": version.doc_id if version else None,
        "size": version.size if version else None,
        "chunks": chunks,
        "created_at": document.created_at.isoformat(),
        "updated_at": document.updated_at.isoformat(),
    }


@router.get("/{document_id}", summary="One document with its versions and chunks")
async def get_document(
    request: Request,
    document_id: DocumentId,
    principal: Annotated[Principal, Depends(require(Permission.DOCUMENTS_READ))],
    chunk_limit: Annotated[int, Query(ge=0, le=1000)] = 100,
    chunk_offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    state = api_state(request)
    return await state.guard.read(
        document_detail, state, principal.tenant, document_id, chunk_limit, chunk_offset
    )


def document_detail(
    state: ApiState, tenant: str, document_id: str, chunk_limit: int, chunk_offset: int
) -> dict[str, Any]:
    data = show_document(state.janus, tenant, document_id)
    if data["status"] == "deleted":
        raise NotFoundError(f"tenant {tenant!r} has no document {document_id!r} (deleted)")
    data["name"] = state.sources(tenant).public(data.pop("source"))
    for version in data["versions"]:
        version["created_at"] = version["created_at"].isoformat()
        version.pop("object_key", None)
    current = next((v for v in data["versions"] if v["id"] == data["current_version_id"]), None)
    chunks: list[dict[str, Any]] = []
    total = 0
    if current is not None:
        with state.janus.ledger.session() as session:
            where = (Chunk.tenant_id == tenant, Chunk.doc_id == current["doc_id"])
            total = int(session.scalar(select(func.count()).select_from(Chunk).where(*where)) or 0)
            rows = session.scalars(
                select(Chunk).where(*where).order_by(Chunk.ordinal)
                .limit(chunk_limit).offset(chunk_offset)
            )  # fmt: skip
            chunks = [
                {
                    "id": row.id,
                    "ordinal": row.ordinal,
                    "page": row.page,
                    "heading_path": list(row.heading_path),
                    "char_start": row.char_start,
                    "char_end": row.char_end,
                    "token_count": row.token_count,
                    "text": row.text,
                }
                for row in rows
            ]
    data["chunks"] = {"items": chunks, "total": total, "limit": chunk_limit, "offset": chunk_offset}
    return data


@router.get("/{document_id}/raw", summary="Download the stored bytes of the current version")
async def download(
    request: Request,
    document_id: DocumentId,
    principal: Annotated[Principal, Depends(require(Permission.DOCUMENTS_DOWNLOAD))],
) -> StreamingResponse:
    state = api_state(request)
    name, media_type, size, stack = await state.guard.read(
        _open_raw, state, principal.tenant, document_id
    )
    stream: BinaryIO = stack.stream

    async def body() -> AsyncIterator[bytes]:
        try:
            while chunk := await anyio.to_thread.run_sync(stream.read, _READ_CHUNK):
                yield chunk
        finally:
            await anyio.to_thread.run_sync(stack.close)

    disposition = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return StreamingResponse(
        body(),
        media_type=media_type or "application/octet-stream",
        headers={"Content-Disposition": disposition, "Content-Length": str(size)},
    )


class _OpenObject(ExitStack):
    stream: BinaryIO


def _open_raw(state: ApiState, tenant: str, document_id: str) -> tuple[str, str, int, _OpenObject]:
    """Open the object under the read lock; the stream is read after it (objects are
    immutable and content-addressed; an open file outlives a concurrent delete)."""
    with state.janus.ledger.session() as session:
        row = session.execute(
            select(Document, DocumentVersion)
            .join(DocumentVersion, DocumentVersion.id == Document.current_version_id)
            .where(Document.id == document_id, Document.tenant_id == tenant)
        ).first()
    if row is None or row[0].status == "deleted" or not row[1].object_key:
        raise NotFoundError(f"tenant {tenant!r} has no stored document {document_id!r}")
    document, version = row
    info = state.janus.objects.head(version.object_key)
    stack = _OpenObject()
    stack.stream = stack.enter_context(state.janus.objects.get(version.object_key))
    return Path(document.source).name, document.media_type, info.size, stack


@router.delete("/{document_id}", summary="Delete a document from every store")
async def remove(
    request: Request,
    document_id: DocumentId,
    principal: Annotated[Principal, Depends(require(Permission.DOCUMENTS_WRITE))],
) -> dict[str, Any]:
    state = api_state(request)
    return await state.guard.write(_delete, state, principal, document_id)


def _delete(state: ApiState, principal: Principal, document_id: str) -> dict[str, Any]:
    report = delete_document(state.janus, principal.tenant, document_id)
    state.janus.events.append(
        tenant=principal.tenant,
        actor=principal.actor,
        type="api.document.delete",
        subject=document_id,
        payload={"doc_ids_removed": report.doc_ids_removed},
    )
    return {
        "id": report.document_id,
        "deleted": True,
        "doc_ids_removed": report.doc_ids_removed,
        "doc_ids_kept": report.doc_ids_kept,
        "objects_removed": report.objects_removed,
    }
