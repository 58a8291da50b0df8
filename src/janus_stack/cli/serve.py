"""``janus serve``: the HTTP API (FastAPI on uvicorn) over this JANUS_HOME.

``/metrics`` asks for an API key with ``metrics:read`` unless
``--metrics-auth open`` (``JANUS_METRICS_AUTH``); ``--metrics-port`` serves
it without a key on a separate listener bound to ``--metrics-host``, and
``--metrics-auth off`` then removes it from the API's port.

The server process owns the Janus context for its lifetime. With embedded
single-writer stores (Qdrant Edge, ladybug) that means one process holds
JANUS_HOME, so ``--workers`` above 1 is refused; with server backends each
worker process opens its own context on the shared servers (use a shared
``redis://`` cache then, or each worker keeps its own rate-limit buckets).
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

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
)
from janus_stack.cli.agents import AgentsDirOption
from janus_stack.config import Settings
from janus_stack.errors import ConfigError
from janus_stack.slots import embeddings, graph, vectors


def single_writer_slots(settings: Settings) -> list[str]:
    """The slots whose backend allows one process per data folder (constructed, not opened)."""
    found = []
    if vectors.open(settings.slot_url("vectors"), dim=384).single_writer:
        found.append("vectors")
    if graph.open(settings.slot_url("graph")).single_writer:
        found.append("graph")
    return found


class MetricsAuth(StrEnum):
    KEY = "key"
    OPEN = "open"
    OFF = "off"


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8080,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes (server backends only).")
    ] = 1,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest upload accepted.")
    ] = 100.0,
    key_rate: KeyRateOption = KEY_RATE,
    key_burst: KeyBurstOption = KEY_BURST,
    tenant_rate: TenantRateOption = TENANT_RATE,
    tenant_burst: TenantBurstOption = TENANT_BURST,
    threads: Annotated[
        int, typer.Option("--threads", min=1, max=256, help="Janus calls running at once.")
    ] = 8,
    warm: Annotated[
        bool, typer.Option("--warm/--no-warm", help="Load the models before serving.")
    ] = True,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log")] = False,
    metrics_auth: Annotated[
        MetricsAuth,
        typer.Option(
            "--metrics-auth",
            envvar="JANUS_METRICS_AUTH",
            help="/metrics on the API port: key (a key with metrics:read), open, or off "
            "(only on --metrics-port).",
        ),
    ] = MetricsAuth.KEY,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="JANUS_METRICS_PORT",
            min=0,
            max=65535,
            help="Also serve /metrics without a key on this port (of --metrics-host).",
        ),
    ] = None,
    metrics_host: Annotated[
        str,
        typer.Option(
            "--metrics-host", envvar="JANUS_METRICS_HOST", help="Interface for --metrics-port."
        ),
    ] = "127.0.0.1",
    agents_dir: AgentsDirOption = None,
    workflows_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--workflows-dir",
            help="Where POST /v1/runs finds workflows by name, besides JANUS_HOME/workflows "
            "(repeatable).",
        ),
    ] = None,
) -> None:
    """Serve the HTTP API: documents, search, ask, events, agents, runs, /metrics, /docs."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server stack

    from janus_stack.api.app import OPTIONS_ENV, create_app  # noqa: PLC0415
    from janus_stack.api.state import MiB, ServerOptions  # noqa: PLC0415

    cli = state(ctx)
    settings = cli.settings()
    options = ServerOptions(
        max_upload_bytes=int(max_upload_mb * MiB),
        **rate_limits(key_rate, key_burst, tenant_rate, tenant_burst),
        threads=threads,
        warm=warm,
        agents_dirs=tuple(str(p.expanduser().resolve()) for p in agents_dir or []),
        workflows_dirs=tuple(str(p.expanduser().resolve()) for p in workflows_dir or []),
        metrics_auth=metrics_auth.value,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    log_level = settings.log_level
    _check_reranking(settings)
    if metrics_port is not None:
        if workers > 1:
            raise ConfigError(
                "--metrics-port serves one process's metrics; with --workers each worker "
                "process would need a port of its own",
                hint="scrape /metrics on the API port with a metrics:read key instead",
            )
        stderr().print(f"metrics without a key at http://{metrics_host}:{metrics_port}/metrics")
    if workers > 1:
        embedded = single_writer_slots(settings)
        if embedded:
            raise ConfigError(
                f"--workers {workers} needs server backends, but the {' and '.join(embedded)} "
                f"slot{'s are' if len(embedded) > 1 else ' is'} embedded: an embedded store "
                "allows one process per JANUS_HOME",
                hint="run one worker (it serves requests concurrently on threads), or "
                "configure server backends (vectors = http://qdrant:6333, graph = "
                "neo4j://... or falkordb://...)",
            )
        if settings.slot_url("cache").scheme == "memory":
            stderr().print(
                "[yellow]warning:[/] cache = memory:// keeps rate limits per worker process; "
                "use redis:// to share them"
            )
        os.environ[OPTIONS_ENV] = json.dumps(
            {"overrides": cli.overrides, "options": options.__dict__}, default=str
        )
        uvicorn.run(
            "janus_stack.api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
        )
        return
    uvicorn.run(
        create_app(settings, options),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=30,
    )


def _check_reranking(settings: Settings) -> None:
    """Refuse to serve re-ranked search without token vectors: every hybrid search would
    fail, each with the client's error (400), for what is the server's configuration."""
    if not settings.rerank:
        return
    embedder = embeddings.open(settings.slot_url("embeddings"))  # constructed, not opened
    if not embedder.token_level:
        raise ConfigError(
            f"rerank = {settings.rerank:g} re-ranks hybrid search by token vectors, which the "
            f"embeddings slot ({embedder.backend}) does not give",
            hint="set rerank = 0, or use the in-process embedder (minilm://)",
        )
