"""``janus verify`` and ``janus repair``: do the projections agree with the ledger?"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.ops.repair import RepairActions
from janus_stack.ops.repair import repair as run_repair
from janus_stack.ops.verify import verify as run_verify
from janus_stack.ops.verify_report import Finding, TenantReport, VerifyReport

TenantOption = Annotated[
    str | None, typer.Option("--tenant", help="Only this tenant (default: every tenant).")
]


def verify(ctx: typer.Context, tenant: TenantOption = None, as_json: JsonFlag = False) -> None:
    """Compare the ledger with the objects, vectors and graph; exit 0 only if they agree."""
    with state(ctx).janus() as janus:
        report = run_verify(janus, tenant)
    if as_json:
        print_json(report.as_dict())
    else:
        _show(report)
    if not report.ok:
        raise typer.Exit(1)


def repair(ctx: typer.Context, tenant: TenantOption = None, as_json: JsonFlag = False) -> None:
    """Re-run the stages that make the stores agree with the ledger, then verify again."""
    with state(ctx).janus() as janus:
        result = run_repair(janus, tenant)
    if as_json:
        print_json(result.as_dict())
    else:
        for name, actions in sorted(result.actions.items()):
            _show_actions(name, actions)
        if not result.actions:
            stdout().print("nothing to repair")
        _show(result.after)
    if not result.ok:
        raise typer.Exit(1)


def _show(report: VerifyReport) -> None:
    console = stdout()
    if not report.tenants:
        console.print("the ledger holds no tenants")
    for tenant in report.tenants:
        table = Table(title=f"tenant {tenant.tenant}: {_verdict(tenant.ok)}")
        for column in ("store", "expected", "found", "problems"):
            table.add_column(column, overflow="fold")
        for store, section in (
            ("objects", tenant.objects),
            ("vectors", tenant.vectors),
            ("keyword index", tenant.keyword),
        ):
            table.add_row(
                store, str(section.expected), str(section.found), _problems(vars(section))
            )
        for name, count in sorted(tenant.graph.counts.items()):
            verdict = "" if count.ok else "[red]differs[/]"
            table.add_row(f"graph {name}", str(count.ledger), str(count.store), verdict)
        table.add_row("graph", "", "", _problems(vars(tenant.graph)))
        table.add_row("ledger", "", "", _problems(_ledger_findings(tenant)))
        console.print(table)


def _ledger_findings(tenant: TenantReport) -> dict[str, Any]:
    return {
        "unfinished": tenant.unfinished,
        "leftovers": tenant.leftovers,
        "failed (not an inconsistency)": tenant.failed,
    }


def _problems(fields: dict[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        if isinstance(value, Finding) and value.count:
            sample = ", ".join(_label(item) for item in value.sample[:3])
            parts.append(f"{value.count} {name.replace('_', ' ')} (e.g. {sample})")
    return "; ".join(parts) or "[green]ok[/]"


def _label(item: object) -> str:
    if isinstance(item, dict):
        return str(item.get("relation_id") or item.get("source") or item.get("version_id"))
    return str(item)


def _verdict(ok: bool) -> str:
    return "[green]consistent[/]" if ok else "[red]inconsistent[/]"


def _show_actions(tenant: str, actions: RepairActions) -> None:
    done = {name: value for name, value in actions.as_dict().items() if value}
    summary = ", ".join(
        f"{name.replace('_', ' ')}: {len(value) if isinstance(value, list) else value}"
        for name, value in done.items()
    )
    stdout().print(f"repaired tenant {tenant}: {summary or 'no change possible'}")
    for key in actions.objects_lost:
        stdout().print(f"[red]lost[/] object {key}: its source file is gone or changed")
