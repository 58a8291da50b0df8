"""The MCP server over one backend, on stdio or streamable HTTP.

Built on the SDK's low-level :class:`mcp.server.lowlevel.Server`: its
handlers are the tool surface (:mod:`~janus_stack.mcp.tools`) and the
document resources (:mod:`~janus_stack.mcp.resources`), which page their
listing with cursors (the higher-level server lists only fixed resources).

Over HTTP the endpoint is ``/mcp`` and acts as the process's API key, so it
asks every request for that same key (``Authorization: Bearer`` or
``X-API-Key``): a local process that can reach the port cannot borrow the
key's rights without knowing it. The SDK's DNS-rebinding protection is on
for loopback hosts.
"""

from __future__ import annotations

import hmac
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from janus_stack import __version__
from janus_stack.errors import JanusError
from janus_stack.mcp import resources
from janus_stack.mcp.backend import MemoryBackend
from janus_stack.mcp.tools import ToolSurface

INSTRUCTIONS = (
    "Janus is a memory of documents (vectors, keywords and a knowledge graph). Use `search` "
    "for passages, `ask` for a cited answer, `memory` for everything about one topic, "
    "`ingest` to remember a text, `run_workflow` / `run_status` for durable workflows. "
    "Documents are resources at janus://documents/{document_id}."
)
HTTP_PATH = "/mcp"


def build_server(backend: MemoryBackend) -> Server[Any]:
    """An MCP server whose tools and resources are ``backend``'s, as its one principal."""
    surface = ToolSurface(backend)

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=surface.list())

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name not in surface.tools:
            raise MCPError(
                types.INVALID_PARAMS,
                f"unknown tool {params.name!r}; tools: {', '.join(surface.tools)}",
            )

        async def progress(done: float, message: str) -> None:
            await ctx.session.report_progress(done, None, message)

        return await surface.call(params.name, dict(params.arguments or {}), progress)

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        with _protocol_errors():
            return await resources.list_documents(backend, params.cursor if params else None)

    async def list_templates(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return resources.templates()

    async def read_resource(
        ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        with _protocol_errors():
            return await resources.read_document(backend, params.uri)

    return Server(
        "janus",
        version=__version__,
        title="Janus memory",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


@contextmanager
def _protocol_errors() -> Iterator[None]:
    """Turn a ``JanusError`` (refused, not found, bad cursor) into an MCP error response."""
    try:
        yield
    except JanusError as exc:
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        raise MCPError(types.INVALID_PARAMS, f"{exc}{hint}") from exc


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one client over this process's stdin and stdout until it disconnects."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


class RequireKey:
    """ASGI middleware: HTTP requests must carry ``token`` (the key the server acts as)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._presented(scope):
            body = {
                "error": {
                    "status": 401,
                    "type": "unauthorized",
                    "message": "this MCP endpoint needs the API key it serves as",
                    "hint": "send 'Authorization: Bearer <key>' (the key given to janus mcp)",
                }
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})
            return
        await self.app(scope, receive, send)

    def _presented(self, scope: Scope) -> bool:
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-api-key", b"").strip()
        scheme, _, value = headers.get(b"authorization", b"").partition(b" ")
        if scheme.lower() == b"bearer":
            given = value.strip()
        return bool(given) and hmac.compare_digest(given, self.token)


async def serve_http(
    server: Server[Any],
    token: str,
    *,
    host: str,
    port: int,
    on_shutdown: Callable[[], Awaitable[None]],
    log_level: str = "warning",
) -> None:
    """Serve streamable HTTP at ``http://host:port/mcp`` until SIGINT or SIGTERM.

    ``on_shutdown`` runs in the app's shutdown, before uvicorn re-raises the
    signal that stopped it (which ends the process).
    """
    import uvicorn  # noqa: PLC0415 - only the HTTP transport needs it

    app = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host)
    sessions = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with sessions(app):
                yield
        finally:
            await on_shutdown()

    app.router.lifespan_context = lifespan
    config = uvicorn.Config(
        RequireKey(app, token),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    await uvicorn.Server(config).serve()


async def _stdio_until_signal(server: Server[Any], close: Callable[[], Awaitable[None]]) -> None:
    """Serve stdio until the client leaves (EOF on stdin) or SIGINT/SIGTERM arrives.

    On a signal the backend is closed (runs paused, stores closed, JANUS_HOME
    released) and the process exits at once: the SDK reads stdin on a worker
    thread that no cancellation interrupts, so unwinding would wait for input
    that may never come.
    """
    async with anyio.create_task_group() as group:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
                async for _ in received:
                    await close()
                    os._exit(0)

        group.start_soon(stop_on_signal)
        await serve_stdio(server)
        group.cancel_scope.cancel()


async def serve(
    backend: MemoryBackend,
    transport: str,
    *,
    token: str,
    host: str = "127.0.0.1",
    port: int = 8765,
    log_level: str = "warning",
) -> None:
    """Serve ``backend`` over ``transport`` (``stdio`` or ``http``); close it at the end."""
    closed = anyio.Event()

    async def close() -> None:
        if not closed.is_set():
            closed.set()
            with anyio.CancelScope(shield=True):
                await backend.aclose()

    server = build_server(backend)
    try:
        if transport == "stdio":
            await _stdio_until_signal(server, close)
        else:
            await serve_http(
                server, token, host=host, port=port, on_shutdown=close, log_level=log_level
            )
    finally:
        await close()
