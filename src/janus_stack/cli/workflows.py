"""``janus workflows``: list what ``janus run`` can name; validate a workflow before a run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from janus_stack.agents.sourcefile import Problem, SpecError
from janus_stack.cli._backend import open_backend
from janus_stack.cli._common import JsonFlag, print_json, state, stdout
from janus_stack.cli.agents import AgentsDirOption, show_problems, workbench
from janus_stack.workflows.checks import check_workflow
from janus_stack.workflows.spec import find_workflow, load_workflow

app = typer.Typer(help="Workflow files: list, validate.", no_args_is_help=True)

WorkflowsDirOption = Annotated[
    list[Path] | None,
    typer.Option("--workflows-dir", help="Another directory of workflows (repeatable)."),
]


@app.command("list")
def list_workflows(
    ctx: typer.Context,
    workflows_dir: WorkflowsDirOption = None,
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Workflows in JANUS_HOME/workflows (or the server's), with their inputs and problems."""
    with open_backend(ctx) as backend:
        listed = backend.workflows(workflows_dir or [], agents_dir or [])
    if as_json:
        print_json(listed)
        return
    workflows = listed["workflows"]
    table = Table(title=f"{len(workflows)} workflow(s)")
    for column in ("name", "inputs", "steps", "description", "file"):
        table.add_column(column, overflow="fold")
    for entry in workflows:
        problems = len(entry["problems"])
        table.add_row(
            escape(entry["name"]) + ("" if entry["valid"] else f" [red]({problems} problems)[/]"),
            escape(", ".join(entry["inputs"]) or "-"),
            str(entry["steps"]),
            escape(entry["description"]),
            escape(entry["file"]),
        )
    stdout().print(table)


@app.command("validate")
def validate(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="A workflow file (or a name in JANUS_HOME).")],
    agents_dir: AgentsDirOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Report unknown agents/tools, unbounded loops, unreachable steps, missing inputs."""
    settings = state(ctx).settings()
    registry, toolbox = workbench(settings, agents_dir)
    path: Path = find_workflow(workflow, settings.home)
    problems: list[Problem] = []
    steps = 0
    try:
        source, spec = load_workflow(path)
        problems = check_workflow(source, spec, registry, toolbox)
        steps = len(spec.steps)
    except SpecError as exc:
        problems = exc.problems
    if as_json:
        print_json(
            {"file": str(path), "ok": not problems, "problems": [p.as_dict() for p in problems]}
        )
    elif problems:
        show_problems(problems)
    else:
        stdout().print(f"[green]ok[/]: {path} ({steps} top-level steps)")
    if problems:
        raise typer.Exit(1)
