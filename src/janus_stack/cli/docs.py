"""``janus docs`` and ``janus stats``: what the memory holds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from janus_stack.cli._backend import open_backend
from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.ops.inventory import stats

app = typer.Typer(help="List and inspect documents.", no_args_is_help=True)


@app.command("list")
def list_command(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    status: Annotated[str | None, typer.Option("--status", help="done, pending, failed")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    as_json: JsonFlag = False,
) -> None:
    """List documents: ID, title, source, version, status, chunk count."""
    with open_backend(ctx) as backend:
        rows = backend.documents(tenant=tenant, status=status, limit=limit, offset=offset)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} documents")
    for column in ("id", "title", "source", "version", "status", "chunks"):
        table.add_column(column, overflow="fold")
    for row in rows:
        source = row["source"] + (f"#{row['sub_id']}" if row["sub_id"] else "")
        table.add_row(
            row["id"], row["title"], source, str(row["version"]), row["status"], str(row["chunks"])
        )
    stdout().print(table)


@app.command("show")
def show_command(
    ctx: typer.Context,
    document_id: Annotated[str, typer.Argument(help="Document ID from `janus docs list`.")],
    tenant: Annotated[str | None, typer.Option("--tenant")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one document with its versions, stages and errors."""
    with open_backend(ctx) as backend:
        data = backend.document(document_id, tenant=tenant)
    if as_json:
        print_json(data)
        return
    console = stdout()
    console.print(f"[bold]{data['title']}[/] ({data['status']})  {data['source']}")
    for version in data["versions"]:
        console.print(
            f"  v{version['version']} {version['status']} doc_id={version['doc_id'][:12]} "
            f"size={version['size']}" + (f" error: {version['error']}" if version["error"] else "")
        )
        for stage in version["stages"]:
            console.print(f"    {stage['stage']:<9} {stage['status']}")


def stats_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Documents, versions, chunks, vectors, entities, relations, mentions per tenant."""
    with state(ctx).janus() as janus:
        data = stats(janus)
    if as_json:
        print_json(data)
        return
    columns = (
        "documents",
        "versions",
        "chunks",
        "vectors",
        "entities",
        "relations",
        "mentions",
        "failed_documents",
    )
    table = Table(title="Janus memory")
    table.add_column("tenant")
    for column in columns:
        table.add_column(column, justify="right")
    for tenant, counts in data.items():
        table.add_row(tenant, *(str(counts.get(column, 0)) for column in columns))
    stdout().print(table)
