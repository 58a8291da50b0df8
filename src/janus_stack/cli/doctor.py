"""``janus doctor``: a real round trip through every slot, one line each."""

from __future__ import annotations

import typer
from rich.table import Table

from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.ops.doctor import run_doctor


def doctor(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Open every slot, write, read and delete a probe item; exit 0 only if all pass."""
    with state(ctx).janus() as janus:
        checks = run_doctor(janus)
    healthy = all(check.ok for check in checks)
    if as_json:
        print_json({"ok": healthy, "slots": [check.as_dict() for check in checks]})
    else:
        table = Table(title="Janus doctor")
        for column in ("slot", "backend", "url", "status", "latency"):
            table.add_column(column, overflow="fold")
        for check in checks:
            status = "[green]ok[/]" if check.ok else f"[red]failed[/]: {check.error}"
            if check.ok and check.note:
                status += f" ({check.note})"
            if check.hint and not check.ok:
                status += f"\n[yellow]hint:[/] {check.hint}"
            table.add_row(
                check.slot, check.backend, check.url, status, f"{check.latency_ms:.1f} ms"
            )
        stdout().print(table)
    if not healthy:
        raise typer.Exit(1)
