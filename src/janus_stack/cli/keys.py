"""``janus keys``: create, list and revoke API keys (only the ledger is opened).

A key's token is printed once, at creation; only its sha256 is stored.
These commands work while ``janus serve`` runs: they touch the ledger only,
and the server notices a revocation within its key cache time (2 s). With
``--server`` they go through ``/v1/keys`` with an admin key instead, and the
server drops a revoked key at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from janus_stack.api.keys import Permission, Role
from janus_stack.cli._backend import open_backend
from janus_stack.cli._common import JsonFlag, print_json, stderr, stdout

app = typer.Typer(help="Manage API keys for `janus serve`.", no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the key belongs to.")],
    role: Annotated[
        str, typer.Option("--role", help=f"One of: {', '.join(r.value for r in Role)}.")
    ],
    scopes: Annotated[
        list[str] | None,
        typer.Option(
            "--scopes",
            help="Narrow the role to these permissions (repeatable or comma-separated): "
            + ", ".join(p.value for p in Permission),
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="A label for people.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Create a key; its token is shown once and cannot be recovered."""
    with open_backend(ctx) as backend:
        created = backend.create_key(tenant=tenant, role=role, scopes=scopes or [], name=name)
    if as_json:
        print_json(created)
        return
    stdout().print(created["token"], soft_wrap=True)
    stderr().print(
        f"created key {created['prefix']} ({created['role']}) for tenant {created['tenant']}; "
        "store the token now, it is not shown again"
    )


@app.command("list")
def list_keys(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant's.")] = None,
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List keys (never their tokens)."""
    with open_backend(ctx) as backend:
        records = backend.keys(tenant=tenant, revoked=revoked)
    if as_json:
        print_json(records)
        return
    table = Table(title=f"{len(records)} API keys")
    for column in ("id", "prefix", "tenant", "role", "scopes", "name", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record["id"],
            record["prefix"],
            record["tenant"],
            record["role"],
            ", ".join(record["scopes"]) or "(role)",
            record["name"],
            _seconds(record["created_at"]),
            _seconds(record["revoked_at"]) if record["revoked_at"] else "",
        )
    stdout().print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key ID or prefix (jns_xxxxxxxx).")],
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", help="The key's tenant (with --server: the admin key's by default)."
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    with open_backend(ctx) as backend:
        record = backend.revoke_key(key, tenant=tenant)
    if as_json:
        print_json(record)
        return
    stdout().print(f"revoked {record['prefix']} ({record['role']}, tenant {record['tenant']})")


def _seconds(moment: str) -> str:
    return datetime.fromisoformat(moment).isoformat(timespec="seconds")
