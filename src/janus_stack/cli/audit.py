"""``janus audit``: read the hash-chained event log and prove it untampered."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from janus_stack.cli._backend import EventQuery, open_backend
from janus_stack.cli._common import JsonFlag, print_json, stdout

app = typer.Typer(help="Inspect and verify the audit/event log.", no_args_is_help=True)


@app.command("list")
def list_events(
    ctx: typer.Context,
    event_type: Annotated[
        str | None, typer.Option("--type", help="Only events of this type.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="Only events by this actor.")] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Only events about this subject.")
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", help="Only events of this tenant (with --server: the key's by default)."
        ),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option("--since", help="Not before (ISO-8601).")
    ] = None,
    until: Annotated[datetime | None, typer.Option("--until", help="Before (ISO-8601).")] = None,
    after_seq: Annotated[
        int | None, typer.Option("--after", help="Only events after this seq.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List events, oldest first; times without a zone are read as local time."""
    query = EventQuery(
        type=event_type,
        actor=actor,
        subject=subject,
        tenant=tenant,
        since=since,
        until=until,
        after=after_seq,
        limit=limit,
    )
    with open_backend(ctx) as backend:
        events = backend.events(query)
    if as_json:
        print_json(events)
        return
    table = Table(title=f"{len(events)} events")
    for column in ("seq", "time", "tenant", "actor", "type", "subject"):
        table.add_column(column, overflow="fold")
    for event in events:
        table.add_row(
            str(event["seq"]),
            datetime.fromisoformat(event["time"]).isoformat(timespec="seconds"),
            event["tenant"],
            event["actor"],
            event["type"],
            event["subject"],
        )
    stdout().print(table)


@app.command("verify")
def verify(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Recompute the hash chain; exit 0 only when it is intact."""
    with open_backend(ctx) as backend:
        report = backend.verify_events()
    if as_json:
        print_json(report)
    elif report["ok"]:
        stdout().print(f"[green]intact[/]: {report['checked']} events verified")
    else:
        stdout().print(
            f"[red]broken[/] at seq {report['first_broken_seq']}: {report['reason']} "
            f"({report['checked']} events checked)"
        )
    if not report["ok"]:
        raise typer.Exit(1)
