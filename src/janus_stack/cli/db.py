"""``janus db``: the ledger's schema revision and its upgrades."""

from __future__ import annotations

from typing import Annotated

import typer

from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.ledger import migrations
from janus_stack.ledger.database import Ledger

app = typer.Typer(help="Manage the ledger database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    as_json: JsonFlag = False,
) -> None:
    """Apply every pending migration (idempotent)."""
    url = state(ctx).settings().slot_url("relational")
    with Ledger(url) as ledger:
        before = migrations.current_revision(ledger)
        migrations.upgrade(ledger, revision)
        after = migrations.current_revision(ledger)
    if as_json:
        print_json({"url": url.redacted, "from": before, "to": after})
    else:
        stdout().print(f"{url.redacted}: {before or 'empty'} → {after}")


@app.command("current")
def current(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the schema revision of the ledger and whether it is up to date."""
    url = state(ctx).settings().slot_url("relational")
    with Ledger(url) as ledger:
        revision = migrations.current_revision(ledger)
    head = migrations.head_revision()
    if as_json:
        print_json(
            {"url": url.redacted, "current": revision, "head": head, "up_to_date": revision == head}
        )
    else:
        note = "up to date" if revision == head else f"behind head {head}: run `janus db upgrade`"
        stdout().print(f"{url.redacted}: {revision or 'empty'} ({note})")
