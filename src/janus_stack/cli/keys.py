"""``janus keys``: create, list and revoke API keys (only the ledger is opened).

A key's token is printed once, at creation; only its sha256 is stored.
These commands work while ``janus serve`` runs: they touch the ledger only,
and the server notices a revocation within its key cache time (2 s).
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from janus_stack.api.keys import KeyStore, Permission, Role
from janus_stack.cli._common import JsonFlag, print_json, state, stderr, stdout

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
    with state(ctx).janus() as janus:
        record, token = KeyStore(janus.ledger).create(
            tenant=tenant, role=role, scopes=scopes or [], name=name
        )
        janus.events.append(
            tenant=record.tenant,
            actor="cli",
            type="auth.key.created",
            subject=record.prefix,
            payload={"key_id": record.id, "role": record.role.value, "scopes": list(record.scopes)},
        )
    if as_json:
        print_json({**record.as_dict(), "token": token})
        return
    stdout().print(token, soft_wrap=True)
    stderr().print(
        f"created key {record.prefix} ({record.role.value}) for tenant {record.tenant}; "
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
    with state(ctx).janus() as janus:
        records = KeyStore(janus.ledger).list(tenant=tenant, revoked=revoked)
    if as_json:
        print_json([record.as_dict() for record in records])
        return
    table = Table(title=f"{len(records)} API keys")
    for column in ("id", "prefix", "tenant", "role", "scopes", "name", "created", "revoked"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record.id,
            record.prefix,
            record.tenant,
            record.role.value,
            ", ".join(record.scopes) or "(role)",
            record.name,
            record.created_at.isoformat(timespec="seconds"),
            record.revoked_at.isoformat(timespec="seconds") if record.revoked_at else "",
        )
    stdout().print(table)


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="Key ID or prefix (jns_xxxxxxxx).")],
    as_json: JsonFlag = False,
) -> None:
    """Revoke a key; requests with it are refused from then on."""
    with state(ctx).janus() as janus:
        record = KeyStore(janus.ledger).revoke(key)
        janus.events.append(
            tenant=record.tenant,
            actor="cli",
            type="auth.key.revoked",
            subject=record.prefix,
            payload={"key_id": record.id},
        )
    if as_json:
        print_json(record.as_dict())
        return
    stdout().print(f"revoked {record.prefix} ({record.role.value}, tenant {record.tenant})")
