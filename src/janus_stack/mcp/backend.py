"""The one contract both ``janus mcp`` modes serve their tools and resources through.

A :class:`MemoryBackend` acts as exactly one API key's principal: the
in-process backend (:mod:`janus_stack.mcp.local`) checks the key's
permissions itself, the proxy (:mod:`janus_stack.mcp.remote`) leaves that to
the server it calls. Either way a refusal, a bad argument or a missing
document is raised as a :class:`~janus_stack.errors.JanusError` whose message
says what was wrong, so the tool layer turns every failure into the same
MCP error result without knowing which backend it talks to.

The methods return the HTTP API's JSON shapes (a hit, an answer, a topic's
memory, an upload result, a run, a document page), which both backends
already produce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

FilterValue = str | int


class MemoryBackend(Protocol):
    """Memory, documents and workflow runs of one principal's tenant."""

    async def search(
        self, query: str, *, mode: str, k: int, filters: Mapping[str, FilterValue] | None
    ) -> list[dict[str, Any]]:
        """The best ``k`` hits, best first (``memory:read``)."""
        ...

    async def ask(
        self, question: str, *, k: int, filters: Mapping[str, FilterValue] | None
    ) -> dict[str, Any]:
        """An answer with its citations (``memory:read``)."""
        ...

    async def memory(self, topic: str, *, k: int) -> dict[str, Any]:
        """The unified view of one topic: entity, relations, passages (``memory:read``)."""
        ...

    async def ingest(self, name: str, content: bytes, *, tags: Mapping[str, str]) -> dict[str, Any]:
        """Store and ingest a file called ``name`` (``documents:write``); the upload result."""
        ...

    async def start_run(self, workflow: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Start a run of a named workflow (``runs:start``); the queued run."""
        ...

    async def run(self, run_id: str) -> dict[str, Any]:
        """A run of this tenant with its steps (``runs:read``)."""
        ...

    async def documents(self, *, limit: int, offset: int) -> dict[str, Any]:
        """A page of the tenant's documents, oldest first (``documents:read``)."""
        ...

    async def document(
        self, document_id: str, *, chunk_limit: int, chunk_offset: int
    ) -> dict[str, Any]:
        """One document with its versions and a page of its chunks (``documents:read``)."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds (the context, or the HTTP connections)."""
        ...
