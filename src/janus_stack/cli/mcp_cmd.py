"""``janus mcp``: Janus as the memory of MCP clients, over stdio or streamable HTTP.

The server acts as one API key's principal. Without ``--server`` it runs in
this process on JANUS_HOME (it owns JANUS_HOME while it runs, like ``janus
serve``) and checks the key's permissions per tool; with ``--server URL`` it
proxies every call to that ``janus serve``, which checks them. Status lines
go to stderr: on stdio, stdout carries the protocol.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import anyio.to_thread
import typer
from rich.markup import escape

from janus_stack.cli._common import state, stderr
from janus_stack.cli._limits import (
    KEY_BURST,
    KEY_RATE,
    TENANT_BURST,
    TENANT_RATE,
    KeyBurstOption,
    KeyRateOption,
    TenantBurstOption,
    TenantRateOption,
    rate_limits,
    unchanged,
)
from janus_stack.cli._remote import check_server, resolve_key
from janus_stack.cli.agents import AgentsDirOption
from janus_stack.config import Settings
from janus_stack.errors import ConfigError
from janus_stack.mcp.backend import MemoryBackend

if TYPE_CHECKING:
    from janus_stack.api.state import ServerOptions


class Transport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


async def _remote(url: str, token: str) -> MemoryBackend:
    from janus_stack.mcp.remote import RemoteBackend  # noqa: PLC0415 - one mode's code

    backend = RemoteBackend(url, token)
    try:
        await backend.check()
    except BaseException:
        await backend.aclose()
        raise
    stderr().print(f"[dim]janus mcp: proxying to {escape(url)}[/]")
    return backend


async def _local(settings: Settings, token: str, options: ServerOptions) -> MemoryBackend:
    from janus_stack.mcp.local import open_local  # noqa: PLC0415 - one mode's code

    stderr().print(f"[dim]janus mcp: opening {escape(str(settings.home))}…[/]")
    backend = await anyio.to_thread.run_sync(open_local, settings, token, options)
    key = backend.key
    stderr().print(
        f"[dim]janus mcp: acting as key {key.prefix} (tenant {escape(key.tenant)}, "
        f"role {key.role.value})[/]"
    )
    return backend


def mcp(
    ctx: typer.Context,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="JANUS_API_KEY",
            help="The key the server acts as: the token, env:NAME or file:PATH.",
            show_default=False,
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option("--server", help="Proxy to this `janus serve` (http://host:port)."),
    ] = None,
    transport: Annotated[
        Transport, typer.Option("--transport", help="stdio, or streamable HTTP at /mcp.")
    ] = Transport.STDIO,
    host: Annotated[str, typer.Option("--host", help="HTTP: interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="HTTP: TCP port.")] = 8765,
    agents_dir: AgentsDirOption = None,
    workflows_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--workflows-dir",
            help="Where run_workflow finds workflows by name, besides JANUS_HOME/workflows.",
        ),
    ] = None,
    key_rate: KeyRateOption = KEY_RATE,
    key_burst: KeyBurstOption = KEY_BURST,
    tenant_rate: TenantRateOption = TENANT_RATE,
    tenant_burst: TenantBurstOption = TENANT_BURST,
) -> None:
    """Serve MCP tools (search, ask, memory, ingest, run_workflow, run_status) and documents."""
    cli = state(ctx)
    token = resolve_key(api_key or cli.api_key)
    if not token:
        raise ConfigError(
            "janus mcp acts as one API key; none was given",
            hint="pass --api-key KEY or set JANUS_API_KEY (`janus keys create` makes one)",
        )
    url = server or cli.server
    opening: Callable[[], Awaitable[MemoryBackend]]
    log_level = "warning"
    limits = rate_limits(key_rate, key_burst, tenant_rate, tenant_burst)
    if url is not None:
        if agents_dir or workflows_dir or not unchanged(limits):
            raise ConfigError(
                "--agents-dir, --workflows-dir and the rate limits are the server's own "
                "with --server",
                hint="start `janus serve` with them instead",
            )
        opening = functools.partial(_remote, check_server(url), token)
    else:
        from janus_stack.api.state import ServerOptions  # noqa: PLC0415 - local mode only

        settings = cli.settings()
        log_level = settings.log_level
        options = ServerOptions(
            warm=False,
            **limits,
            agents_dirs=tuple(str(p.expanduser().resolve()) for p in agents_dir or []),
            workflows_dirs=tuple(str(p.expanduser().resolve()) for p in workflows_dir or []),
        )
        opening = functools.partial(_local, settings, token, options)
    anyio.run(_serve, opening, transport, token, host, port, log_level)


async def _serve(
    opening: Callable[[], Awaitable[MemoryBackend]],
    transport: Transport,
    token: str,
    host: str,
    port: int,
    log_level: str,
) -> None:
    from janus_stack.mcp.server import HTTP_PATH, serve  # noqa: PLC0415 - loads the SDK

    backend = await opening()
    where = "stdio" if transport is Transport.STDIO else f"http://{host}:{port}{HTTP_PATH}"
    stderr().print(f"[dim]janus mcp: serving on {where}[/]")
    await serve(backend, transport.value, token=token, host=host, port=port, log_level=log_level)
