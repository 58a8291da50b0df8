"""The built-in tools: memory.search, memory.ask, memory.remember, documents.ingest,
objects.read and agents.call.

Each is a small class satisfying :class:`~janus_stack.agents.tools.Tool`.
Heavy helpers (the retriever, the answerer, the ingestor) are built once
per run and kept in ``ToolContext.cache``.

All of them are idempotent: the reads trivially, ``documents.ingest``
because an unchanged file is skipped by content hash, ``memory.remember``
because a fact is stored under the hash of its author, title and text (so
the same fact twice is one document), and ``agents.call`` because the
called agent's own tool calls are journaled and answered from the journal.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from janus_stack.agents.tools import Access, Tool, ToolContext, ToolRefusedError
from janus_stack.errors import InvalidInputError
from janus_stack.ids import check_tenant

if TYPE_CHECKING:
    from janus_stack.agents.manifest import AgentManifest

MAX_OBJECT_BYTES = 1_000_000
_TAGS = {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 20}
_FILTERS = {
    "type": "object",
    "additionalProperties": {"type": ["string", "integer"]},
    "maxProperties": 20,
}
_TENANT = {"type": "string", "maxLength": 64}


def _cached(context: ToolContext, key: str, build: Any) -> Any:
    if key not in context.cache:
        context.cache[key] = build()
    return context.cache[key]


def _citation(label: int, hit: Any) -> dict[str, Any]:
    return {
        "label": label,
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "title": hit.title,
        "source": hit.source,
        "quote": hit.snippet,
    }


class MemorySearch:
    name = "memory.search"
    description = "Search the memory (hybrid: vectors, keywords, graph); returns cited passages."
    access: Access = "read"
    idempotent = True
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 2000},
            "k": {"type": "integer", "minimum": 1, "maximum": 50},
            "mode": {"enum": ["hybrid", "dense", "keyword", "graph"]},
            "tenant": _TENANT,
            "filters": _FILTERS,
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        from janus_stack.retrieve import Retriever  # noqa: PLC0415 - heavy

        retriever = _cached(context, "retriever", lambda: Retriever(context.janus))
        hits = retriever.search(
            arguments["query"],
            k=arguments.get("k", 5),
            mode=arguments.get("mode", "hybrid"),
            tenant=arguments.get("tenant", context.tenant),
            filters=arguments.get("filters"),
        )
        citations = [_citation(i, hit) for i, hit in enumerate(hits, start=1)]
        text = " ".join(f"{c['quote']} [{c['label']}]" for c in citations)
        return {"text": text, "citations": citations, "hits": len(hits)}


class MemoryAsk:
    name = "memory.ask"
    description = "Answer a question from the memory, citing the passages it rests on."
    access: Access = "read"
    idempotent = True
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "question": {"type": "string", "minLength": 1, "maxLength": 2000},
            "tenant": _TENANT,
            "filters": _FILTERS,
        },
        "required": ["question"],
        "additionalProperties": False,
    }

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        from janus_stack.retrieve import Retriever  # noqa: PLC0415 - heavy
        from janus_stack.retrieve.answer import Answerer  # noqa: PLC0415

        def build() -> Answerer:
            retriever = _cached(context, "retriever", lambda: Retriever(context.janus))
            return Answerer(context.janus, retriever=retriever)

        answerer: Answerer = _cached(context, "answerer", build)
        answer = answerer.ask(
            arguments["question"],
            tenant=arguments.get("tenant", context.tenant),
            filters=arguments.get("filters"),
        )
        citations = [
            {
                "label": c.label,
                "chunk_id": c.chunk_id,
                "document_id": c.document_id,
                "title": c.title,
                "source": c.source,
                "quote": c.quote,
            }
            for c in answer.citations
        ]
        return {"text": answer.text, "found": answer.found, "citations": citations}


def _ingest(
    context: ToolContext, paths: list[Path], tenant: str, tags: dict[str, str], entities: bool
) -> dict[str, Any]:
    from janus_stack.ingest.pipeline import IngestOptions, Ingestor  # noqa: PLC0415 - heavy

    janus = context.janus
    ingestor: Ingestor = _cached(
        context,
        f"ingestor:{entities}",
        lambda: Ingestor(janus, janus.embedder, IngestOptions(entities=entities)),
    )
    report = ingestor.ingest(paths, tenant=tenant, tags=tags)
    summary: dict[str, Any] = report.as_dict()["summary"]
    return summary | {
        "failed": [f.error for f in report.failed],
        "files": [f.path for f in report.files],
    }


class MemoryRemember:
    name = "memory.remember"
    description = "Store a fact in the memory as a small document, tagged with the agent."
    access: Access = "write"
    idempotent = True
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "minLength": 1, "maxLength": 20_000},
            "title": {"type": "string", "maxLength": 200},
            "tenant": _TENANT,
            "tags": _TAGS,
        },
        "required": ["text"],
        "additionalProperties": False,
    }

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        tenant = check_tenant(arguments.get("tenant", context.tenant))
        author = context.agent.name if context.agent is not None else "workflow"
        text = arguments["text"].strip()
        title = arguments.get("title") or text.split("\n", 1)[0][:80]
        digest = hashlib.sha256(f"{author}\n{title}\n{text}".encode()).hexdigest()[:16]
        folder = context.janus.settings.home / "memory" / tenant / author
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{digest}.md"
        path.write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
        tags = {**dict(arguments.get("tags") or {}), "agent": author, "origin": "agent"}
        summary = _ingest(context, [path], tenant, tags, entities=True)
        return {"source": str(path), "tenant": tenant, "tags": tags, **summary}


class DocumentsIngest:
    name = "documents.ingest"
    description = "Ingest files (under the working directory or JANUS_HOME) into the memory."
    access: Access = "write"
    idempotent = True
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "paths": {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": 1000,
            },
            "tenant": _TENANT,
            "tags": _TAGS,
            "entities": {"type": "boolean"},
        },
        "required": ["paths"],
        "additionalProperties": False,
    }

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        roots = [Path.cwd().resolve(), context.janus.settings.home.resolve()]
        paths: list[Path] = []
        for given in arguments["paths"]:
            path = Path(given).expanduser().resolve()
            if not any(path.is_relative_to(root) for root in roots):
                raise ToolRefusedError(
                    f"documents.ingest: {given!r} is outside the working directory and JANUS_HOME"
                )
            if not path.is_file():
                raise InvalidInputError(f"documents.ingest: {given!r} is not a file")
            paths.append(path)
        tenant = check_tenant(arguments.get("tenant", context.tenant))
        tags = dict(arguments.get("tags") or {})
        return _ingest(context, paths, tenant, tags, bool(arguments.get("entities", True)))


class ObjectsRead:
    name = "objects.read"
    description = "Read a stored object (a raw file) by key, as text."
    access: Access = "read"
    idempotent = True
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "key": {
                "type": "string",
                "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}/[0-9a-f]{64}$",
            },
            "max_bytes": {"type": "integer", "minimum": 1, "maximum": MAX_OBJECT_BYTES},
        },
        "required": ["key"],
        "additionalProperties": False,
    }

    def tenant_of(self, arguments: dict[str, Any], default: str) -> str:
        key = arguments.get("key")
        return key.split("/", 1)[0] if isinstance(key, str) and "/" in key else default

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        limit = arguments.get("max_bytes", 65_536)
        data = context.janus.objects.read_bytes(arguments["key"])
        text = data[:limit].decode("utf-8", errors="replace")
        return {
            "key": arguments["key"],
            "size": len(data),
            "truncated": len(data) > limit,
            "text": text,
        }


class AgentsCall:
    name = "agents.call"
    description = "Ask another agent; it works within its own tools, scopes and budget."
    access: Access = "none"
    idempotent = True
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_.-]{0,63}$"},
            "input": {"type": "string", "minLength": 1, "maxLength": 50_000},
        },
        "required": ["agent", "input"],
        "additionalProperties": False,
    }

    def refusal(self, agent: AgentManifest, arguments: dict[str, Any]) -> str | None:
        """An agent reaches only the agents its manifest lists in ``calls``."""
        target = arguments.get("agent")
        if target in agent.calls:
            return None
        allowed = ", ".join(agent.calls) or "none"
        return f"agent {agent.name!r} may not call agent {target!r} (its calls: {allowed})"

    def model_parameters(self, agent: AgentManifest) -> dict[str, Any]:
        """The arguments a model may fill: the agent to call is one of ``calls``."""
        properties = dict(self.parameters["properties"])
        properties["agent"] = {"enum": list(agent.calls)}
        return {**self.parameters, "properties": properties}

    def call(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        if context.call_agent is None:
            raise InvalidInputError("agents.call works inside a workflow run only")
        return context.call_agent(arguments["agent"], arguments["input"])


def builtin_tools() -> list[Tool]:
    return [
        MemorySearch(),
        MemoryAsk(),
        MemoryRemember(),
        DocumentsIngest(),
        ObjectsRead(),
        AgentsCall(),
    ]


def sentences(text: str) -> list[str]:
    """Sentences of ``text`` (a light splitter for the deterministic fallbacks)."""
    # A citation label after the full stop stays with its sentence: "... Moon. [1] Next".
    flat = " ".join(text.split())
    parts = re.findall(r"\S.*?(?:[.!?](?:\s*\[\d+\])*(?=\s+[A-Z0-9\"'(\[]|\s*$)|$)", flat)
    return [part for part in parts if part]
