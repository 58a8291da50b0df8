"""The proxy backend: every call goes to a ``janus serve`` through the typed SDK client.

The server enforces everything (the key, its role and scopes, the tenant,
rate limits) and logs its refusals; this side only turns the client's errors
into :class:`RemoteError` messages that name the server, and checks at
start-up that the server answers and accepts the key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

from janus_stack.client import AsyncJanusClient, ForbiddenError, JanusAPIError
from janus_stack.errors import JanusError
from janus_stack.mcp.backend import FilterValue

TIMEOUT_SECONDS = 300.0  # an upload is ingested, and an answer generated, before the reply


class RemoteError(JanusError):
    """The Janus server refused a call, or could not be reached."""


class RemoteBackend:
    """Serves the MCP tools by calling the server at ``url`` as the key ``token``."""

    def __init__(self, url: str, token: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url
        self.client = AsyncJanusClient(url, token, timeout=timeout)

    @asynccontextmanager
    async def _translated(self) -> AsyncIterator[None]:
        try:
            yield
        except JanusAPIError as exc:
            raise RemoteError(
                f"{exc.message} ({exc.status} {exc.type} from {self.url})", hint=exc.hint
            ) from None
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"cannot reach the Janus server at {self.url}: {exc}",
                hint="check --server and that `janus serve` runs there",
            ) from None

    async def check(self) -> None:
        """Fail now, not at the first tool call, when the server or the key is unusable.

        A key that is valid but may not list documents (a narrow scope) is fine:
        its tools are refused one by one, as the server decides.
        """
        async with self._translated():
            try:
                await self.client.list_documents(limit=1)
            except ForbiddenError:
                return

    async def search(
        self, query: str, *, mode: str, k: int, filters: Mapping[str, FilterValue] | None
    ) -> list[dict[str, Any]]:
        async with self._translated():
            found = await self.client.search(query, mode=mode, k=k, filters=filters)
        hits: list[dict[str, Any]] = found["hits"]
        return hits

    async def ask(
        self, question: str, *, k: int, filters: Mapping[str, FilterValue] | None
    ) -> dict[str, Any]:
        async with self._translated():
            return await self.client.ask(question, k=k, filters=filters)

    async def memory(self, topic: str, *, k: int) -> dict[str, Any]:
        async with self._translated():
            return await self.client.memory(topic, k=k)

    async def ingest(self, name: str, content: bytes, *, tags: Mapping[str, str]) -> dict[str, Any]:
        async with self._translated():
            return await self.client.upload(content, name=name, tags=tags)

    async def start_run(self, workflow: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        async with self._translated():
            return await self.client.start_run(workflow, inputs=inputs)

    async def run(self, run_id: str) -> dict[str, Any]:
        async with self._translated():
            return await self.client.get_run(run_id)

    async def documents(self, *, limit: int, offset: int) -> dict[str, Any]:
        async with self._translated():
            return await self.client.list_documents(limit=limit, offset=offset)

    async def document(
        self, document_id: str, *, chunk_limit: int, chunk_offset: int
    ) -> dict[str, Any]:
        async with self._translated():
            return await self.client.get_document(
                document_id, chunk_limit=chunk_limit, chunk_offset=chunk_offset
            )

    async def aclose(self) -> None:
        await self.client.aclose()
