"""The asynchronous client: ``AsyncJanusClient`` (the same methods, awaited)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from janus_stack.client import _core as core
from janus_stack.client._errors import StreamError
from janus_stack.client._sse import AskEvent, SSEDecoder

DEFAULT_URL = "http://127.0.0.1:8080"


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object from the server, got {type(value).__name__}")
    return value


class AsyncJanusClient:
    """The async twin of :class:`JanusClient`; both are built on ``_core``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=core.headers(api_key, headers),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: core.Call) -> Any:
        response = await self._http.request(call.method, call.path, **core.request_kwargs(call))
        return core.read(response, call)

    async def health(self) -> dict[str, Any]:
        """Liveness: ``{"status": "ok"}``."""
        return _object(await self._send(core.health()))

    async def ready(self) -> dict[str, Any]:
        """Readiness with per-slot status (raises ``UnavailableError`` on 503)."""
        return _object(await self._send(core.ready()))

    async def system(self) -> dict[str, Any]:
        """CPU, memory, disk and queue depths (admin)."""
        return _object(await self._send(core.system()))

    async def upload(
        self,
        file: core.FileInput,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        entities: bool = True,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Upload a file (path, bytes or binary stream) and ingest it."""
        return _object(
            await self._send(
                core.upload(file, name=name, tags=tags, entities=entities, tenant=tenant)
            )
        )

    async def list_documents(
        self,
        *,
        status: str | None = None,
        title: str | None = None,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``{"documents": [...], "total": n, ...}``."""
        return _object(
            await self._send(
                core.list_documents(
                    status=status,
                    title=title,
                    name=name,
                    tags=tags,
                    limit=limit,
                    offset=offset,
                    tenant=tenant,
                )
            )
        )

    async def get_document(
        self,
        document_id: str,
        *,
        chunk_limit: int = 100,
        chunk_offset: int = 0,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """One document with its versions and a page of its chunks."""
        return _object(
            await self._send(
                core.get_document(
                    document_id, chunk_limit=chunk_limit, chunk_offset=chunk_offset, tenant=tenant
                )
            )
        )

    async def delete_document(
        self, document_id: str, *, tenant: str | None = None
    ) -> dict[str, Any]:
        """Delete a document from every store."""
        return _object(await self._send(core.delete_document(document_id, tenant=tenant)))

    async def memory(self, topic: str, *, k: int = 8, tenant: str | None = None) -> dict[str, Any]:
        """Everything the memory holds about ``topic``."""
        return _object(await self._send(core.memory(topic, k=k, tenant=tenant)))

    async def search(
        self,
        query: str,
        *,
        mode: str = "hybrid",
        k: int = 10,
        filters: Mapping[str, str | int] | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """``{"hits": [...]}`` best first."""
        return _object(
            await self._send(core.search(query, mode=mode, k=k, filters=filters, tenant=tenant))
        )

    async def ask(
        self,
        question: str,
        *,
        filters: Mapping[str, str | int] | None = None,
        k: int = 8,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """The answer with citations, in one response."""
        return _object(await self._send(core.ask(question, filters=filters, k=k, tenant=tenant)))

    async def events(
        self,
        *,
        type: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int | None = None,
        limit: int = 100,
        all_tenants: bool = False,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """Audit events, oldest first; page on with ``after=page["next_after"]``."""
        return _object(
            await self._send(
                core.events(
                    type=type,
                    actor=actor,
                    subject=subject,
                    since=since,
                    until=until,
                    after=after,
                    limit=limit,
                    all_tenants=all_tenants,
                    tenant=tenant,
                )
            )
        )

    async def verify_events(self) -> dict[str, Any]:
        """Recompute the audit log's hash chain (admin)."""
        return _object(await self._send(core.verify_events()))

    async def metrics(self) -> str:
        data = await self._send(core.metrics())
        assert isinstance(data, bytes)
        return data.decode()

    async def download(self, document_id: str, *, tenant: str | None = None) -> bytes:
        data = await self._send(core.download(document_id, tenant=tenant))
        assert isinstance(data, bytes)
        return data

    async def ask_stream(
        self,
        question: str,
        *,
        filters: Mapping[str, str | int] | None = None,
        k: int = 8,
        tenant: str | None = None,
    ) -> AsyncIterator[AskEvent]:
        """See :meth:`JanusClient.ask_stream`; close the iterator (``aclose``) to stop early."""
        call = core.ask(question, filters=filters, k=k, stream=True, tenant=tenant)
        kwargs = core.request_kwargs(call)
        async with self._http.stream(call.method, call.path, **kwargs) as response:
            if response.status_code >= 400:
                await response.aread()
                core.read(response, call)
            decoder = SSEDecoder()
            async for line in response.aiter_lines():
                event = decoder.feed(line)
                if event is None:
                    continue
                if event.kind == "error":
                    raise StreamError(int(event.data["error"]["status"]), event.data)
                yield event
