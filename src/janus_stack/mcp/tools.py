"""The MCP tools: search, ask, memory, ingest, run_workflow and run_status.

Each tool is a JSON schema, a description written for the model that picks
it, and a coroutine over a :class:`~janus_stack.mcp.backend.MemoryBackend`.
Arguments are validated here once, against the schema the client was shown,
so both backends receive checked values. A tool's result is its JSON twice:
as ``structuredContent`` for programs and as text for models. A failure the
caller can act on (a refused permission, a bad argument, an unknown
workflow) is a result with ``isError`` and the reason as its text, never a
protocol error, so the model sees why.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import jsonschema
from mcp import types

from janus_stack.errors import JanusError
from janus_stack.mcp.backend import MemoryBackend
from janus_stack.retrieve.types import MAX_K, MAX_QUERY_CHARS
from janus_stack.workflows.store import DONE, QUEUED, RUNNING

MAX_INGEST_CHARS = 1_000_000
MAX_WAIT_SECONDS = 600.0
POLL_SECONDS = 0.25

Progress = Callable[[float, str], Awaitable[None]]
ToolCall = Callable[[MemoryBackend, dict[str, Any], Progress], Awaitable[dict[str, Any]]]

_FILTERS = {
    "type": "object",
    "description": "field → value: doc_id, document_id, source, title, page, tags.<name>.",
    "additionalProperties": {"type": ["string", "integer"], "maxLength": 1000},
    "maxProperties": 20,
}
_TAGS = {
    "type": "object",
    "propertyNames": {"pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$"},
    "additionalProperties": {"type": "string", "maxLength": 1000},
    "maxProperties": 20,
}


def _query(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_QUERY_CHARS,
        "description": description,
    }


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


async def _search(backend: MemoryBackend, args: dict[str, Any], _: Progress) -> dict[str, Any]:
    mode = args.get("mode", "hybrid")
    hits = await backend.search(
        args["query"], mode=mode, k=args.get("k", 10), filters=args.get("filters")
    )
    return {"query": args["query"], "mode": mode, "hits": hits}


async def _ask(backend: MemoryBackend, args: dict[str, Any], _: Progress) -> dict[str, Any]:
    return await backend.ask(args["question"], k=args.get("k", 8), filters=args.get("filters"))


async def _memory(backend: MemoryBackend, args: dict[str, Any], _: Progress) -> dict[str, Any]:
    return await backend.memory(args["topic"], k=args.get("k", 8))


def document_name(title: str) -> str:
    """The file name a note is stored under: its title, made safe (same title → same document)."""
    slug = re.sub(r"[^\w.-]+", "-", title.strip().lower()).strip("-.")[:100]
    return f"{slug or hashlib.sha256(title.encode()).hexdigest()[:16]}.md"


async def _ingest(backend: MemoryBackend, args: dict[str, Any], _: Progress) -> dict[str, Any]:
    title = args["title"].strip()
    content = f"# {title}\n\n{args['text'].strip()}\n".encode()
    return await backend.ingest(document_name(title), content, tags=args.get("tags") or {})


def run_view(run: Mapping[str, Any]) -> dict[str, Any]:
    """What a caller needs of a run: where it stands, its output, and its steps in brief."""
    return {
        "run_id": run["id"],
        "workflow": run["workflow"],
        "status": run["status"],
        "finished": run["status"] not in (QUEUED, RUNNING),
        "output": run.get("output"),
        "error": run.get("error"),
        "waiting_for": run.get("waiting_for"),
        "usage": run.get("usage"),
        "steps": [
            {"key": s["key"], "status": s["status"], "agent": s.get("agent")}
            for s in run.get("steps", [])
        ],
    }


async def follow_run(
    backend: MemoryBackend, run_id: str, wait_seconds: float, progress: Progress
) -> dict[str, Any]:
    """Poll the run until it stops (done, failed, paused...) or ``wait_seconds`` pass."""
    deadline = anyio.current_time() + wait_seconds
    reported = -1
    while True:
        run = await backend.run(run_id)
        finished = sum(1 for step in run.get("steps", []) if step["status"] == DONE)
        if finished != reported:
            reported = finished
            await progress(finished, f"{run['status']}: {finished} step(s) done")
        if run["status"] not in (QUEUED, RUNNING) or anyio.current_time() >= deadline:
            return run
        await anyio.sleep(POLL_SECONDS)


async def _run_workflow(
    backend: MemoryBackend, args: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    started = await backend.start_run(args["workflow"], args.get("inputs") or {})
    run = await follow_run(backend, started["id"], args.get("wait_seconds", 60.0), progress)
    return run_view(run)


async def _run_status(backend: MemoryBackend, args: dict[str, Any], _: Progress) -> dict[str, Any]:
    return run_view(await backend.run(args["run_id"]))


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    schema: dict[str, Any]
    read_only: bool
    call: ToolCall

    def describe(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.schema,
            annotations=types.ToolAnnotations(
                read_only_hint=self.read_only,
                destructive_hint=False,
                open_world_hint=False,
            ),
        )


TOOLS = (
    ToolSpec(
        "search",
        "Search the Janus memory for passages: hybrid (vectors + keywords + knowledge graph, "
        "the default), dense, keyword or graph. Each hit cites its chunk, document and version.",
        _schema(
            {
                "query": _query("What to look for."),
                "mode": {"enum": ["hybrid", "dense", "keyword", "graph"], "default": "hybrid"},
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
                "filters": _FILTERS,
            },
            ["query"],
        ),
        True,
        _search,
    ),
    ToolSpec(
        "ask",
        "Answer a question from the Janus memory, with numbered citations of the passages "
        "(and knowledge-graph paths) it rests on; found=false when the memory does not say.",
        _schema(
            {
                "question": _query("The question."),
                "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 8},
                "filters": _FILTERS,
            },
            ["question"],
        ),
        True,
        _ask,
    ),
    ToolSpec(
        "memory",
        "Everything the Janus memory holds about one topic: the entity, its relations and "
        "neighbours with supporting passages, the most relevant passages and the documents.",
        _schema(
            {
                "topic": _query("An entity or topic, e.g. 'Marie Curie'."),
                "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 8},
            },
            ["topic"],
        ),
        True,
        _memory,
    ),
    ToolSpec(
        "ingest",
        "Store a text in the Janus memory as a document (Markdown), searchable at once. "
        "A document is named after its title: ingesting the same title again replaces it.",
        _schema(
            {
                "text": {"type": "string", "minLength": 1, "maxLength": MAX_INGEST_CHARS},
                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                "tags": _TAGS,
            },
            ["text", "title"],
        ),
        False,
        _ingest,
    ),
    ToolSpec(
        "run_workflow",
        "Start a durable run of a named Janus workflow and wait for it (up to wait_seconds) to "
        "finish or pause; returns the run id, status, output and steps. A run still going "
        "when the wait ends keeps running: follow it with run_status.",
        _schema(
            {
                "workflow": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"},
                "inputs": {"type": "object", "maxProperties": 100},
                "wait_seconds": {
                    "type": "number",
                    "minimum": 0,
                    "maximum": MAX_WAIT_SECONDS,
                    "default": 60,
                },
            },
            ["workflow"],
        ),
        False,
        _run_workflow,
    ),
    ToolSpec(
        "run_status",
        "Where a workflow run stands: status, output, error, the human step it waits for, "
        "usage and steps.",
        _schema({"run_id": {"type": "string", "minLength": 1, "maxLength": 64}}, ["run_id"]),
        True,
        _run_status,
    ),
)


def _text(data: Any) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=json.dumps(data, ensure_ascii=False, default=str))]


def _failure(message: str) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


def _argument_problem(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    return f"argument {where!r}: {error.message}" if where else f"arguments: {error.message}"


class ToolSurface:
    """The tools of one backend, as the MCP server lists and calls them."""

    def __init__(self, backend: MemoryBackend, tools: tuple[ToolSpec, ...] = TOOLS) -> None:
        self.backend = backend
        self.tools = {tool.name: tool for tool in tools}
        self._validators = {
            tool.name: jsonschema.Draft202012Validator(tool.schema) for tool in tools
        }

    def list(self) -> list[types.Tool]:
        return [tool.describe() for tool in self.tools.values()]

    async def call(
        self, name: str, arguments: dict[str, Any], progress: Progress
    ) -> types.CallToolResult:
        """Run tool ``name``; an unknown name is a ``KeyError`` (a protocol error upstream)."""
        tool = self.tools[name]
        problem = jsonschema.exceptions.best_match(self._validators[name].iter_errors(arguments))
        if problem is not None:
            return _failure(f"{name}: {_argument_problem(problem)}")
        try:
            data = await tool.call(self.backend, arguments, progress)
        except JanusError as exc:
            hint = f" (hint: {exc.hint})" if exc.hint else ""
            return _failure(f"{name}: {exc}{hint}")
        return types.CallToolResult(content=_text(data), structured_content=data)
