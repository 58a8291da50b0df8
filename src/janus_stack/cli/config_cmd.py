"""``janus config``: what the effective settings are and where each came from."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from janus_stack.cli._common import JsonFlag, print_json, state, stdout

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the effective configuration with every secret redacted."""
    data = state(ctx).settings().redacted()
    if as_json:
        print_json(data)
        return
    table = Table(title="Janus configuration", show_lines=False)
    table.add_column("setting")
    table.add_column("value", overflow="fold")
    table.add_column("from", style="dim")
    sources = data["sources"]
    for key in ("home", "tenant", "lock_timeout", "log_level", "otel_endpoint", "agent_output"):
        value = data[key]
        shown = json.dumps(value) if isinstance(value, dict) else str(value)
        table.add_row(key, shown if value not in (None, {}) else "—", sources.get(key, ""))
    for slot, url in data["slots"].items():
        table.add_row(f"slots.{slot}", url, sources.get(f"slots.{slot}", ""))
    table.add_row("config file", str(data["config_file"] or "none"), "")
    stdout().print(table)
