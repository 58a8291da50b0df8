"""The ``janus`` command line: one module per command group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from janus_stack.cli import (
    agents,
    ask,
    audit,
    config_cmd,
    db,
    docs,
    doctor,
    eval_cmd,
    ingest,
    keys,
    mcp_cmd,
    models,
    quickstart,
    runs,
    search,
    serve,
    verify,
    worker,
    workflows,
)
from janus_stack.cli._common import CLIState, stderr
from janus_stack.errors import JanusError

app = typer.Typer(
    name="janus",
    help="Janus: a self-hosted memory and workflow platform for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(config_cmd.app, name="config")
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")
app.add_typer(docs.app, name="docs")
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")
app.command("doctor")(doctor.doctor)
app.command("ingest")(ingest.ingest)
app.command("delete")(ingest.delete)
app.command("stats")(docs.stats_command)
app.command("quickstart")(quickstart.quickstart)
app.command("search")(search.search)
app.command("ask")(ask.ask)
app.command("memory")(ask.memory)
app.command("verify")(verify.verify)
app.command("repair")(verify.repair)
app.command("worker")(worker.worker)
app.add_typer(agents.app, name="agents")
app.add_typer(workflows.app, name="workflows")
app.add_typer(runs.app, name="runs")
app.command("run")(runs.run)
app.command("eval")(eval_cmd.eval_command)
app.command("serve")(serve.serve)
app.command("mcp")(mcp_cmd.mcp)


@app.callback()
def _global_options(
    ctx: typer.Context,
    home: Annotated[
        Path | None, typer.Option("--home", help="JANUS_HOME: where embedded data lives.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant-default", help="Default tenant.")] = None,
    lock_timeout: Annotated[
        float | None,
        typer.Option(
            "--lock-timeout", help="Seconds to wait for another process owning JANUS_HOME."
        ),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug|info|warning|error")
    ] = None,
    relational_url: Annotated[
        str | None, typer.Option("--relational-url", help="Ledger database URL.")
    ] = None,
    objects_url: Annotated[
        str | None, typer.Option("--objects-url", help="Object store URL.")
    ] = None,
    vectors_url: Annotated[
        str | None, typer.Option("--vectors-url", help="Vector index URL.")
    ] = None,
    graph_url: Annotated[
        str | None, typer.Option("--graph-url", help="Knowledge graph URL.")
    ] = None,
    queue_url: Annotated[str | None, typer.Option("--queue-url", help="Task queue URL.")] = None,
    cache_url: Annotated[
        str | None, typer.Option("--cache-url", help="Cache & limits URL.")
    ] = None,
    embeddings_url: Annotated[
        str | None, typer.Option("--embeddings-url", help="Embedding model URL.")
    ] = None,
    llm_url: Annotated[
        str | None, typer.Option("--llm-url", help="Language model URL (none:// = no model).")
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="JANUS_SERVER",
            help="Run the data commands against this `janus serve` (http://host:port).",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="JANUS_API_KEY",
            help="API key for --server: the token, env:NAME or file:PATH.",
            show_default=False,
        ),
    ] = None,
) -> None:
    ctx.obj = CLIState(
        server=server or None,
        api_key=api_key or None,
        overrides={
            "home": home,
            "tenant": tenant,
            "lock_timeout": lock_timeout,
            "log_level": log_level,
            "relational_url": relational_url,
            "objects_url": objects_url,
            "vectors_url": vectors_url,
            "graph_url": graph_url,
            "queue_url": queue_url,
            "cache_url": cache_url,
            "embeddings_url": embeddings_url,
            "llm_url": llm_url,
        },
    )


def main() -> None:
    """Entry point: every expected failure becomes a message and exit code 1."""
    try:
        app()
    except JanusError as exc:
        console = stderr()
        console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
        if exc.hint:
            console.print(f"[yellow]hint:[/] {escape(exc.hint)}", soft_wrap=True)
        raise SystemExit(1) from None
