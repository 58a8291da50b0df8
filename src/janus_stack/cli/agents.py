"""``janus agents``: the agent manifests in JANUS_HOME/agents (and ``--agents-dir``).

Directories searched, in order: ``JANUS_HOME/agents``, each directory in
``JANUS_AGENTS_PATH`` (separated by ``:``), and every ``--agents-dir``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from janus_stack.agents import AgentRegistry, Toolbox
from janus_stack.agents.registry import SUFFIXES, agent_directories
from janus_stack.agents.sourcefile import Problem, read_file
from janus_stack.agents.sourcefile import SpecError as _SpecError
from janus_stack.cli._backend import open_backend
from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.config import Settings

AgentsDirOption = Annotated[
    list[Path] | None,
    typer.Option("--agents-dir", help="Another directory of agent manifests (repeatable)."),
]

app = typer.Typer(
    help="Agent manifests: list, show, validate; semantic-cache stats.", no_args_is_help=True
)


def agent_dirs(settings: Settings, extra: list[Path] | None) -> list[Path]:
    return agent_directories(settings.home, extra or [])


def workbench(settings: Settings, extra: list[Path] | None) -> tuple[AgentRegistry, Toolbox]:
    toolbox = Toolbox.default()
    return AgentRegistry(agent_dirs(settings, extra), toolbox), toolbox


def show_problems(problems: list[Problem]) -> None:
    console = stdout()
    for problem in problems:
        console.print(f"[red]✗[/] {escape(str(problem))}", soft_wrap=True)


@app.command("list")
def list_agents(
    ctx: typer.Context, agents_dir: AgentsDirOption = None, as_json: JsonFlag = False
) -> None:
    """Every agent with its model, tools and scopes; invalid files are flagged."""
    with open_backend(ctx) as backend:
        listed = backend.agents(agents_dir or [])
    if as_json:
        print_json(listed)
        return
    described = {entry["file"] for entry in listed["agents"]}
    unreadable = [entry for entry in listed["invalid"] if entry["file"] not in described]
    table = Table(title=f"{len(listed['agents']) + len(unreadable)} agent file(s)")
    for column in ("name", "model", "tools", "reads", "writes", "file"):
        table.add_column(column, overflow="fold")
    for summary in listed["agents"]:
        table.add_row(
            escape(summary["name"]) + ("" if summary["valid"] else " [red](invalid)[/]"),
            summary["model"],
            ", ".join(summary["tools"]),
            ", ".join(summary["reads"]),
            ", ".join(summary["writes"]) or "-",
            summary["file"],
        )
    for entry in unreadable:
        table.add_row("[red]invalid[/]", "", "", "", "", entry["file"])
    stdout().print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Agent name.")],
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """One agent's whole manifest."""
    with open_backend(ctx) as backend:
        data = backend.agent(name, agents_dir or [])
    if as_json:
        print_json(data)
        return
    console = stdout()
    console.print(f"[bold]{escape(data['name'])}[/] — {escape(data['description'])}")
    tools = ", ".join(data["tools"]) or "-"
    console.print(f"model: {escape(data['model']['provider'])}; tools: {escape(tools)}")
    console.print(escape(f"memory: {data['memory']}"))
    console.print(escape(f"budget: {data['budget']}"))
    console.print(escape(data["instructions"]))


@app.command("validate")
def validate(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None, typer.Argument(help="Manifest files (default: every agent directory).")
    ] = None,
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check manifests; every problem names the file, line and field. Exit 1 if any."""
    registry, toolbox = workbench(state(ctx).settings(), agents_dir)
    problems: list[Problem] = []
    checked = 0
    if files:
        from janus_stack.agents.registry import load_manifest  # noqa: PLC0415

        for path in files:
            checked += 1
            try:
                load_manifest(read_file(path), toolbox, registry.allowed_tenants)
            except _SpecError as exc:
                problems.extend(exc.problems)
    else:
        entries = registry.refresh()
        checked = len(entries)
        problems = [p for entry in entries for p in entry.problems]
    if as_json:
        print_json(
            {
                "checked": checked,
                "ok": not problems,
                "problems": [p.as_dict() for p in problems],
                "suffixes": list(SUFFIXES),
            }
        )
    elif problems:
        show_problems(problems)
    else:
        stdout().print(f"[green]ok[/]: {checked} manifest(s) valid")
    if problems:
        raise typer.Exit(1)


@app.command("cache-stats")
def cache_stats(
    ctx: typer.Context,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Only this tenant.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Semantic-cache hits and misses of agent steps, per tenant and agent."""
    with state(ctx).janus() as janus:
        from janus_stack.workflows.cache import SemanticCache  # noqa: PLC0415
        from janus_stack.workflows.store import RunStore  # noqa: PLC0415

        rows = SemanticCache(RunStore(janus.ledger), lambda: janus.embedder).stats(tenant)
    if as_json:
        print_json(rows)
        return
    table = Table(title="semantic cache")
    for column in ("tenant", "agent", "hits", "misses", "hit_rate"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("tenant", "agent", "hits", "misses", "hit_rate")))
    stdout().print(table)
